"""Generated titles (webapp/streaming/titles.py): after a conversation's first complete answer
its provider names it, unless the person renamed it, the setting is off, or the request fails;
the sidebar item and the page's title follow without a reload.

The scripted provider answers the title's non-streamed request with ``whole``; the fault
upstream answers it over real HTTP (scenarios of its own here: the answer streams as usual, the
title's request gets a title, an error or no answer); the embedded model makes a real one.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from playwright.sync_api import expect

from tests.helpers import (
    SETTINGS_FORM,
    chat_in_browser,
    read_stream,
    rows,
    send,
    serve,
    sign_in,
    start_chat,
    wait_until,
)
from tests.peers.fault_upstream import FaultServer, Handler, normal_events
from tests.scripted import failing
from webapp.extensions import app_state
from webapp.models import Conversation, Message
from webapp.providers import LocalModel, ProviderRegistry, UpstreamTimeout
from webapp.streaming.titles import MOST_CHARS, clean, prompt

FIRST = "How do I bake banana bread?\nI have three old bananas."
FIRST_LINE = "How do I bake banana bread?"


def settled(message_id: int, seconds: float = 30) -> None:
    """Wait until answer ``message_id``'s generation thread has ended: its title, if any, is
    written by then (the title is asked for on that thread, after the answer's end)."""
    for thread in threading.enumerate():
        if thread.name == f"answer-{message_id}":
            thread.join(seconds)
            assert not thread.is_alive(), "the answer's thread did not end"


def title_of(app, conversation_id: int) -> str:
    return rows(app, Conversation, id=conversation_id)[0].title


def first_turn(alice, text=FIRST) -> tuple[int, int, str]:
    """A new conversation's first turn, read to its end and settled; (conversation, answer,
    the stream's body)."""
    conversation_id, message_id = start_chat(alice, text)
    body = read_stream(alice, message_id)
    settled(message_id)
    return conversation_id, message_id, body


@pytest.fixture(autouse=True)
def titles_on(request):
    """Titles on in the app of a test that has one, whatever the suite's default."""
    if "app" in request.fixturenames:
        app = request.getfixturevalue("app")
        app.config["TITLES"] = True
        app.config["TITLE_TIMEOUT_SECONDS"] = 5.0


# -- cleaning a model's reply ------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "title"), [
    ("Banana bread at home", "Banana bread at home"),
    ('"Banana bread at home."', "Banana bread at home"),
    ("Title: Banana Bread Basics!", "Banana Bread Basics"),
    ("**Title:** “Baking with old bananas”\n\nThis conversation is about…",
     "Baking with old bananas"),
    ("Sure! Here's a title: Banana bread\n", "Banana bread"),
    ("\n\n  # Banana   bread\tbasics  \n", "Banana bread basics"),
    ("'Pain aux bananes' — ", "Pain aux bananes"),
    ("日本の天気", "日本の天気"),
    ("- Banana bread\n- Walnuts", "Banana bread"),
    ("`snake_case` names in Python.", "snake_case names in Python"),
])
def test_a_reply_is_cleaned_into_a_title(reply, title):
    assert clean(reply) == title


@pytest.mark.parametrize("reply", ["", "   \n\n", '""', "...", "**", "Title:", "— !"])
def test_an_empty_or_junk_reply_is_no_title(reply):
    assert clean(reply) is None


def test_a_long_reply_is_cut_at_a_word():
    title = clean("A very long title that goes on and on about banana bread and its many "
                  "variations across the world")
    assert title == "A very long title that goes on and on about banana bread and"
    assert len(clean("x" * 200)) == MOST_CHARS


def test_the_prompt_shows_the_message_and_answer_and_asks_for_a_short_title():
    sent = prompt("m" * 5000, "Answer text")
    assert len(sent) == 1 and sent[0]["role"] == "user"
    assert "Answer text" in sent[0]["content"] and "at most 6 words" in sent[0]["content"]
    assert len(sent[0]["content"]) < 1500  # a long first message is not sent whole


# -- with the scripted provider ----------------------------------------------------------------

def test_the_first_answer_names_the_conversation(app, alice, scripted):
    scripted.whole = 'Title: "Banana bread from old bananas."\n'
    conversation_id, _, body = first_turn(alice)
    assert title_of(app, conversation_id) == "Banana bread from old bananas"
    # One non-streamed request for a few tokens, showing the message and the answer.
    [call] = scripted.whole_calls
    assert call["params"]["max_tokens"] <= 32 and call["params"]["temperature"] == 0
    shown = call["messages"][-1]["content"]
    assert FIRST_LINE in shown and "Hello **world**!" in shown
    assert call["kwargs"]["timeout"][1] == 5.0
    # The answer's last event already made its sidebar item ask for itself (unmarked): the
    # title comes after the answer's end.
    item = re.search(rf'<li[^>]*hx-get="/conversations/{conversation_id}/item[^"]*"[^>]*>.*?</li>',
                     body, re.S)
    assert item and "running-mark" not in item.group(0) and 'class="running"' not in item.group(0)


def test_the_sidebar_item_and_page_title_follow_the_new_title(app, alice, scripted):
    scripted.whole = "Banana bread basics"
    scripted.whole_hold = threading.Event()  # the title comes when the test says
    conversation_id, message_id = start_chat(alice, FIRST)
    read_stream(alice, message_id)
    path = f"/conversations/{conversation_id}/item?current={conversation_id}"
    while_coming = alice.get(path).get_data(as_text=True)
    assert FIRST_LINE in while_coming and 'hx-trigger="every 2s"' in while_coming
    assert "running-mark" not in while_coming
    scripted.whole_hold.set()
    settled(message_id)
    after = alice.get(path).get_data(as_text=True)
    assert re.search(r'<a href="/c/\d+"[^>]*>Banana bread basics</a>', after)
    # The open conversation's item brings the page's <title> and heading out of band.
    assert "<title>Banana bread basics · Equing Chat</title>" in after
    assert '<h1 class="conv-title" hx-swap-oob="outerHTML:.conv-title">Banana bread basics</h1>' \
        in after
    # Another page's sidebar (another conversation open) gets only the item.
    elsewhere = alice.get(f"/conversations/{conversation_id}/item?current=0").get_data(
        as_text=True)
    assert "Banana bread basics" in elsewhere and "<title>" not in elsewhere \
        and "conv-title" not in elsewhere
    # The page itself shows it too.
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert "<title>Banana bread basics · Equing Chat</title>" in page


def test_the_second_answer_does_not_rename(app, alice, scripted):
    scripted.whole = "Banana bread basics"
    conversation_id, _, _ = first_turn(alice)
    assert title_of(app, conversation_id) == "Banana bread basics"
    scripted.whole = "Something else entirely"
    answer = send(alice, conversation_id, "And with walnuts?")
    body = read_stream(alice, answer)
    settled(answer)
    assert title_of(app, conversation_id) == "Banana bread basics"
    assert len(scripted.whole_calls) == 1
    # Its last event's sidebar does not keep the item asking: no title is coming.
    assert f"/conversations/{conversation_id}/item" not in body


def test_a_conversation_renamed_before_its_answer_ends_keeps_its_name(app, alice, scripted):
    scripted.whole = "Banana bread basics"
    scripted.hold = threading.Event()  # the answer waits before its last token
    conversation_id, message_id = start_chat(alice, FIRST)
    response = alice.post(f"/c/{conversation_id}/rename", {"title": "My bread"}, htmx=False)
    assert response.status_code == 303
    assert rows(app, Conversation, id=conversation_id)[0].title_renamed
    assert rows(app, Message, id=message_id)[0].status == "streaming"
    scripted.hold.set()
    read_stream(alice, message_id)
    settled(message_id)
    assert title_of(app, conversation_id) == "My bread"
    assert scripted.whole_calls == []  # not even asked


def test_a_rename_during_the_title_request_wins(app, alice, scripted):
    scripted.whole = "Banana bread basics"
    scripted.whole_hold = threading.Event()
    conversation_id, message_id = start_chat(alice, FIRST)
    read_stream(alice, message_id)
    assert wait_until(lambda: scripted.whole_calls, 10)  # the title is being asked for
    alice.post(f"/c/{conversation_id}/rename", {"title": "My bread"}, htmx=False)
    scripted.whole_hold.set()
    settled(message_id)
    assert title_of(app, conversation_id) == "My bread"


def test_with_titles_off_the_first_line_stays(app, alice, scripted):
    app.config["TITLES"] = False
    scripted.whole = "Banana bread basics"
    conversation_id, message_id, body = first_turn(alice)
    assert title_of(app, conversation_id) == FIRST_LINE
    assert scripted.whole_calls == []
    assert f"/conversations/{conversation_id}/item" not in body


@pytest.mark.parametrize("failure", ["error", "empty", "junk", "timeout", "unscripted"])
def test_a_failed_title_leaves_the_first_line(app, alice, scripted, failure):
    scripted.whole = {"empty": "", "junk": '  \n"**"…\n'}.get(failure, "Banana bread basics")
    if failure == "error":
        scripted.whole_fails = failing()
    elif failure == "timeout":
        app.config["TITLE_TIMEOUT_SECONDS"] = 0.3
        scripted.whole_hold = threading.Event()  # never set: the timeout's cancel ends it
    elif failure == "unscripted":
        scripted.whole = None
    conversation_id, _, _ = first_turn(alice)
    assert title_of(app, conversation_id) == FIRST_LINE
    assert len(scripted.whole_calls) == 1


def test_a_stopped_first_answer_does_not_name_it(app, alice, scripted):
    scripted.endless = True
    scripted.delay = 0.02
    scripted.whole = "Banana bread basics"
    conversation_id, message_id = start_chat(alice, FIRST)
    assert wait_until(lambda: scripted.started.is_set())
    alice.post(f"/m/{message_id}/stop")
    read_stream(alice, message_id)
    settled(message_id)
    assert title_of(app, conversation_id) == FIRST_LINE and scripted.whole_calls == []


# -- over real HTTP: the fault upstream ---------------------------------------------------------

class TitleHandler(Handler):
    """The fault upstream's handler with more scenarios: each streams the answer as
    ``ok`` does, and answers the title's non-streamed request its own way."""

    def _title(self, body, answer_whole):
        if body and body.get("stream") is False:
            return answer_whole()
        self.stream(normal_events())

    def scenario_title_ok(self, body):
        answer = {"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant",
                                     "content": '**Title:** "Greeting the wide world."\n'},
             "finish_reason": "stop"}]}
        self._title(body, lambda: self.reply(200, json.dumps(answer).encode(),
                                             "application/json"))

    def scenario_title_slow(self, body):
        # As title-ok, but the title takes 2 s: long enough to see the page before it.
        if body and body.get("stream") is False:
            time.sleep(2)
        self.scenario_title_ok(body)

    def scenario_title_hang(self, body):
        self._title(body, lambda: time.sleep(self.server.hang_seconds))

    def scenario_title_error(self, body):
        error = {"error": {"message": "no titles today", "type": "server_error"}}
        self._title(body, lambda: self.reply(500, json.dumps(error).encode(),
                                             "application/json"))


class TitleServer(FaultServer):
    def __init__(self):
        super().__init__()
        self.RequestHandlerClass = TitleHandler


@pytest.fixture(scope="module")
def title_server():
    server = TitleServer().start_background()
    yield server
    server.shutdown()


def use_equing_at(app, server, scenario: str) -> None:
    """Equing at a scenario of ``server``, the provider of new conversations."""
    registry = ProviderRegistry.from_config({"PROVIDERS": "equing",
                                             "EQUING_URL": server.url(scenario)})
    registry.default = "equing"
    app_state(app).providers = registry


@pytest.mark.parametrize(("scenario", "title"), [
    ("title-ok", "Greeting the wide world"),
    ("title-hang", FIRST_LINE),
    ("title-error", FIRST_LINE),
])
def test_titles_over_http(app, alice, title_server, scenario, title):
    use_equing_at(app, title_server, scenario)
    app.config["TITLE_TIMEOUT_SECONDS"] = 0.5
    before = len(title_server.requests)
    conversation_id, message_id, body = first_turn(alice)
    assert "wörld" in rows(app, Message, id=message_id)[0].content
    assert title_of(app, conversation_id) == title
    answer, asked = title_server.requests[before:]
    assert answer["body"]["stream"] is True
    assert asked["body"]["stream"] is False and asked["body"]["max_tokens"] <= 32
    assert FIRST_LINE in asked["body"]["messages"][-1]["content"]


@pytest.mark.browser
def test_the_page_shows_the_new_title_without_a_reload(browser, tmp_path, title_server):
    server = serve(tmp_path, title_server, "title-slow", FLASK_TITLES="true")
    try:
        page = browser.new_page()
        errors = sign_in(page, server.base)
        conversation_id = chat_in_browser(page, server.base, FIRST, wait=False)
        page.evaluate("window.sameDocument = true")  # gone if the page were loaded again
        expect(page.locator(".conv-title")).to_have_text(FIRST_LINE)
        item = page.locator(f'#conversation-list a[href="/c/{conversation_id}"]')
        # The sidebar item, the heading and the tab's title change in place.
        expect(item).to_have_text("Greeting the wide world", timeout=15000)
        expect(page.locator(".conv-title")).to_have_text("Greeting the wide world")
        expect(page).to_have_title("Greeting the wide world · Equing Chat")
        assert page.locator(".conv-title").count() == 1
        assert item.locator(".running-mark").count() == 0
        assert page.evaluate("window.sameDocument === true")
        assert page.locator(".msg-assistant.status-complete").count() == 1
        assert not errors, errors
    finally:
        server.stop()


# -- the embedded model --------------------------------------------------------------------------

@pytest.mark.slow
def test_the_embedded_model_names_a_conversation(app, alice):
    app_state(app).providers.register(LocalModel)
    app.config["TITLE_TIMEOUT_SECONDS"] = 120.0  # a shared, busy machine; bounded all the same
    alice.post("/settings", {**SETTINGS_FORM, "provider": "local",
                             "model": LocalModel.default_model(), "temperature": "0",
                             "max_tokens": "40", "system_prompt": ""}, htmx=False)
    conversation_id, message_id, _ = first_turn(
        alice, "How do I bake banana bread?\nI have three old bananas and some flour.")
    answer = rows(app, Message, id=message_id)[0]
    assert answer.status == "complete" and answer.provider == "local"
    title = title_of(app, conversation_id)
    assert title != "How do I bake banana bread?", "the embedded model gave no title"
    assert title.strip() and len(title) <= MOST_CHARS and "\n" not in title


@pytest.mark.slow
def test_the_embedded_model_bounds_a_title_s_wait_for_a_busy_model():
    loaded = LocalModel.load()
    assert loaded.lock.acquire(timeout=30)  # another answer is using the model
    try:
        with pytest.raises(UpstreamTimeout, match="busy"):
            list(LocalModel.create_completion(LocalModel.default_model(), prompt("Hi", "Hello"),
                                              False, max_tokens=8, timeout=(5.0, 0.2)))
    finally:
        loaded.lock.release()
    # Free again, the same request is answered.
    assert "".join(LocalModel.create_completion(LocalModel.default_model(), prompt("Hi", "Hello"),
                                                False, max_tokens=8, timeout=(5.0, 30.0)))
