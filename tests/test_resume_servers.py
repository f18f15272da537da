"""An answer outlives the page, the worker that serves it and a restart, against real gunicorn.

The answer is generated in the process that accepted its message; a page served by another
worker or another app server follows it through the database, and a page that reconnects
resumes after the last event it got. The upstream is the fault server's ``numbered`` scenario
(groups of numbered words, each group after the first let go by the test through a gate), so a
test acts while the answer is at a known place, without sleeping.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from html import unescape

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers import PARTIAL, answer_row, kill_workers, serve, wait_until, worker_pids
from tests.peers.appserver import AppServer
from tests.peers.database import postgres_schema
from tests.peers.fault_upstream import NUMBERED, NUMBERED_TEXT
from tests.peers.webclient import Event, WebClient
from webapp.streaming import INTERRUPTED, SHUTTING_DOWN, STOPPED_BY_USER
from webapp.streaming.ending import over_time

#: The text of the first group of words, and of the first two (what the upstream has sent
#: while its gate holds the rest).
FIRST = "".join(NUMBERED[0])
FIRST_TWO = FIRST + "".join(NUMBERED[1])
#: What is left once the first group went: one release per group.
REST = len(NUMBERED) - 1


def added_text(events: list[Event], message_id: int, after: int = 0) -> str:
    """The text a stream's messages add to the answer on the page (it resumed after offset
    ``after``), checked against their ids: each message's id is the offset of the answer's
    text once it is swapped in, so no text is repeated or skipped between them."""
    offset, text = after, ""
    for event in events:
        if event.id is None:
            continue  # the final message
        partials = PARTIAL.findall(event.data)
        body = [html for target, _, html in partials if target == f"m-{message_id}-body"]
        if body:
            # A resumed stream's first message: the whole body, the new words included (this
            # answer has no line breaks, so it is one open block holding all of its text).
            opened = re.search(r'id="m-\d+-open">([^<]*)</div>', body[0])
            piece = unescape(opened.group(1))[offset:]
        else:
            piece = "".join(unescape(html) for target, swap, html in partials
                            if target == f"m-{message_id}-open"
                            and swap in ("innerHTML", "beforeend"))
        offset += len(piece)
        assert event.id == str(offset), (event.id, offset, piece)
        text += piece
    return text


def read_to(stream: Iterator[Event], offset: int) -> list[Event]:
    """Messages of ``stream`` until one brings the page to ``offset`` of the answer's text."""
    got = []
    for event in stream:
        got.append(event)
        if event.id is not None and int(event.id) >= offset:
            return got
    raise AssertionError(f"the stream ended before offset {offset}: {got[-1:]}")


def same_person(client: WebClient, base: str) -> WebClient:
    """The signed-in person of ``client`` on another connection (or another server)."""
    session = requests.Session()
    session.cookies.update(client.session.cookies)
    return WebClient(base, session=session, token=client.token)


def followed(server: AppServer, message_id: int) -> bool:
    """Whether a process that does not generate the answer follows it for a page."""
    engine = create_engine(server.env["DATABASE_URL"])
    with engine.connect() as conn:
        until = conn.execute(text("SELECT followed_until FROM messages WHERE id = :id"),
                             {"id": message_id}).scalar()
    engine.dispose()
    return until is not None


def serving(server: AppServer) -> bool:
    """Whether ``server`` answers now."""
    try:
        return requests.get(f"{server.base}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


# -- two app servers on one PostgreSQL --------------------------------------------------------

@pytest.fixture(scope="module")
def pair(tmp_path_factory, fault_server):
    """Two gunicorn instances on one PostgreSQL schema, both at the ``numbered`` scenario, and
    alice signed in on the first (``one``, ``two``, her client on ``one``)."""
    tmp = tmp_path_factory.mktemp("pair")
    env = {"FLASK_PROVIDERS": "equing", "FLASK_EQUING_URL": fault_server.url("numbered"),
           # One secret: a cookie of one server is good on the other.
           "FLASK_SECRET_KEY": "s" * 32}
    with postgres_schema() as url:
        servers = []
        try:
            for name in ("one", "two"):
                (tmp / name).mkdir()
                servers.append(AppServer(tmp / name, env, database_url=url).start())
            one, two = servers
            one.flask("users", "create", "alice", "--password", "correct horse")
            yield one, two, WebClient(one.base).login("alice", "correct horse")
        finally:
            for server in servers:
                server.stop()


def test_a_page_on_the_other_server_gets_the_whole_answer(pair, fault_server):
    one, two, alice = pair
    gate = fault_server.gate()
    _, message_id = alice.start_chat("Count for me")  # generated by server one
    stream = same_person(alice, two.base).events(message_id)  # read on server two
    got = read_to(stream, len(FIRST))  # it follows the running answer
    gate.release(REST)
    got += list(stream)
    # Every word once, in order, and the answer complete.
    assert added_text(got, message_id) == NUMBERED_TEXT
    assert "status-complete" in got[-1].data and "n79" in got[-1].data
    assert tuple(answer_row(one, message_id)) == ("complete", None, NUMBERED_TEXT)


def test_a_page_resumes_on_the_other_server_after_its_last_event(pair, fault_server):
    one, two, alice = pair
    gate = fault_server.gate()
    _, message_id = alice.start_chat("Count, and I lose my connection")  # generated by one
    # Read on server one up to the end of the first group, then the connection drops.
    stream = alice.events(message_id)
    before = read_to(stream, len(FIRST))
    stream.close()
    last = before[-1].id
    gate.release()  # the answer goes on meanwhile
    # The page reconnects, through the load balancer, to server two.
    stream = same_person(alice, two.base).events(message_id, last_event_id=last)
    after = read_to(stream, len(FIRST_TWO))
    gate.release(REST - 1)
    after += list(stream)
    assert added_text(before, message_id) == FIRST
    # The rest, from where the page was: no word repeated, none missing.
    assert added_text(after, message_id, int(last)) == NUMBERED_TEXT[int(last):]
    # The first message puts the answer's body in the state the stream goes on from.
    assert f'hx-target="#m-{message_id}-body"' in after[0].data and "n19" in after[0].data
    assert "status-complete" in after[-1].data
    assert tuple(answer_row(one, message_id)) == ("complete", None, NUMBERED_TEXT)


def test_stop_on_the_server_that_does_not_generate_the_answer(pair, fault_server):
    one, two, alice = pair
    gate = fault_server.gate()
    _, message_id = alice.start_chat("Count until I say stop")  # generated by server one
    other = same_person(alice, two.base)
    stream = other.events(message_id)
    read_to(stream, len(FIRST))
    # Server two does not run the answer: the stop reaches server one through the database.
    assert other.post(f"/m/{message_id}/stop").status_code == 204
    final = list(stream)[-1].data
    assert "status-stopped" in final and STOPPED_BY_USER in final
    assert tuple(answer_row(one, message_id)) == ("stopped", STOPPED_BY_USER, FIRST)
    gate.release(REST)  # the upstream's request ends (its reader is gone)


# -- one server, several workers ----------------------------------------------------------------

def test_pages_on_several_workers_all_get_the_whole_answer(tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "numbered", workers=3, FLASK_STREAMS_PER_USER="1")
    try:
        alice = WebClient(server.base).login("alice", "correct horse")
        gate = fault_server.gate()
        _, message_id = alice.start_chat("Count for all of us")
        # Pages on connections of their own, which gunicorn hands to any of its workers: at
        # least eight, and more until one is on a worker that does not generate the answer
        # (it marks the answer followed).
        results: dict[int, list[Event]] = {}
        threads: list[threading.Thread] = []

        def page(number: int, attached: threading.Event) -> None:
            stream = same_person(alice, server.base).events(message_id)
            got = read_to(stream, len(FIRST))
            attached.set()
            results[number] = got + list(stream)

        while len(threads) < 8 or (not followed(server, message_id) and len(threads) < 30):
            attached = threading.Event()
            threads.append(threading.Thread(target=page, args=(len(threads), attached),
                                            daemon=True))
            threads[-1].start()
            assert attached.wait(30)
        assert followed(server, message_id)
        # Pages are not answers: at STREAMS_PER_USER (1) another answer is refused, as before.
        refused = alice.post("/c", {"content": "One more"})
        assert refused.status_code == 429
        assert "at most 1 at once" in refused.text
        gate.release(REST)
        for thread in threads:
            thread.join(60)
        assert len(results) == len(threads)
        for number, got in results.items():
            assert added_text(got, message_id) == NUMBERED_TEXT, number
            assert "status-complete" in got[-1].data
        assert tuple(answer_row(server, message_id)) == ("complete", None, NUMBERED_TEXT)
        # Once it is written, the next answer may start.
        _, second = alice.start_chat("And now?")
        assert "n79" in alice.stream(second)[-1].data
    finally:
        server.stop()


# -- a restart, a killed worker, the time limit ---------------------------------------------------

def test_a_reload_lets_answers_end_or_saves_them_stopped(tmp_path, fault_server):
    # Old workers get 5 - 3 = 2.5 s after the reload's SIGTERM to finish their answers.
    server = serve(tmp_path, fault_server, "numbered", GUNICORN_GRACEFUL_TIMEOUT="5")
    log = ""
    try:
        alice = WebClient(server.base).login("alice", "correct horse")
        finishing = fault_server.gate()
        _, ends = alice.start_chat("I will finish in time")
        assert wait_until(lambda: len(fault_server.requests) and
                          fault_server.requests[-1]["body"]["messages"][-1]["content"]
                          == "I will finish in time")  # its gate is taken
        fault_server.gate()  # never opened: this answer outlives the grace
        _, cut = alice.start_chat("I will not")
        for message_id in (ends, cut):  # both running, their first group saved
            assert wait_until(lambda m=message_id: answer_row(server, m).content == FIRST)
        old = worker_pids(server)
        server.proc.send_signal(signal.SIGHUP)
        # A new worker serves; the old one has its SIGTERM and is finishing its answers.
        assert wait_until(lambda: worker_pids(server) - old, seconds=30)
        finishing.release(REST)
        assert wait_until(lambda: answer_row(server, cut).status != "streaming", seconds=30)
        assert tuple(answer_row(server, ends)) == ("complete", None, NUMBERED_TEXT)
        assert tuple(answer_row(server, cut)) == ("stopped", SHUTTING_DOWN, FIRST)
        assert wait_until(lambda: not worker_pids(server) & old, seconds=30)
        # The server went on serving: a new message is answered.
        assert server.proc.poll() is None
        _, after = alice.start_chat("Still there?")
        assert "status-complete" in alice.stream(after)[-1].data
    finally:
        proc = server.proc
        server.stop()
        if proc is not None:
            log = proc.stdout.read()
    assert "Traceback" not in log and "exited with code" not in log, log


def test_a_killed_worker_s_answer_ends_interrupted(tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "numbered", FLASK_STREAM_STALE_SECONDS="2")
    try:
        alice = WebClient(server.base).login("alice", "correct horse")
        gate = fault_server.gate()
        conversation_id, message_id = alice.start_chat("Count until the worker dies")
        assert wait_until(lambda: answer_row(server, message_id).content == FIRST)
        kill_workers(server)
        gate.release(REST)  # too late: no one reads it
        # The killed worker's connections are gone with it; gunicorn starts another worker.
        alice.session.close()
        assert wait_until(lambda: serving(server), seconds=30)
        # A page reading it (on the new worker) follows it until it is stale, then is told.
        final = alice.stream(message_id)[-1].data
        assert "status-error" in final and INTERRUPTED in final
        assert tuple(answer_row(server, message_id)) == ("error", INTERRUPTED, FIRST)
        page = alice.session.get(f"{server.base}/c/{conversation_id}", timeout=10).text
        assert INTERRUPTED in page and "Retry" in page
    finally:
        server.stop()


def test_an_answer_stops_at_its_time_limit_with_its_text(tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "endless", FLASK_STREAM_MAX_SECONDS="1.5")
    try:
        alice = WebClient(server.base).login("alice", "correct horse")
        _, message_id = alice.start_chat("Talk for ever")
        final = alice.stream(message_id)[-1].data
        reason = over_time(1.5)
        assert reason == "Stopped: the answer reached its time limit (1.5 seconds)."
        assert "status-stopped" in final and reason in final
        status, error, content = answer_row(server, message_id)
        assert (status, error) == ("stopped", reason)
        assert content.startswith("t0 t1 t2 t3") and "t3 " in final
    finally:
        server.stop()
