"""Limits that hold: no running answer holds a person's slot for ever, the per-person limits
hold under parallel requests (through gunicorn, on SQLite and PostgreSQL), and a page whose
worker was killed ends in a state a person can act on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers import (
    Browserless,
    kill_workers,
    read_stream,
    rows,
    serve,
    sign_in,
    start_chat,
    wait_until,
)
from tests.peers.webclient import WebClient
from webapp.checks import config_problems
from webapp.config import Config
from webapp.extensions import db
from webapp.models import Message, utcnow
from webapp.streaming import mark_interrupted, stops

#: The default deadline of a pending answer (STREAM_PENDING_SECONDS).
PENDING_SECONDS = 60.0


def _left_pending(alice, app, message_id: int) -> None:
    """Make a finished answer look like one an earlier version left pending (it saved the
    answer pending and let the first page asking for its stream start it)."""
    read_stream(alice, message_id)
    with app.app_context():
        answer = db.session.get(Message, message_id)
        answer.status, answer.content, answer.html = "pending", "", None
        answer.started_at = answer.first_token_at = answer.finished_at = None
        db.session.commit()


def _age(app, message_id: int, seconds: float) -> None:
    """Make an answer look as if it was last written ``seconds`` ago."""
    with app.app_context():
        answer = db.session.get(Message, message_id)
        answer.updated_at = utcnow() - timedelta(seconds=seconds)
        db.session.commit()


# -- 14.1: every running state has a deadline ------------------------------------------------

def test_answers_count_while_they_run_and_never_started_ones_do_not_lock_out(alice, app,
                                                                            scripted):
    """Answers being written count against STREAMS_PER_USER whether or not a page watches
    them; an answer left pending (by an earlier version) counts while it may still start, and
    past STREAM_PENDING_SECONDS ends as stopped with the reason."""
    app.config["STREAMS_PER_USER"] = 2
    conversation_id, left = start_chat(alice, "left pending")
    _left_pending(alice, app, left)
    scripted.endless, scripted.delay = True, 0.01
    _, running = start_chat(alice, "posted and left")
    refused = alice.post("/c", {"content": "one more"})
    assert refused.status_code == 429  # one running, one pending within its deadline
    assert "at most 2 at once" in refused.get_data(as_text=True)
    _age(app, left, PENDING_SECONDS + 1)
    accepted = alice.post("/c", {"content": "one more"})
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    (answer,) = rows(app, Message, id=left)
    assert answer.status == "stopped" and "did not start within 60 seconds" in answer.error
    # Two are being written now: the next waits until one ends.
    assert alice.post("/c", {"content": "too many"}).status_code == 429
    assert alice.post(f"/m/{running}/stop").status_code == 204
    assert wait_until(lambda: rows(app, Message, id=running)[0].status == "stopped")
    assert alice.post("/c", {"content": "and another"}).status_code == 200


def test_an_answer_never_started_shows_why_and_can_be_retried(alice, app):
    """The page, and the message re-fetched alone, show the reason and a Retry."""
    conversation_id, message_id = start_chat(alice, "then the network went")
    _left_pending(alice, app, message_id)
    _age(app, message_id, PENDING_SECONDS + 1)
    fragment = alice.get(f"/m/{message_id}").get_data(as_text=True)
    assert "status-stopped" in fragment and "did not start within" in fragment
    assert f"/m/{message_id}/retry" in fragment
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert "did not start within" in page and "Retry" in page
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "stopped" and answer.finished_at is not None
    # Retry writes it after all.
    assert alice.post(f"/m/{message_id}/retry").status_code == 200
    assert "Hello" in read_stream(alice, message_id)
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "complete" and answer.error is None


def test_a_pending_answer_within_its_deadline_is_left_alone(alice, app):
    conversation_id, message_id = start_chat(alice)
    _left_pending(alice, app, message_id)
    _age(app, message_id, PENDING_SECONDS - 5)
    assert "status-pending" in alice.get(f"/m/{message_id}").get_data(as_text=True)
    assert alice.post(f"/c/{conversation_id}/messages", {"content": "x"}).status_code == 409
    assert "Hello" in read_stream(alice, message_id)  # its stream still starts it


def test_a_stale_streaming_answer_is_interrupted_when_fetched_alone(alice, app):
    """GET /m/<id> (what a page whose stream broke asks) ends a streaming answer whose writer
    died, as the conversation page does."""
    _, message_id = start_chat(alice)
    with app.app_context():
        answer = db.session.get(Message, message_id)
        answer.status, answer.content = "streaming", "half an"
        db.session.commit()
    assert "status-streaming" in alice.get(f"/m/{message_id}").get_data(as_text=True)
    _age(app, message_id, float(app.config["STREAM_STALE_SECONDS"]) + 1)
    fragment = alice.get(f"/m/{message_id}").get_data(as_text=True)
    assert "status-error" in fragment and "Interrupted" in fragment and "Retry" in fragment
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "error" and answer.content == "half an"


def test_an_overdue_answer_claimed_meanwhile_is_not_ended(alice, app):
    """Ending an overdue answer is conditional: if its stream claimed it between the read and
    the write, it keeps streaming."""
    _, message_id = start_chat(alice)
    _left_pending(alice, app, message_id)
    _age(app, message_id, PENDING_SECONDS + 1)
    with app.app_context():
        seen = db.session.get(Message, message_id)  # read as pending and overdue
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as conn:  # another process claims it now
            conn.execute(text("UPDATE messages SET status = 'streaming', updated_at = :now "
                              "WHERE id = :id"), {"now": utcnow(), "id": message_id})
        engine.dispose()
        assert mark_interrupted(seen) is False
        db.session.commit()
        assert seen.status == "streaming"
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "streaming" and answer.error is None


# -- 14.7: the per-person limits hold under parallel requests ---------------------------------

PARALLEL = 20


def _in_parallel(server, client: WebClient, path: str, data: dict) -> list[int]:
    """POST ``path`` from PARALLEL threads at once (one connection each, same person)."""
    barrier = threading.Barrier(PARALLEL)
    statuses: list[int] = []

    def post(i: int) -> None:
        session = requests.Session()
        session.cookies.update(client.session.cookies)
        barrier.wait()
        response = session.post(server.base + path, data={**data, "content": f"{i}"},
                                headers={"X-CSRFToken": client.token, "HX-Request": "true"},
                                allow_redirects=False, timeout=60)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(statuses) == PARALLEL
    return statuses


def _running(server, username: str) -> list[tuple[int, int]]:
    engine = create_engine(server.env["DATABASE_URL"])
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT m.id, m.conversation_id FROM messages m "
            "JOIN conversations c ON c.id = m.conversation_id "
            "JOIN users u ON u.id = c.user_id "
            "WHERE u.username = :name AND m.status IN ('pending', 'streaming')"),
            {"name": username}).all()
    engine.dispose()
    return [tuple(row) for row in found]


def _threads_at_once(clients, path: str) -> list[int]:
    """POST ``path`` from one thread per client, all released at once."""
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def post(i: int, client) -> None:
        barrier.wait()
        statuses.append(client.post(path, {"content": f"at once {i}"}).status_code)

    threads = [threading.Thread(target=post, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(statuses) == len(clients)
    return statuses


def test_parallel_turns_in_threads_start_at_most_the_allowed(app, make_user, scripted):
    """20 threads against the app in one process (the requests interleave between count and
    insert): at most STREAMS_PER_USER answers start; into one conversation, one."""
    make_user("alice")
    scripted.endless, scripted.delay = True, 0.01
    app.config["STREAMS_PER_USER"] = 3
    clients = [Browserless(app.test_client(), "alice").login() for _ in range(PARALLEL)]
    statuses = _threads_at_once(clients, "/c")
    assert statuses.count(200) == 3 and statuses.count(429) == PARALLEL - 3, statuses
    running = [m for m in rows(app, Message, role="assistant") if m.status == "streaming"]
    assert len(running) == 3
    for answer in running:
        assert clients[0].post(f"/m/{answer.id}/stop").status_code == 204
    assert stops.wait_idle(5)
    conversation_id = running[0].conversation_id
    statuses = _threads_at_once(clients, f"/c/{conversation_id}/messages")
    assert statuses.count(200) == 1 and statuses.count(409) == PARALLEL - 1, statuses
    assert len(rows(app, Message, conversation_id=conversation_id)) == 4


def test_parallel_requests_start_at_most_the_allowed_answers(tmp_path, fault_server):
    """20 new conversations at once through gunicorn (three workers): at most STREAMS_PER_USER
    answers start, the rest get 429; 20 messages at once into one conversation: one starts,
    the rest get 409."""
    server = serve(tmp_path, fault_server, "endless", workers=3,
                     FLASK_STREAMS_PER_USER="3", FLASK_MESSAGE_RATE_LIMIT="10000 per minute")
    try:
        server.flask("users", "create", "bob", "--password", "correct horse")
        alice = WebClient(server.base).login("alice", "correct horse")
        statuses = _in_parallel(server, alice, "/c", {})
        assert sorted(set(statuses)) == [200, 429], statuses
        assert statuses.count(200) == 3, statuses
        assert len(_running(server, "alice")) == 3

        bob = WebClient(server.base).login("bob", "correct horse")
        conversation_id, message_id = bob.start_chat("first")
        assert bob.post(f"/m/{message_id}/stop").status_code == 204
        statuses = _in_parallel(server, bob, f"/c/{conversation_id}/messages", {})
        assert statuses.count(200) == 1 and statuses.count(409) == PARALLEL - 1, statuses
        running = _running(server, "bob")
        assert len(running) == 1 and running[0][1] == conversation_id
    finally:
        server.stop()


def test_parallel_retries_restart_an_answer_once(tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "endless", workers=3,
                     FLASK_STREAMS_PER_USER="3", FLASK_MESSAGE_RATE_LIMIT="10000 per minute")
    try:
        alice = WebClient(server.base).login("alice", "correct horse")
        _, message_id = alice.start_chat("stop me, then retry me")
        assert alice.post(f"/m/{message_id}/stop").status_code == 204
        statuses = _in_parallel(server, alice, f"/m/{message_id}/retry", {})
        assert statuses.count(200) == 1 and statuses.count(409) == PARALLEL - 1, statuses
        assert _running(server, "alice") == [(message_id, _running(server, "alice")[0][1])]
    finally:
        server.stop()


# -- 14.11: a page whose worker was killed ends in a state a person can act on -----------------



def _wait_for_text(locator, needle: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # all_inner_texts() does not wait: the element may be swapped out at any moment.
        if any(needle in t for t in locator.all_inner_texts()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in {locator}")


@pytest.mark.browser
def test_a_page_whose_worker_was_killed_ends_interrupted_with_retry(browser, tmp_path,
                                                                    fault_server):
    """SIGKILL the worker mid-answer: the open page notices its stream broke and, once the
    answer is stale (STREAM_STALE_SECONDS=2 here), shows it Interrupted with Retry, both for an
    answer the page streams itself (a new conversation) and for one streamed by the composer's
    own request (a second turn)."""
    server = serve(tmp_path, fault_server, "endless", FLASK_STREAM_STALE_SECONDS="2")
    try:
        page = browser.new_page()
        sign_in(page, server.base)
        page.fill("#content", "Keep going")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.base}/c/*")
        _wait_for_text(page.locator(".msg-assistant .streaming"), "t10")
        time.sleep(1.2)  # a partial save has happened
        kill_workers(server)
        first = page.locator(".msg-assistant").first
        page.locator(".msg-assistant.status-error").first.wait_for(timeout=20000)
        assert "Interrupted" in first.inner_text()
        assert "t0 t1 t2" in first.inner_text()  # what was saved is shown
        assert first.locator("form.retry button").is_visible()

        # The composer's own stream (a turn in a conversation already open).
        page.fill("#content", "Once more")
        page.keyboard.press("Enter")
        second = page.locator(".msg-assistant").nth(1)
        _wait_for_text(second, "t10")
        time.sleep(1.2)
        kill_workers(server)
        page.locator(".msg-assistant.status-error").nth(1).wait_for(timeout=20000)
        assert "Interrupted" in second.inner_text()
        assert second.locator("form.retry button").is_visible()
        # The page agrees with the server.
        page.reload()
        assert page.locator(".msg-assistant.status-error").count() == 2
    finally:
        server.stop()


def _worker_talking_to(server, port: int) -> int:
    """The pid of the gunicorn worker with a connection open to 127.0.0.1:``port``."""
    workers = set(subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                                 text=True, check=True).stdout.split())
    found = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, check=True).stdout
    pids = {pid for pid in re.findall(r"pid=(\d+)", found) if pid in workers}
    assert len(pids) == 1, (found, workers)
    return int(pids.pop())


@pytest.mark.browser
def test_a_page_whose_stream_falls_silent_ends_interrupted(browser, tmp_path, fault_server):
    """A worker that stops dead without closing its connections (SIGSTOP here: a half-open
    connection, as when a machine vanishes): the page's stream brings nothing more, the page
    asks the server after its silence limit, and the other worker says the answer was
    interrupted."""
    server = serve(tmp_path, fault_server, "endless", FLASK_STREAM_STALE_SECONDS="2",
                     workers=2)
    frozen = None
    try:
        page = browser.new_page()
        log = []
        page.on("console", lambda msg: log.append(msg.text))
        page.on("requestfailed", lambda r: log.append("failed " + r.url))
        sign_in(page, server.base)
        page.fill("#content", "Keep going")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.base}/c/*")
        _wait_for_text(page.locator(".msg-assistant .streaming"), "t10")
        time.sleep(1.2)  # a partial save has happened
        frozen = _worker_talking_to(server, int(re.search(r":(\d+)/", fault_server.url("x"))[1]))
        os.kill(frozen, signal.SIGSTOP)
        answer = page.locator(".msg-assistant").first
        try:
            page.locator(".msg-assistant.status-error").wait_for(timeout=60000)
        except Exception:
            print("\n".join(log))  # what the page saw, for the failure report
            raise
        assert "Interrupted" in answer.inner_text()
        assert answer.locator("form.retry button").is_visible()
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGKILL)
        server.stop()


def test_the_pending_deadline_must_be_a_positive_number():
    """A deadline that is not a number would fail every turn: the app refuses to start."""
    config = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    assert not [p for p in config_problems(config) if "STREAM_PENDING" in p]
    for bad in ("soon", 0, -5, True):
        config["STREAM_PENDING_SECONDS"] = bad
        assert f"STREAM_PENDING_SECONDS must be a positive number, not {bad!r}" in \
            config_problems(config)
