"""The chat app through Flask's test client: accounts, turns, streams, stop, ownership."""

from __future__ import annotations

import html
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers import (
    PARTIAL,
    SSE_ACCEPT,
    csrf_from,
    events,
    read_stream,
    replay,
    rows,
    send,
    start_chat,
    wait_until,
)
from tests.peers.webclient import ANSWER
from tests.scripted import failing
from webapp.extensions import db
from webapp.models import Conversation, Message, User, utcnow
from webapp.streaming import stops

# -- accounts ----------------------------------------------------------------------------

def test_fresh_install_asks_for_the_admin_account(app):
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/setup"
    page = client.get("/setup").get_data(as_text=True)
    bad = client.post("/setup", data={"username": "root", "password": "short",
                                      "confirm": "short", "csrf_token": csrf_from(page)})
    assert bad.status_code == 422 and "Use 8 to 256 characters." in bad.get_data(as_text=True)
    response = client.post("/setup", data={"username": "root", "password": "long enough",
                                           "confirm": "long enough",
                                           "csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    (user,) = rows(app, User)
    assert user.username == "root" and user.is_admin
    assert user.password_hash != "long enough" and user.check_password("long enough")
    # Setup happens once.
    assert app.test_client().get("/setup").headers["Location"] == "/login"


def test_sign_in_and_out(app, make_user):
    make_user("alice")
    client = app.test_client()
    assert client.get("/").headers["Location"].startswith("/login")
    page = client.get("/login").get_data(as_text=True)
    wrong = client.post("/login", data={"username": "alice", "password": "nope",
                                        "csrf_token": csrf_from(page)})
    assert wrong.status_code == 422
    assert "Wrong username or password." in wrong.get_data(as_text=True)
    ok = client.post("/login?next=/c/1", data={"username": "alice", "password": "correct horse",
                                               "csrf_token": csrf_from(page)})
    assert ok.status_code == 302 and ok.headers["Location"] == "/c/1"
    home = client.get("/")
    assert home.status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf_from(home.get_data(as_text=True))})
    assert out.status_code == 302
    assert client.get("/").status_code == 302


def test_open_redirect_is_refused(app, make_user):
    make_user("alice")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login?next=//evil.example/x", data={
        "username": "alice", "password": "correct horse", "csrf_token": csrf_from(page)})
    assert response.headers["Location"] == "/"


def test_signup_closed_by_default_and_opened_by_configuration(app, make_user):
    make_user("alice")
    client = app.test_client()
    assert client.get("/signup").status_code == 403
    app.config["SIGNUP_OPEN"] = True
    page = client.get("/signup").get_data(as_text=True)
    taken = client.post("/signup", data={"username": "alice", "password": "12345678",
                                         "confirm": "12345678", "csrf_token": csrf_from(page)})
    assert "That username is taken." in taken.get_data(as_text=True)
    response = client.post("/signup", data={"username": "carol", "password": "12345678",
                                            "confirm": "12345678", "csrf_token": csrf_from(page)})
    assert response.status_code == 302
    (carol,) = rows(app, User, username="carol")
    assert not carol.is_admin


def test_post_without_csrf_token_is_refused(alice, app):
    response = alice.client.post("/c", data={"content": "hello"})
    assert response.status_code == 400
    assert rows(app, Message) == []


# -- a chat turn -------------------------------------------------------------------------

def test_chat_turn_streams_escaped_tokens_then_final_markdown(alice, app, scripted):
    scripted.tokens = ["Hello", " <b>bold</b>", " **world**", "!"]
    scripted.delay = 0.1  # slower than the 45 ms coalescing: one event per token
    conversation_id, message_id = start_chat(alice)
    (conversation,) = rows(app, Conversation)
    assert conversation.title == "Hi <b>there</b>"
    user_message, answer = rows(app, Message, conversation_id=conversation_id)
    assert (user_message.role, user_message.content) == ("user", "Hi <b>there</b>")
    # Accepted, so already being written (no page has asked for it yet).
    assert (answer.role, answer.provider, answer.model) == ("assistant", "scripted", "script-1")
    assert answer.status in ("streaming", "complete")
    assert answer.params == {"temperature": 0.5, "top_p": 1.0, "presence_penalty": 0.0,
                             "frequency_penalty": 0.0}

    body = read_stream(alice, message_id)
    data = events(body)
    # The open block streams as escaped text (the first piece also removes "Reading the
    # conversation…"), then is rendered in place: the body is then the final HTML.
    assert data[0].startswith(f'<hx-partial hx-target="#m-{message_id}-wait" '
                              'hx-swap="delete"></hx-partial>')
    assert replay(data[:-2], message_id) == (
        "", "Hello &lt;b&gt;bold&lt;/b&gt; **world**!", True)
    blocks, open_text, _ = replay(data[:-1], message_id)
    assert open_text is None
    assert blocks == "<p>Hello &lt;b&gt;bold&lt;/b&gt; <strong>world</strong>!</p>\n"
    final = data[-1]
    assert f'hx-swap-oob="outerHTML:#m-{message_id}"' in final
    assert "<strong>world</strong>" in final and "&lt;b&gt;bold&lt;/b&gt;" in final
    assert "<b>bold</b>" not in final and "hx-sse:connect" not in final

    (answer,) = rows(app, Message, id=message_id)
    assert answer.html == blocks
    assert answer.status == "complete"
    assert answer.content == "Hello <b>bold</b> **world**!"
    assert answer.token_count == 4
    assert answer.started_at <= answer.first_token_at <= answer.finished_at
    assert scripted.calls[0]["messages"] == [{"role": "user", "content": "Hi <b>there</b>"}]


def test_a_turn_is_answered_with_its_html_and_its_answer_runs_without_a_page(alice, app,
                                                                             scripted):
    """The post's answer is the turn; its answer is already being written on the server and
    opens its own stream (which reconnects), and it ends whether or not a page reads it."""
    conversation_id, first = start_chat(alice)
    read_stream(alice, first)
    scripted.tokens = ["Second", " <i>answer</i>", " **done**"]
    scripted.delay = 0.05
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "Again <b>please</b>"},
                          headers=SSE_ACCEPT)
    assert response.status_code == 200 and response.mimetype == "text/html"
    turn = response.get_data(as_text=True)
    user_message, answer = rows(app, Message, conversation_id=conversation_id)[2:]
    assert f'id="m-{user_message.id}"' in turn and "Again &lt;b&gt;please&lt;/b&gt;" in turn
    assert f'hx-sse:connect="/m/{answer.id}/stream?after=0"' in turn
    # Nobody reads the stream; the answer is written to its end all the same.
    assert wait_until(lambda: rows(app, Message, id=answer.id)[0].status == "complete")
    (answer,) = rows(app, Message, id=answer.id)
    assert answer.content == "Second <i>answer</i> **done**"
    assert answer.started_at <= answer.first_token_at <= answer.finished_at
    # Generated once: asking for its stream now only returns the final HTML.
    data = events(read_stream(alice, answer.id))
    assert len(data) == 1 and f'hx-swap-oob="outerHTML:#m-{answer.id}"' in data[0]
    assert "<strong>done</strong>" in data[0] and "<i>answer</i>" not in data[0]
    assert len(scripted.calls) == 2
    assert scripted.calls[1]["messages"][-1] == {"role": "user", "content": "Again <b>please</b>"}


def test_a_stream_resumes_after_the_last_event_its_page_got(alice, app, scripted):
    """Every text event carries the offset of the text the page then has; a page that
    reconnects with it as Last-Event-ID gets the rest: nothing repeated, nothing missing."""
    scripted.tokens = [f"w{i} " for i in range(40)]
    scripted.delay = 0.02
    _, message_id = start_chat(alice)
    response = alice.get(f"/m/{message_id}/stream")
    iterator = iter(response.response)
    received = ""
    while "w5" not in received or "\n\n" not in received.rsplit("id: ", 1)[-1]:
        chunk = next(iterator)
        received += chunk.decode() if isinstance(chunk, bytes) else chunk
    response.close()  # the connection drops
    got = received[:received.rindex("\n\n") + 2]
    last_id = re.findall(r"^id: (\d+)$", got, re.M)[-1]
    first = replay(events(got), message_id)[1]
    assert html.unescape(first) == "".join(scripted.tokens)[:int(last_id)]
    rest = alice.get(f"/m/{message_id}/stream", headers={"Last-Event-ID": last_id})
    data = events(rest.get_data(as_text=True))
    # The page's body is put in the state the stream goes on from (the same text and the
    # first new words, in one partial: htmx finds every partial's target before swapping
    # any), then only what came after follows.
    (body, swap, inner), = PARTIAL.findall(data[0])
    assert (body, swap) == (f"m-{message_id}-body", "innerHTML")
    opened = re.fullmatch(rf'<div class="streaming" id="m-{message_id}-open">([^<]*)</div>',
                          inner)
    assert opened and html.unescape(opened.group(1)).startswith(html.unescape(first))
    resumed = "".join(html.unescape(text) for item in data[1:-2]
                      for target, swap, text in PARTIAL.findall(item)
                      if target == f"m-{message_id}-open" and swap == "beforeend")
    assert html.unescape(opened.group(1)) + resumed == "".join(scripted.tokens)
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "complete" and len(scripted.calls) == 1


def stream_until(client, message_id: int, marker: str):
    """Open an answer's stream and read it until ``marker`` has arrived; returns the response
    (still open, as a client that stays) and the iterator to read on with."""
    response = client.get(f"/m/{message_id}/stream")
    iterator = iter(response.response)
    received = ""
    while marker not in received:
        chunk = next(iterator)
        received += chunk.decode() if isinstance(chunk, bytes) else chunk
    return response, iterator


def test_partial_text_is_saved_while_streaming(alice, app, scripted):
    """One saver per process writes every running answer's text (STREAM_SAVE_SECONDS is 0.2 s
    in tests), which is also the heartbeat other processes judge liveness by."""
    scripted.endless = True
    scripted.delay = 0.01
    _, message_id = start_chat(alice)
    response, iterator = stream_until(alice, message_id, "t5")
    saved = ""
    for _ in range(100):  # the saver's period is 0.2 s; this waits up to 5 s
        (answer,) = rows(app, Message, id=message_id)
        saved = answer.content
        if saved.startswith("t0 t1 t2 t3 t4 t5"):
            break
        next(iterator)
    assert saved.startswith("t0 t1 t2 t3 t4 t5"), saved
    assert answer.status == "streaming" and answer.first_token_at is not None
    response.close()
    # The page left; the answer goes on (and is saved) until someone stops it.
    assert wait_until(lambda: len(rows(app, Message, id=message_id)[0].content) > len(saved) + 20)
    assert not scripted.closed.is_set()
    assert alice.post(f"/m/{message_id}/stop").status_code == 204
    assert scripted.closed.wait(5)
    assert wait_until(lambda: rows(app, Message, id=message_id)[0].status == "stopped")


def test_finished_stream_is_never_generated_twice(alice, app, scripted):
    _, message_id = start_chat(alice)
    read_stream(alice, message_id)
    again = events(read_stream(alice, message_id))
    assert len(again) == 1 and "Hello" in again[0] and "hx-swap-oob" in again[0]
    assert len(scripted.calls) == 1


def test_history_and_system_prompt_reach_the_provider(alice, app, scripted, make_user):
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="alice"))
        user.settings.system_prompt = "Be brief."
        user.settings.temperature = 0.9
        db.session.commit()
    conversation_id, first = start_chat(alice, "First question")
    read_stream(alice, first)
    scripted.delay = 0.05  # still being written when its turn is rendered
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "Second question"})
    assert response.status_code == 200
    turn = response.get_data(as_text=True)
    assert "Second question" in turn and "hx-sse:connect" in turn
    second = int(ANSWER.findall(turn)[-1])
    read_stream(alice, second)
    call = scripted.calls[-1]
    assert call["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "Hello **world**!"},
        {"role": "user", "content": "Second question"},
    ]
    assert call["params"]["temperature"] == 0.9
    (answer,) = rows(app, Message, id=second)
    assert answer.params["system_prompt"] == "Be brief." and answer.params["temperature"] == 0.9


def test_history_is_bounded_oldest_first(alice, app, scripted):
    app.config["MAX_HISTORY_MESSAGES"] = 3
    conversation_id, message_id = start_chat(alice, "one")
    read_stream(alice, message_id)
    for text in ("two", "three"):
        read_stream(alice, send(alice, conversation_id, text))
    sent = scripted.calls[-1]["messages"]
    assert [m["content"] for m in sent] == ["two", "Hello **world**!", "three"]


def test_upstream_failure_keeps_partial_text_and_shows_why(alice, app, scripted):
    scripted.tokens = ["Partial", " answer"]
    scripted.fail_with = failing("no channel is available", 503)
    conversation_id, message_id = start_chat(alice)
    final = events(read_stream(alice, message_id))[-1]
    assert "Partial answer" in final
    assert "no channel is available" in final and 'role="alert"' in final
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "error" and answer.content == "Partial answer"
    assert "HTTP 503" in answer.error
    user_message = rows(app, Message, conversation_id=conversation_id)[0]
    assert user_message.content == "Hi <b>there</b>"
    # The page shows it too, and the conversation goes on.
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert "no channel is available" in page
    scripted.fail_with = None
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "again"})
    assert response.status_code == 200


def test_stop_ends_the_stream_and_keeps_the_text(alice, app, scripted):
    scripted.endless = True
    scripted.delay = 0.01
    _, message_id = start_chat(alice)
    chunks = []

    def consume():
        # Request and read in one thread, as a WSGI server does.
        response = alice.get(f"/m/{message_id}/stream")
        for chunk in response.response:
            chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)

    reader = threading.Thread(target=consume)
    reader.start()
    assert scripted.started.wait(5)
    while not any("t3" in c for c in chunks):
        reader.join(0.02)
    stop = alice.post(f"/m/{message_id}/stop")
    assert stop.status_code == 204
    reader.join(10)
    assert not reader.is_alive()
    assert scripted.closed.wait(5)
    final = events("".join(chunks))[-1]
    assert "Stopped." in final
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "stopped" and answer.content.startswith("t0 t1 t2 t3")
    assert answer.stop_requested


def test_a_page_that_leaves_does_not_stop_the_answer(alice, app, scripted):
    scripted.tokens = [f"t{i} " for i in range(30)]
    scripted.delay = 0.02
    _, message_id = start_chat(alice)
    response, _ = stream_until(alice, message_id, "t2")
    response.close()  # what the WSGI server does when the socket drops
    assert scripted.closed.wait(5)
    assert wait_until(lambda: rows(app, Message, id=message_id)[0].status == "complete")
    (answer,) = rows(app, Message, id=message_id)
    assert answer.content == "".join(scripted.tokens) and answer.error is None


def test_no_javascript_turn_redirects_to_a_page_that_refreshes_until_done(alice, app,
                                                                         scripted):
    scripted.tokens = ["Hello", " **world**", "!"]
    scripted.delay = 0.3
    response = alice.post("/c", {"content": "plain form"}, htmx=False)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/c/\d+#m-\d+", location)
    assert wait_until(lambda: rows(app, Message)[1].content.startswith("Hello"))
    page = alice.get(location.split("#")[0]).get_data(as_text=True)
    # The text so far, and a refresh for a browser without JavaScript.
    # (to the address without its #fragment, or chromium would only move within the page)
    assert (f'<noscript><meta http-equiv="refresh" content="2; url={location.split("#")[0]}">'
            '</noscript>') in page
    assert re.search(r'id="m-\d+-open">Hello', page)
    assert wait_until(lambda: rows(app, Message)[1].status == "complete")
    page = alice.get(location.split("#")[0]).get_data(as_text=True)
    assert "<strong>world</strong>" in page and "/stream" not in page
    assert 'http-equiv="refresh"' not in page
    conversation_id = rows(app, Message)[1].conversation_id
    again = alice.post(f"/c/{conversation_id}/messages", {"content": "more"}, htmx=False)
    assert again.status_code == 303
    assert len(rows(app, Message, conversation_id=conversation_id)) == 4


@pytest.mark.parametrize("htmx", [True, False])
def test_bad_messages_are_refused_with_a_reason(alice, app, htmx):
    empty = alice.post("/c", {"content": "   "}, htmx=htmx)
    assert empty.status_code == 422 and "Type a message first." in empty.get_data(as_text=True)
    app.config["MAX_MESSAGE_CHARS"] = 10
    long = alice.post("/c", {"content": "x" * 11}, htmx=htmx)
    assert long.status_code == 422
    body = long.get_data(as_text=True)
    assert "too long" in body
    if not htmx:
        assert "x" * 11 in body  # the text stays in the box
    assert rows(app, Message) == []


def test_second_message_while_answering_is_refused(alice, app, scripted):
    scripted.endless = True
    scripted.delay = 0.01
    conversation_id, _ = start_chat(alice)
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "wait"})
    assert response.status_code == 409
    assert "still being written" in response.get_data(as_text=True)


def test_an_answer_whose_writer_died_does_not_block_the_next_message(alice, app):
    """An answer left streaming by a dead process (no save for STREAM_STALE_SECONDS) is
    marked interrupted when the person sends their next message, which then goes ahead."""
    conversation_id, message_id = start_chat(alice)
    with app.app_context():
        answer = db.session.get(Message, message_id)
        answer.status = "streaming"
        answer.updated_at = utcnow() - timedelta(
            seconds=float(app.config["STREAM_STALE_SECONDS"]) + 5)
        db.session.commit()
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "are you there?"})
    assert response.status_code == 200, response.get_data(as_text=True)
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "error" and answer.error.startswith("Interrupted")
    assert len(rows(app, Message, conversation_id=conversation_id)) == 4


def test_sidebar_lists_newest_first_with_pages(alice, app, make_user):
    app.config["CONVERSATIONS_PER_PAGE"] = 2
    for text in ("first", "second", "third"):
        alice.post("/c", {"content": text}, htmx=False)
    assert stops.wait_idle(10)  # no item marked as being written
    page = alice.get("/").get_data(as_text=True)
    titles = re.findall(r'<li><a href="/c/\d+"[^>]*>([^<]+)</a>', page)
    assert titles == ["third", "second"]
    assert 'hx-get="/conversations?page=2' in page
    more = alice.get("/conversations?page=2").get_data(as_text=True)
    assert "first" in more and "More" not in more


def test_other_people_get_404_everywhere(alice, bob, app, scripted):
    scripted.endless = True
    scripted.delay = 0.01
    conversation_id, message_id = start_chat(alice)
    bob.refresh_token()
    assert bob.get(f"/c/{conversation_id}").status_code == 404
    assert bob.get(f"/m/{message_id}").status_code == 404
    assert bob.get(f"/m/{message_id}/stream").status_code == 404
    assert bob.post(f"/m/{message_id}/stop").status_code == 404
    assert bob.post(f"/c/{conversation_id}/messages", {"content": "hi"}).status_code == 404
    assert "Hi &lt;b&gt;there" not in bob.get("/").get_data(as_text=True)
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "streaming" and not answer.stop_requested


def test_pages_send_security_headers(alice):
    response = alice.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_stop_with_no_page_listening(alice, app, scripted):
    scripted.endless = True
    scripted.delay = 0.01
    _, message_id = start_chat(alice)
    assert scripted.started.wait(5)
    assert alice.post(f"/m/{message_id}/stop").status_code == 204
    assert scripted.closed.wait(5)
    assert wait_until(lambda: rows(app, Message, id=message_id)[0].status == "stopped")
    data = events(read_stream(alice, message_id))
    assert len(data) == 1 and "Stopped." in data[0]


def test_stopping_without_javascript_redirects_back(alice, app):
    conversation_id, message_id = start_chat(alice)
    response = alice.post(f"/m/{message_id}/stop", htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/c/{conversation_id}#m-{message_id}"
