"""Server side of issue 13's points 3-5: the fragments htmx swaps out of band, and the
highlighted titles of search as you type (the browser side is tests/test_browser_ux.py)."""

from __future__ import annotations

import re

from tests.helpers import SETTINGS_FORM, SSE_ACCEPT, events, read_stream, rows, start_chat
from tests.peers.webclient import ANSWER
from webapp.models import Conversation
from webapp.queries.search import mark_words
from webapp.streaming import stops


def send_id(turn: str) -> int:
    """The id of the answer in a turn's HTML."""
    return int(ANSWER.findall(turn)[-1])


def test_the_sidebar_marks_a_conversation_while_its_answer_is_written(alice, app, scripted):
    """Its item asks for itself again while marked, and comes back unmarked once done."""
    scripted.endless, scripted.delay = True, 0.01
    conversation_id, answer = start_chat(alice, "long one")
    item = alice.get(f"/conversations/{conversation_id}/item?current=0").get_data(as_text=True)
    assert item.startswith('<li class="running"') and "running-mark" in item
    assert "(an answer is being written)" in item and 'hx-trigger="every 2s"' in item
    assert alice.post(f"/m/{answer}/stop").status_code == 204
    assert stops.wait_idle(5)
    item = alice.get(f"/conversations/{conversation_id}/item?current=0").get_data(as_text=True)
    assert item.startswith("<li><a") and "running" not in item and "hx-get" not in item
    page = alice.get("/").get_data(as_text=True)
    assert "running-mark" not in page


def sidebar_titles(html: str) -> list[str]:
    """The titles in the out-of-band conversation list carried by ``html``."""
    match = re.search(r'<ul class="conversation-list" id="conversation-list" '
                      r'hx-swap-oob="outerHTML">(.*?)</ul>', html, re.S)
    assert match, html
    # A title may follow the pin and be followed by the running mark.
    return re.findall(r'<a href="/c/\d+"[^>]*>(?:<span[^>]*>[^<]*</span>)?([^<]*)'
                      r'(?:<span class="running-mark"[^>]*><span[^>]*>[^<]*</span></span>)?</a>',
                      match.group(1))


def test_a_turn_carries_the_sidebar_when_it_starts_and_ends(alice, app, scripted):
    first, answer = start_chat(alice, "older one")
    read_stream(alice, answer)
    second, answer = start_chat(alice, "newer one")
    read_stream(alice, answer)
    # The turn moves the conversation to the top, marked as the open one and as having an
    # answer being written.
    scripted.delay = 0.1
    turn = alice.post(f"/c/{first}/messages", {"content": "again"},
                      headers=SSE_ACCEPT).get_data(as_text=True)
    assert sidebar_titles(turn) == ["older one", "newer one"]
    assert f'<a href="/c/{first}" aria-current="page">' in turn
    assert turn.count('class="running-mark"') == 1
    assert f'hx-get="/conversations/{first}/item?current={first}" hx-trigger="every 2s"' in turn
    # Its answer's last event carries the list as the database has it then.
    last_event = events(read_stream(alice, send_id(turn)))[-1]
    assert 'status-complete' in last_event and "running-mark" not in last_event
    assert sidebar_titles(last_event) == ["older one", "newer one"]
    # So does the stream of an answer a page opens by itself (a new conversation's).
    _, answer = start_chat(alice, "newest one")
    last_event = events(read_stream(alice, answer))[-1]
    assert sidebar_titles(last_event) == ["newest one", "older one", "newer one"]


def test_saving_and_resetting_chat_settings_update_the_mark(alice, app):
    conversation_id, answer = start_chat(alice)
    read_stream(alice, answer)
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert '<span id="chat-settings-mark"></span>' in page
    saved = alice.post(f"/c/{conversation_id}/settings", SETTINGS_FORM).get_data(as_text=True)
    assert 'id="chat-settings-form"' in saved and "Saved." in saved
    assert '<span id="chat-settings-mark" hx-swap-oob="outerHTML"> •</span>' in saved
    assert "Use my defaults again" in saved
    # A refused form changes nothing, the mark included.
    refused = alice.post(f"/c/{conversation_id}/settings", {**SETTINGS_FORM, "top_p": "2"})
    assert refused.status_code == 422
    assert '<span id="chat-settings-mark" hx-swap-oob="outerHTML"> •</span>' in \
        refused.get_data(as_text=True)
    # Reset through htmx: a fresh form with the person's defaults, and no mark.
    reset = alice.post(f"/c/{conversation_id}/settings/reset")
    assert reset.status_code == 200
    html = reset.get_data(as_text=True)
    assert '<span id="chat-settings-mark" hx-swap-oob="outerHTML"></span>' in html
    assert 'name="temperature"' in html and 'value="0.5"' in html
    assert "Use my defaults again" not in html and "Saved." not in html
    (conversation,) = rows(app, Conversation, id=conversation_id)
    assert conversation.settings is None


def test_search_titles_are_escaped_with_the_words_marked(alice, app):
    start_chat(alice, "Apples <b>and</b> pears")
    html = alice.get("/search?q=PEAR", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<strong>Apples &lt;b&gt;and&lt;/b&gt; <mark>pear</mark>s</strong>" in html
    assert str(mark_words("a <i>x</i> A", "a <i>")) == \
        "<mark>a</mark> <mark>&lt;i&gt;</mark>x&lt;/i&gt; <mark>A</mark>"
    assert str(mark_words("\ue000plain\ue001", "")) == "plain"
