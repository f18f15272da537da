"""Reliability: a fault matrix against the misbehaving upstream, clients that leave, workers
that die, and many writers at once. Nothing a person wrote or received is lost."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import (
    answer_row,
    events,
    kill_workers,
    read_stream,
    rows,
    send,
    serve,
    start_chat,
    wait_until,
)
from tests.peers.fault_upstream import NUMBERED, NUMBERED_TEXT, TOKENS
from tests.peers.webclient import WebClient
from webapp.extensions import app_state
from webapp.models import Message
from webapp.providers import ProviderRegistry

EQUING = {"provider": "equing", "model": "gpt-3.5-turbo", "temperature": "0.5", "top_p": "1",
          "presence_penalty": "0", "frequency_penalty": "0", "max_tokens": "",
          "system_prompt": ""}


def point_equing(app, fault_server, scenario: str) -> None:
    """Enable Equing at one scenario of the fault server (the scripted provider stays)."""
    registry = ProviderRegistry.from_config({
        "PROVIDERS": "equing", "EQUING_URL": fault_server.url(scenario),
        "PROVIDER_TIMEOUT": "2,1.5"})
    old = app_state(app).providers
    registry.register(old.get("scripted"))
    registry.default = "scripted"
    app_state(app).providers = registry


# scenario, what the person sees (words), how much text arrived first
MATRIX = [
    ("slow-first", None, TOKENS),
    ("hang", "no data from the upstream|did not answer in time", []),
    ("http500", "HTTP 500: The server had an error", []),
    ("http503", "HTTP 503: no channel is available", []),
    ("http401", "HTTP 401: empty access code", []),
    ("http403", "HTTP 403: you are not allowed", []),
    ("html", "HTTP 502: 502 Bad Gateway", []),
    ("malformed", "malformed event from the upstream", TOKENS[:2]),
    ("error-event", "upstream exploded", TOKENS[:2]),
    ("reset", "connection broke|ended the stream", TOKENS[:3]),
    ("no-done", "before the answer was finished", TOKENS[:3]),
    ("cut", "cut the stream off mid-event", TOKENS[:2]),
]


@pytest.mark.parametrize("scenario, words, received", MATRIX,
                         ids=[m[0] for m in MATRIX])
def test_fault_matrix(alice, bob, app, fault_server, scripted, scenario, words, received):
    point_equing(app, fault_server, scenario)
    assert alice.post("/settings", EQUING).status_code == 200
    conversation_id, message_id = start_chat(alice, f"Question for {scenario}")
    final = events(read_stream(alice, message_id))[-1]
    (answer,) = rows(app, Message, id=message_id)
    user_message = rows(app, Message, conversation_id=conversation_id)[0]
    assert user_message.content == f"Question for {scenario}"  # never lost
    assert answer.content == "".join(received)  # what arrived is kept
    if words is None:
        assert answer.status == "complete"
        return
    assert answer.status == "error"
    assert re.search(words, answer.error), answer.error
    assert 'role="alert"' in final and re.search(words, final)
    assert "Retry" in final
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert re.search(words, page) and f"Question for {scenario}" in page
    # Others are served meanwhile (bob's answers come from the scripted provider).
    bob.refresh_token()
    _, other = start_chat(bob, "Are you there?")
    assert "Hello" in events(read_stream(bob, other))[-1]
    # A retry, once the upstream is well again, answers in place of the failed one.
    point_equing(app, fault_server, "ok")
    retried = alice.post(f"/m/{message_id}/retry")
    assert retried.status_code == 200 and f'/m/{message_id}/stream' in retried.get_data(
        as_text=True)
    assert "Hello" in events(read_stream(alice, message_id))[-1]
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "complete" and answer.content == "".join(TOKENS)
    assert answer.error is None


def test_retry_rules(alice, app, scripted):
    scripted.delay = 0.2
    conversation_id, message_id = start_chat(alice)
    assert alice.post(f"/m/{message_id}/retry").status_code == 409  # still being written
    read_stream(alice, message_id)
    scripted.delay = 0.0
    assert alice.post(f"/m/{message_id}/retry").status_code == 409  # complete
    scripted.fail_with = RuntimeError("boom")
    failed = send(alice, conversation_id, "again")
    final = events(read_stream(alice, failed))[-1]
    assert "Internal error: RuntimeError" in final
    scripted.fail_with = None
    no_js = alice.post(f"/m/{failed}/retry", htmx=False)
    assert no_js.status_code == 303
    # Started again at once, written on the server (the page it goes back to shows it).
    assert wait_until(lambda: rows(app, Message, id=failed)[0].status == "complete")


# -- real servers --------------------------------------------------------------------------

@pytest.mark.parametrize("hold_first", [True, False],
                         ids=["before-first-token", "after-first-token"])
def test_client_leaving_does_not_stop_the_answer(tmp_path, fault_server, hold_first):
    server = serve(tmp_path, fault_server, "numbered")
    try:
        client = WebClient(server.base).login("alice", "correct horse")
        # The upstream holds the rest of the answer (with hold_first, all of it) until the
        # page has left.
        gate = fault_server.gate(hold_first=hold_first)
        before = len(fault_server.closed_at)
        conversation_id, message_id = client.start_chat("Then I close the tab")
        response = client.session.get(f"{server.base}/m/{message_id}/stream", stream=True,
                                      timeout=30)
        chunks = response.iter_content(chunk_size=None)
        received = next(chunks)  # the stream has started
        if not hold_first:
            while NUMBERED[0][-1].encode() not in received:
                received += next(chunks)
        response.close()  # the tab is closed
        gate.release(len(NUMBERED))
        # The answer is written to its end all the same, and its upstream request was not cut.
        assert wait_until(lambda: answer_row(server, message_id).status != "streaming",
                          seconds=30)
        assert tuple(answer_row(server, message_id)) == ("complete", None, NUMBERED_TEXT)
        assert len(fault_server.closed_at) == before
        # Opened later, the conversation shows the whole answer.
        page = client.session.get(f"{server.base}/c/{conversation_id}", timeout=10).text
        assert f'id="m-{message_id}"' in page and "n79" in page
        assert "msg-assistant status-complete" in page
    finally:
        server.stop()


def test_a_killed_worker_leaves_an_interrupted_answer_not_an_endless_one(tmp_path,
                                                                        fault_server):
    server = serve(tmp_path, fault_server, "endless", FLASK_STREAM_STALE_SECONDS="2")
    try:
        client = WebClient(server.base).login("alice", "correct horse")
        conversation_id, message_id = client.start_chat("Keep going")
        response = client.session.get(f"{server.base}/m/{message_id}/stream", stream=True,
                                      timeout=30)
        chunks = response.iter_content(chunk_size=None)
        received = b""
        while b"t10" not in received:
            received += next(chunks)
        time.sleep(1.2)  # a partial save has happened
        kill_workers(server)
        response.close()
        assert answer_row(server, message_id).status == "streaming"  # as the dead worker left it
        time.sleep(2.5)
        assert wait_until(lambda: client.session.get(f"{server.base}/healthz", timeout=2).ok,
                          seconds=10)  # gunicorn made a new worker
        page = client.session.get(f"{server.base}/c/{conversation_id}", timeout=10).text
        assert "Interrupted: the server stopped while answering." in page
        status, error, content = answer_row(server, message_id)
        assert status == "error" and content.startswith("t0 t1 t2")
        # And the conversation goes on.
        assert "Retry" in page
    finally:
        server.stop()


def test_many_writers_at_once_lose_nothing(tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "many", GUNICORN_WORKERS="3",
                     FLASK_STREAMS_PER_USER="1000", FLASK_MESSAGE_RATE_LIMIT="10000 per minute")
    try:
        client = WebClient(server.base).login("alice", "correct horse")
        turns = [client.start_chat(f"writer {i}") for i in range(24)]
        results: dict[int, str] = {}

        def read(message_id):
            reader = WebClient(server.base, session=client.session, token=client.token)
            results[message_id] = reader.stream(message_id)[-1].data

        threads = [threading.Thread(target=read, args=(m,)) for _, m in turns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        expected = "".join(f"w{i} " for i in range(50))
        for _, message_id in turns:
            assert "status-complete" in results[message_id], results[message_id][-300:]
            status, error, content = answer_row(server, message_id)
            assert (status, error, content) == ("complete", None, expected)
        engine = create_engine(server.env["DATABASE_URL"])
        with engine.connect() as conn:
            users = conn.execute(text("SELECT count(*) FROM messages WHERE role = 'user'"))
            assert users.scalar() == 24
        engine.dispose()
    finally:
        server.stop()
