"""Chat turns through the running app under load, measured against the upstream direct.

    .venv/bin/python -m bench.load --streams 50 [--tokens 200 --gap-ms 20] [--runs 3]
    .venv/bin/python -m bench.load --sequential 20          # one turn at a time: overhead
    .venv/bin/python -m bench.load --streams 1 --tokens 2000 --gap-ms 0   # a burst
    .venv/bin/python -m bench.load --sequential 20 --tokens 600 --blocks  # cost of formatting
    .venv/bin/python -m bench.load --attach --streams 20    # pages that attach mid-answer
    .venv/bin/python -m bench.load --attach --peer --streams 20   # ... and another app server
    .venv/bin/python -m bench.load --api --sequential 20    # the OpenAI-compatible API instead

It starts the fake upstream (``bench.fake_upstream``) and the app under gunicorn with the shipped
``gunicorn.conf.py`` (provider: the OpenAI-compatible one, pointed at the fake upstream), signs
in, and runs the same turns twice in each run: straight to the upstream, then through the app
as the page does: post the message as htmx (the answer is the turn's HTML, with the answer's
id), then read the answer's event stream (``GET /m/N/stream``) on the same keep-alive
connection, so from the worker that generates it. Each token carries its send time, so the
client measures time to first token (from the start of the turn, the post included), each
token's delivery delay and the gaps between events. It also samples the app's total resident
memory (master and workers). Prints medians and 99th percentiles and the ratios app/direct.

``--attach``: in each turn, once the first reader has ``--attach-after`` tokens, more readers
open the same answer's stream, as a page opened or reloaded mid-answer does: one served by the
worker that generates it, one by the other worker of the same gunicorn (which worker serves a
connection is read from ``/proc``: the socket's inode in the worker's open files), and with
``--peer`` one by a second gunicorn on the same PostgreSQL database (both servers then use it;
``--database-url``, default ``$TEST_DATABASE_URL`` or the local ``test`` database, in a schema
of its own). For the tokens sent after a reader attached it reports their delivery delay and
the delay added against the first reader (the same token's arrival at both).

``--api``: the same requests sent to the app's OpenAI-compatible API instead of as chat turns:
``POST /v1/chat/completions`` with ``"stream": true``, a Bearer key made with ``flask api-keys
create`` and the model ``/v1/models`` lists (``openai/<the upstream's model>``), one connection
per call as for the upstream direct. The app relays each upstream chunk as a
``chat.completion.chunk`` event whose content is the token's text, stamp included; a call that
does not end with ``finish_reason`` and ``data: [DONE]``, or whose stamps did not all arrive, is
an error.

Every run also reports the CPU each party used, straight to the upstream and through the app:
the app, the fake upstream, this client, and the rest of the machine (other sessions' tests
share its two cores: a figure measured beside them says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fake_upstream import params_from  # noqa: E402
from tests.peers import process  # noqa: E402
from tests.peers.appserver import AppServer  # noqa: E402
from tests.peers.webclient import WebClient  # noqa: E402

_STAMP = re.compile(rb"\[(\d{16})\]")
#: The PostgreSQL database ``--peer`` uses when none is named (the tests' one).
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Turn:
    """What one chat turn measured (seconds)."""

    ttft: float | None = None
    delays: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    #: Tokens in the first event, and when the last token arrived (for the streaming rate).
    first_tokens: int = 0
    last: float | None = None
    post: float | None = None
    seconds: float = 0.0
    error: str | None = None
    #: Tokens that came first in the final message rather than in a text event.
    final_only: int = 0
    #: Each token's arrival (wall clock, µs) by its send stamp.
    arrivals: dict[bytes, int] = field(default_factory=dict)


async def _request(url: str, method: str = "GET", body: bytes = b"",
                   headers: dict[str, str] | None = None, on_chunk=None) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 client (one connection per request) that hands each piece of a
    chunked body to ``on_chunk`` as it arrives; returns the status and the whole body."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
             f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        chunked = b"transfer-encoding: chunked" in head.lower()
        out = bytearray()
        if chunked:
            while True:
                size = int((await reader.readline()).strip().split(b";")[0], 16)
                if size == 0:
                    break
                data = await reader.readexactly(size + 2)
                out += data[:-2]
                if on_chunk:
                    on_chunk(data[:-2])
        else:
            data = await reader.read()
            out += data
            if on_chunk and data:
                on_chunk(data)
        return status, bytes(out)
    finally:
        writer.close()


def _consume(turn: Turn, started: float, last: list[float],
             arrivals: dict[bytes, int] | None = None):
    """An ``on_chunk`` that stamps every streamed token's arrival. Events are split on the
    SSE blank line; a token sent again (in a finished block's HTML, in the open block's text
    after a block was cut from it, in the app's last event, the whole answer rendered again
    with ``hx-swap-oob``) is counted once. Tokens that come first in that last event (none
    should: every text event comes before it) are counted in ``turn.final_only``."""
    pending = bytearray()
    seen: set[bytes] = set()

    def on_chunk(data: bytes) -> None:
        now = time.perf_counter()
        wall_us = time.time_ns() // 1000
        pending.extend(data)
        *events, rest = bytes(pending).split(b"\n\n")
        pending[:] = rest
        new: dict[bytes, None] = {}
        for event in events:
            found = [s for s in _STAMP.findall(event) if s not in seen and s not in new]
            if b"hx-swap-oob" in event:
                turn.final_only += len(found)
            new.update(dict.fromkeys(found))
        stamps = list(new)
        seen.update(stamps)
        if not stamps:
            return
        if turn.ttft is None:
            turn.ttft = now - started
            turn.first_tokens = len(stamps)
        else:
            turn.gaps.append(now - last[0])
        last[0] = now
        turn.last = now - started
        turn.tokens += len(stamps)
        turn.delays.extend((wall_us - int(s)) / 1e6 for s in stamps)
        if arrivals is not None:
            arrivals.update(dict.fromkeys(stamps, wall_us))

    return on_chunk


def _scenario(tokens: int, gap_ms: float, first_ms: float, blocks: bool = False) -> str:
    return f"bench tokens={tokens} gap_ms={gap_ms} first_ms={first_ms}" + (
        " blocks=1" if blocks else "")


async def direct_turn(upstream: str, prompt: str) -> Turn:
    turn, started, last = Turn(), time.perf_counter(), [0.0]
    body = json.dumps({"model": "fake", "stream": True,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    try:
        status, _ = await _request(upstream + "/v1/chat/completions", "POST", body,
                                   {"Content-Type": "application/json"},
                                   _consume(turn, started, last))
        if status != 200:
            turn.error = f"HTTP {status}"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
    turn.seconds = time.perf_counter() - started
    return turn


def _api_problem(status: int, body: bytes, turn: Turn, expected: int) -> str | None:
    """What is wrong with an API call's answer, if anything: its status, an error event, an
    end other than a ``finish_reason`` and ``[DONE]``, or stamps lost in the relay."""
    if status != 200:
        return f"HTTP {status} {body[:120]!r}"
    if b'data: {"error"' in body:
        return "error event: " + body.split(b'data: {"error"', 1)[1][:160].decode(errors="replace")
    if b'"finish_reason":"stop"' not in body or not body.rstrip().endswith(b"data: [DONE]"):
        return f"the stream did not end with a finish_reason and [DONE]: {body[-120:]!r}"
    if turn.tokens != expected:
        return f"{turn.tokens} of {expected} stamped tokens arrived"
    return None


async def api_turn(base: str, key: str, model: str, prompt: str, expected: int) -> Turn:
    """One streamed call to the app's ``POST /v1/chat/completions``, on a connection of its
    own as ``direct_turn`` does; ``expected``: the tokens the upstream sends."""
    turn, started, last = Turn(), time.perf_counter(), [0.0]
    body = json.dumps({"model": model, "stream": True,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    try:
        status, out = await _request(base + "/v1/chat/completions", "POST", body,
                                     {"Content-Type": "application/json",
                                      "Authorization": f"Bearer {key}"},
                                     _consume(turn, started, last))
        turn.error = _api_problem(status, out, turn, expected)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
    turn.seconds = time.perf_counter() - started
    return turn


class Connection:
    """One keep-alive HTTP/1.1 connection to the app, for requests one after another (as a
    browser reuses its connection: the post and then the answer's stream)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host
        self.local_port: int = writer.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, base: str) -> Connection:
        parts = urlsplit(base)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, on_chunk=None
                      ) -> tuple[int, bytes]:
        """Send a request and read its whole response (chunked or with a length), handing
        each piece of the body to ``on_chunk`` as it arrives; returns status and body."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head.split(b" ", 2)[1])
        out = bytearray()
        if b"transfer-encoding: chunked" in head:
            while True:
                size = int((await self.reader.readline()).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data = (await self.reader.readexactly(size + 2))[:-2]
                out += data
                if on_chunk:
                    on_chunk(data)
        else:
            length = re.search(rb"content-length: *(\d+)", head)
            data = await (self.reader.readexactly(int(length[1])) if length
                          else self.reader.read())
            out += data
            if on_chunk and data:
                on_chunk(data)
        return status, bytes(out)

    def close(self) -> None:
        self.writer.close()


#: The answer's element in the turn's HTML, and the stream URL the page opens for it.
_ANSWER = re.compile(rb'<article class="msg msg-assistant[^"]*" id="m-(\d+)"')
_CONNECT = re.compile(rb'hx-sse:connect="([^"]+)"')


@dataclass
class Reader:
    """A page that opens an answer's stream mid-answer, and what it measured: each token's
    arrival (wall clock, µs) by its send stamp."""

    where: str
    at_us: int = 0
    arrivals: dict[bytes, int] = field(default_factory=dict)
    error: str | None = None
    final_only: int = 0


class Attach:
    """How the readers of one turn that attach mid-answer reach the app: ``server`` (the one
    posted to) and ``peer`` (another app server on the same database, or None)."""

    def __init__(self, server: AppServer, peer: AppServer | None, after_tokens: int):
        self.server, self.peer, self.after_tokens = server, peer, after_tokens
        self.workers = Workers(server)


def _stream_headers(cookie: str) -> dict[str, str]:
    return {"Cookie": cookie, "Accept": "text/event-stream", "HX-Request": "true",
            "Cache-Control": "no-cache"}


async def app_turn(base: str, cookie: str, token: str, conversation_id: int,
                   prompt: str, attach: Attach | None = None) -> tuple[Turn, list[Reader]]:
    """Post a message as htmx does (the answer is the turn's HTML), then read the answer's
    stream on the same connection, as the page does. With ``attach``, more readers open the
    stream once this one has ``attach.after_tokens`` tokens."""
    turn, started, last = Turn(), time.perf_counter(), [0.0]
    headers = {"Cookie": cookie, "X-CSRFToken": token, "HX-Request": "true",
               "Accept": "text/html", "Content-Type": "application/x-www-form-urlencoded"}
    form = ("content=" + requests.utils.quote(prompt)).encode()
    arrivals: dict[bytes, int] = {}
    enough = asyncio.Event()
    consume = _consume(turn, started, last, arrivals)

    def on_chunk(data: bytes) -> None:
        consume(data)
        if attach and turn.tokens >= attach.after_tokens:
            enough.set()

    readers: list[Reader] = []
    attaching = None
    connection = None
    try:
        connection = await Connection.open(base)
        status, body = await connection.request(
            "POST", f"/c/{conversation_id}/messages", form, headers)
        turn.post = time.perf_counter() - started
        answer, url = _ANSWER.search(body), _CONNECT.search(body)
        if status != 200 or not answer or not url:
            turn.error = f"post: HTTP {status} {body[:120]!r}"
        else:
            if attach:
                attaching = asyncio.ensure_future(
                    _attach(attach, cookie, url[1].decode(), connection.local_port, enough,
                            readers))
            status, body = await connection.request(
                "GET", url[1].decode().replace("&amp;", "&"), b"",
                _stream_headers(cookie), on_chunk)
            if status != 200:
                turn.error = f"stream: HTTP {status} {body[:120]!r}"
            elif b"status-complete" not in body:
                turn.error = "the answer did not complete: " + (
                    re.search(rb'msg-error[^>]*>([^<]*)', body) or [b"", b"?"])[1].decode()
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
    finally:
        if connection:
            connection.close()
    enough.set()  # an attacher still waiting (the answer was short, or failed) goes now
    if attaching:
        await attaching
    turn.seconds = time.perf_counter() - started
    turn.arrivals = arrivals
    return turn, readers


async def _attach(attach: Attach, cookie: str, url: str, posted_from: int,
                  enough: asyncio.Event, readers: list[Reader]) -> None:
    """Once ``enough`` is set, open connections until one is served by the worker that
    accepted the post (and so generates the answer) and one by another worker of the same
    server, plus one to the peer server, and read the stream on each, concurrently."""
    server = attach.server
    generating = await attach.workers.of(posted_from)
    found: dict[str, Connection] = {}
    try:
        # Probed when it is time to attach: a connection idle for longer than gunicorn's
        # keepalive (5 s) is closed.
        await enough.wait()
        for _ in range(_PROBES):
            if len(found) == 2:
                break
            connection = await Connection.open(server.base)
            # A request on it first, so a worker has accepted it.
            await connection.request("GET", "/healthz")
            worker = await attach.workers.of(connection.local_port)
            where = "same worker" if worker == generating else "other worker"
            if worker is None or generating is None or where in found:
                connection.close()
            else:
                found[where] = connection
        for where in ("same worker", "other worker"):
            if where not in found:
                readers.append(Reader(where, error=f"no connection landed on the {where} "
                                                   f"in {_PROBES} tries"))
        if attach.peer is not None:
            found["other server"] = await Connection.open(attach.peer.base)
        jobs = [_read_attached(Reader(where), connection, cookie, url)
                for where, connection in found.items()]
        readers.extend(await asyncio.gather(*jobs))
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        readers.append(Reader("probe", error=f"{type(exc).__name__}: {exc}"))
    finally:
        for connection in found.values():
            connection.close()


#: How many connections a turn opens at most to find one on each worker.
_PROBES = 40


async def _read_attached(reader: Reader, connection: Connection, cookie: str,
                         url: str) -> Reader:
    """Read the answer's stream from its start, as a page opened mid-answer does with the
    text it was rendered with; record when each token arrives."""
    scratch = Turn()
    reader.at_us = time.time_ns() // 1000
    try:
        # From the start (after=0): whatever the page had, the tokens measured are those sent
        # after it attached, which every page receives live.
        status, body = await connection.request(
            "GET", url.replace("&amp;", "&").split("?")[0] + "?after=0", b"",
            _stream_headers(cookie),
            _consume(scratch, time.perf_counter(), [0.0], reader.arrivals))
        reader.final_only = scratch.final_only
        if status != 200:
            reader.error = f"stream: HTTP {status} {body[:120]!r}"
        elif b"status-complete" not in body:
            reader.error = "the answer did not complete"
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        reader.error = f"{type(exc).__name__}: {exc}"
    return reader


class Workers:
    """Which worker of a gunicorn serves a connection, told by the client's port: the
    server's end of the connection is a socket whose inode is among that worker's open files.
    One look at ``/proc`` answers every turn waiting at the time."""

    def __init__(self, server: AppServer):
        self.server = server
        self.by_port: dict[int, int] = {}
        self._lock = asyncio.Lock()

    async def of(self, client_port: int) -> int | None:
        """The worker's pid (None: not found, e.g. not accepted yet, in three looks)."""
        for _ in range(3):
            if client_port in self.by_port:
                return self.by_port[client_port]
            async with self._lock:
                if client_port not in self.by_port:
                    self.by_port = await asyncio.get_running_loop().run_in_executor(
                        None, self._look)
        return self.by_port.get(client_port)

    def _look(self) -> dict[int, int]:
        ports: dict[str, int] = {}  # the app's sockets' inodes -> the client's port
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                fields = row.split()
                local, remote = fields[1].rsplit(":", 1)[1], fields[2].rsplit(":", 1)[1]
                if int(local, 16) == self.server.port and int(remote, 16):
                    ports[f"socket:[{fields[9]}]"] = int(remote, 16)
        found: dict[int, int] = {}
        for pid in MemorySampler(self.server.proc.pid).tree()[1:]:
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        port = ports.get(os.readlink(f"/proc/{pid}/fd/{fd}"))
                        if port is not None:
                            found[port] = pid
            except OSError:
                continue
        return found


class MemorySampler:
    """Samples the resident memory of a process and its children (the gunicorn tree)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.own_cpu = 0.0

    def tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    ppid = int(stat.rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss(self) -> int:
        total = 0
        for pid in self.tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def __enter__(self):
        def run():
            while not self._stop.is_set():
                self.peak = max(self.peak, self.rss())
                # Its own cost, so that the client's CPU can leave it out: every sample
                # reads the whole of /proc.
                self.own_cpu = time.thread_time()
                self._stop.wait(0.2)

        # The processes are looked up once: walking /proc costs the client milliseconds.
        self.pids = self.tree()
        self.cpu_start = proc_cpu(self.pids)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.cpu_used = proc_cpu(self.pids) - self.cpu_start


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """CPU seconds each party used in a run: the app (master and workers), the fake upstream,
    this client (its turns' event loop; the memory samplers' reads of ``/proc`` left out), the
    rest of the machine (other processes, such as another session's tests, and the kernel's
    work no process is charged for): the figures are only worth comparing when it is small."""

    app: float = 0.0
    upstream: float = 0.0
    client: float = 0.0
    rest: float = 0.0
    #: The run's duration (wall clock): CPU seconds over it are cores.
    wall: float = 0.0

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.app + other.app, self.upstream + other.upstream,
                   self.client + other.client, self.rest + other.rest, self.wall + other.wall)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, not idle or waiting on I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summary(turns: list[Turn]) -> dict[str, float]:
    ok = [t for t in turns if not t.error and t.ttft is not None]
    delays = [d for t in ok for d in t.delays]
    gaps = [g for t in ok for g in t.gaps]
    tokens = sum(t.tokens for t in ok)
    busy = max((t.seconds for t in ok), default=0)
    return {"turns": len(turns), "errors": len(turns) - len(ok),
            "ttft_p50": pct([t.ttft for t in ok], 50), "ttft_p99": pct([t.ttft for t in ok], 99),
            "post_p50": pct([t.post for t in ok if t.post is not None], 50),
            "post_p99": pct([t.post for t in ok if t.post is not None], 99),
            "delay_p50": pct(delays, 50), "delay_p99": pct(delays, 99),
            "gap_p99": pct(gaps, 99), "tokens_per_s": tokens / busy if busy else 0.0,
            "tokens": tokens, "final_only": sum(t.final_only for t in ok),
            "stream_rate": statistics.median(
                [(t.tokens - t.first_tokens) / (t.last - t.ttft) for t in ok
                 if t.last is not None and t.last > t.ttft] or [0.0])}


def attach_summary(turns: list[Turn], readers: list[list[Reader]]) -> dict[str, dict]:
    """For each kind of attached reader: how many, errors, and over the tokens sent after it
    attached, their delivery delay and the delay added against the turn's first reader."""
    out: dict[str, dict] = {}
    for turn, attached in zip(turns, readers, strict=True):
        for reader in attached:
            s = out.setdefault(reader.where, {"readers": 0, "errors": 0, "delays": [],
                                              "added": [], "first": [], "missing": 0,
                                              "final_only": 0})
            s["readers"] += 1
            s["final_only"] += reader.final_only
            if reader.error or turn.error:
                s["errors"] += 1
                s.setdefault("first_errors", []).append(reader.error or turn.error)
                continue
            for stamp, sent in ((k, int(k)) for k in turn.arrivals):
                if sent < reader.at_us:
                    continue
                arrived = reader.arrivals.get(stamp)
                if arrived is None:
                    s["missing"] += 1
                    continue
                s["delays"].append((arrived - sent) / 1e6)
                s["first"].append((turn.arrivals[stamp] - sent) / 1e6)
                s["added"].append((arrived - turn.arrivals[stamp]) / 1e6)
    for s in out.values():
        for name in ("delays", "added", "first"):
            values = s.pop(name)
            s[f"{name}_p50"], s[f"{name}_p99"] = pct(values, 50), pct(values, 99)
            s["tokens"] = len(values)
    return out


class Bench:
    """The fake upstream and the app under gunicorn, ready for turns. ``peer``: a second
    gunicorn on the same database (which must then be PostgreSQL: ``database_url``)."""

    def __init__(self, env: dict[str, str] | None = None, database_url: str | None = None,
                 peer: bool = False, api: bool = False):
        self.env, self.database_url, self.peer_wanted = env or {}, database_url, peer
        self.peer: AppServer | None = None
        #: Turns through the app are calls to its API (with this key and model), not chat turns.
        self.api = api
        self.api_key = self.api_model = ""

    def __enter__(self) -> Bench:
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.upstream = self._start_upstream()
        env = {
            "FLASK_PROVIDERS": "openai", "FLASK_OPENAI_BASE_URL": self.upstream + "/v1/",
            "FLASK_STREAMS_PER_USER": "100000", "FLASK_LOGIN_RATE_LIMIT": "100000 per minute",
            "FLASK_MAX_HISTORY_MESSAGES": "4", "GUNICORN_ACCESSLOG": "",
            "FLASK_MESSAGE_RATE_LIMIT": "1000000 per minute",
            # Answers alone: a generated title is one more upstream request per conversation,
            # and its words would reach the streams in the sidebar's updates.
            "FLASK_TITLES": "false",
            # Both servers sign the same session cookie.
            "FLASK_SECRET_KEY": secrets.token_hex(16),
            "FLASK_LOG_LEVEL": "WARNING", **self.env}
        self.schema = None
        if self.database_url and self.database_url.startswith("postgresql"):
            self.database_url = self._schema(self.database_url)
        for name in ("one", "two"):
            (Path(self.tmp.name) / name).mkdir()
        self.server = AppServer(Path(self.tmp.name) / "one", env, workers=None,
                                database_url=self.database_url).start()
        if self.peer_wanted:
            self.peer = AppServer(Path(self.tmp.name) / "two", env, workers=None,
                                  database_url=self.database_url).start()
        # Read what the servers write (a full pipe would stop them) into a log of their own.
        self.logs = [self._drain(s) for s in (self.server, self.peer) if s]
        self.server.flask("users", "create", "bench", "--password", "bench-password")
        self.client = WebClient(self.server.base).login("bench", "bench-password")
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.session.cookies)
        self.conversations: list[int] = []
        if self.api:
            # The key alone is the command's last line.
            self.api_key = self.server.flask("api-keys", "create", "bench", "--name",
                                             "bench").strip().splitlines()[-1]
            self.api_model = self._api_model()
        # Unmeasured turns first, so the first run does not pay for what only the first request
        # of a worker does (imports, compiling templates, opening connections).
        warm = _scenario(5, 0, 0)
        self.run(4, warm, False)
        self.run(4, warm, True)
        return self

    def _drain(self, server: AppServer) -> Path:
        log = Path(os.environ.get("BENCH_LOG_DIR", self.tmp.name)) / f"app-{server.port}.log"

        def copy(out=server.proc.stdout):
            with log.open("a") as file:
                for line in out:
                    file.write(line)
                    file.flush()

        threading.Thread(target=copy, daemon=True).start()
        return log

    def _api_model(self) -> str:
        """The model API calls name: the upstream's own under the ``openai`` provider, as
        ``/v1/models`` lists it (an ``openai`` server without ``OPENAI_MODELS`` lists none, and
        takes ``openai/NAME`` for any name)."""
        upstream = requests.get(self.upstream + "/v1/models", timeout=10).json()["data"][0]["id"]
        listed = requests.get(self.server.base + "/v1/models", timeout=10,
                              headers={"Authorization": f"Bearer {self.api_key}"})
        listed.raise_for_status()
        ids = [m["id"] for m in listed.json()["data"]]
        wanted = f"openai/{upstream}"
        return wanted if wanted in ids or not ids else next(
            (i for i in ids if i.startswith("openai/")), wanted)

    def _schema(self, url: str) -> str:
        """A schema of its own in the PostgreSQL database at ``url`` (dropped at the end)."""
        self.schema = f"bench_{secrets.token_hex(6)}"
        self.admin_url = url.split("?")[0].replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}options={quote(f'-csearch_path={self.schema}')}"

    def _start_upstream(self) -> str:
        """The fake upstream in a process of its own (not sharing this one's GIL)."""
        port = process.free_port()
        self.upstream_proc = process.start(
            [sys.executable, "-m", "bench.fake_upstream", "--port", str(port)],
            f"http://127.0.0.1:{port}/v1/models")
        return f"http://127.0.0.1:{port}"

    def ensure_conversations(self, count: int) -> None:
        """Conversations to post into (one turn at a time in each)."""

        def make(_):
            response = self.client.post("/c", {"content": _scenario(1, 0, 0)}, htmx=False)
            return int(response.headers["Location"].split("#")[0].rsplit("/", 1)[1])

        missing = count - len(self.conversations)
        if missing > 0:
            with ThreadPoolExecutor(8) as pool:
                self.conversations += list(pool.map(make, range(missing)))

    def run(self, streams: int, prompt: str, through_app: bool, attach_after: int = 0
            ) -> tuple[list[Turn], int, Cpu]:
        """``streams`` turns at once, straight to the upstream or through the app (with
        readers attaching after ``attach_after`` tokens: see ``self.readers``; with ``api``,
        calls to the app's API); returns the turns, the app's peak resident memory (both
        servers with a peer) and the CPU time each party used."""
        if not self.api:
            self.ensure_conversations(streams)
        attach = Attach(self.server, self.peer, attach_after) if attach_after else None

        async def go():
            if through_app and self.api:
                expected = int(params_from({"messages": [
                    {"role": "user", "content": prompt}]})["tokens"])
                return await asyncio.gather(*[
                    api_turn(self.server.base, self.api_key, self.api_model, prompt, expected)
                    for _ in range(streams)])
            if through_app:
                jobs = [app_turn(self.server.base, self.cookie, self.client.token, c, prompt,
                                 attach)
                        for c in self.conversations[:streams]]
                done = await asyncio.gather(*jobs)
                self.readers = [readers for _, readers in done]
                return [turn for turn, _ in done]
            return await asyncio.gather(*[direct_turn(self.upstream, prompt)
                                          for _ in range(streams)])

        samplers = [MemorySampler(s.proc.pid) for s in (self.server, self.peer) if s]
        upstream = [self.upstream_proc.pid]
        with contextlib.ExitStack() as stack:
            for sampler in samplers:
                stack.enter_context(sampler)
            client, busy, started = time.process_time(), machine_busy(), time.perf_counter()
            upstream_cpu = proc_cpu(upstream)
            turns = self.loop.run_until_complete(go())
            cpu = Cpu(upstream=proc_cpu(upstream) - upstream_cpu,
                      client=time.process_time() - client, wall=time.perf_counter() - started)
            busy = machine_busy() - busy
        sampling = sum(s.own_cpu for s in samplers)
        cpu.app, cpu.client = sum(s.cpu_used for s in samplers), max(0.0, cpu.client - sampling)
        cpu.rest = max(0.0, busy - cpu.app - cpu.upstream - cpu.client - sampling)
        return list(turns), sum(s.peak for s in samplers), cpu

    def __exit__(self, *exc):
        for log in self.logs:
            text = log.read_text()
            problems = text.count("Traceback") + text.count("WORKER TIMEOUT")
            if problems:
                print(f"the app's log {log} has {problems} tracebacks or worker timeouts")
        for server in (self.server, self.peer):
            if server is not None:
                server.stop()
        process.stop(self.upstream_proc)
        if self.schema:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.tmp.cleanup()
        self.loop.close()


def report(label: str, direct: dict, app: dict, rss: int, servers: int = 1,
           unit: str = "turn") -> None:
    """Print one scenario's figures: direct, through the app, their ratios and the CPU used.
    ``unit``: what one request through the app is (a chat ``turn``, an API ``call``)."""
    print(f"\n{label}")
    print(f"  {'':10} {'TTFT p50':>10} {'TTFT p99':>10} {'delay p50':>10} {'delay p99':>10} "
          f"{'gap p99':>9} {'tok/s':>9} {'errors':>7}")
    for name, s in (("direct", direct), ("app", app)):
        print(f"  {name:10} {s['ttft_p50'] * 1000:9.1f}ms {s['ttft_p99'] * 1000:9.1f}ms "
              f"{s['delay_p50'] * 1000:9.1f}ms {s['delay_p99'] * 1000:9.1f}ms "
              f"{s['gap_p99'] * 1000:8.1f}ms {s['tokens_per_s']:9.0f} {s['errors']:7d}")
    print(f"  app/direct: TTFT p50 x{app['ttft_p50'] / direct['ttft_p50']:.2f} "
          f"(+{(app['ttft_p50'] - direct['ttft_p50']) * 1000:.1f} ms), throughput "
          f"{app['tokens_per_s'] / max(direct['tokens_per_s'], 1e-9):.2f}; "
          f"app peak RSS {rss / 2**20:.0f} MB" + (f" ({servers} servers)" if servers > 1 else ""))
    if app["stream_rate"] and direct["stream_rate"]:
        print(f"  streaming rate, first to last token (median per {unit}): direct "
              f"{direct['stream_rate']:.0f}, app {app['stream_rate']:.0f} tokens/s "
              f"(x{app['stream_rate'] / direct['stream_rate']:.2f})")
    else:
        print("  streaming rate: not measurable (the tokens after the first came in one event)")
    if not math.isnan(app["post_p50"]):
        print(f"  message accepted (the post's answer): p50 {app['post_p50'] * 1000:.1f} ms, "
              f"p99 {app['post_p99'] * 1000:.1f} ms")
    if app["final_only"]:
        print(f"  tokens first seen in the final message, not in a text event: "
              f"{app['final_only']}")
    report_cpu(direct, app, unit)


def report_cpu(direct: dict, app: dict, unit: str) -> None:
    """The CPU each party used, straight to the upstream and through the app, and the app's
    per token relayed and per ``unit``."""
    tokens = app["tokens"]
    if app.get("cpu_s") and tokens:
        print(f"  the app's CPU: {app['cpu_s']:.2f} s in all, {app['cpu_s'] * 1e6 / tokens:.0f} "
              f"µs per token relayed, {app['cpu_s'] * 1000 / app['turns']:.1f} ms per {unit}")
    for name, s in (("direct", direct), ("through the app", app)):
        cpu = s.get("cpu")
        if cpu:
            print(f"  CPU used, {name} (over {cpu['wall']:.2f} s): app {cpu['app']:.2f} s, "
                  f"upstream {cpu['upstream']:.2f} s, client {cpu['client']:.2f} s, "
                  f"rest of the machine {cpu['rest']:.2f} s")


def report_attached(attached: dict[str, dict]) -> None:
    if not attached:
        return
    print(f"  readers attached mid-answer (tokens sent after they attached):\n"
          f"  {'':13} {'readers':>7} {'errors':>6} {'tokens':>7} {'missing':>7} {'final':>5} "
          f"{'delay p50':>10} {'delay p99':>10} {'added p50':>10} {'added p99':>10} "
          f"{'1st p50':>9} {'1st p99':>9}")
    for where, s in attached.items():
        print(f"  {where:13} {s['readers']:7d} {s['errors']:6d} {s['tokens']:7d} "
              f"{s['missing']:7d} {s['final_only']:5d} "
              f"{s['delays_p50'] * 1000:8.1f}ms {s['delays_p99'] * 1000:8.1f}ms "
              f"{s['added_p50'] * 1000:8.1f}ms {s['added_p99'] * 1000:8.1f}ms "
              f"{s['first_p50'] * 1000:7.1f}ms {s['first_p99'] * 1000:7.1f}ms")
        if s.get("first_errors"):
            print("    first errors:", s["first_errors"][:3])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="*", default=[50],
                        help="concurrent turns (several values: one scenario each)")
    parser.add_argument("--sequential", type=int, default=0,
                        help="instead: this many turns one at a time (pure overhead)")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20)
    parser.add_argument("--first-ms", type=float, default=0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--blocks", action="store_true",
                        help="the tokens come as markdown blocks (paragraph, list, code fence), "
                             "which the app renders as they finish")
    parser.add_argument("--attach", action="store_true",
                        help="readers attach to each answer mid-way: on the generating worker, "
                             "on the other worker (and with --peer on another server)")
    parser.add_argument("--attach-after", type=int, default=0,
                        help="tokens the first reader has when the others attach "
                             "(default: a quarter of --tokens)")
    parser.add_argument("--peer", action="store_true",
                        help="a second gunicorn on the same PostgreSQL database")
    parser.add_argument("--api", action="store_true",
                        help="through the app's OpenAI-compatible API (POST /v1/chat/completions,"
                             " streamed, with a Bearer key) instead of as chat turns")
    parser.add_argument("--database-url", default=None,
                        help="the app's database (default SQLite; with --peer "
                             "$TEST_DATABASE_URL or the local PostgreSQL `test` database)")
    return parser


def _one_at_a_time(bench: Bench, prompt: str, count: int
                   ) -> tuple[list[Turn], list[Turn], int, Cpu, Cpu]:
    """``count`` requests one at a time, each straight to the upstream and then through the
    app; the turns of both, the app's peak memory and the CPU used on each side."""
    direct, app, rss, direct_cpu, app_cpu = [], [], 0, Cpu(), Cpu()
    for _ in range(count):
        turns, _, used = bench.run(1, prompt, False)
        direct += turns
        direct_cpu += used
        turns, peak, used = bench.run(1, prompt, True)
        app += turns
        rss, app_cpu = max(rss, peak), app_cpu + used
    return direct, app, rss, direct_cpu, app_cpu


def _scenario_run(bench: Bench, args: argparse.Namespace, prompt: str, streams: int,
                  attach_after: int) -> dict:
    """One run of one scenario, printed; its figures."""
    unit = "call" if args.api else "turn"
    attached: dict[str, dict] = {}
    if args.sequential:
        direct, app, rss, direct_cpu, app_cpu = _one_at_a_time(bench, prompt, args.sequential)
        label = f"{args.sequential} {'API calls' if args.api else 'turns'} one at a time"
    else:
        direct, _, direct_cpu = bench.run(streams, prompt, False)
        app, rss, app_cpu = bench.run(streams, prompt, True, attach_after)
        if attach_after:
            attached = attach_summary(app, bench.readers)
        label = f"{streams} concurrent {'API calls' if args.api else 'turns'}"
    label += f" of {args.tokens} tokens {args.gap_ms:g} ms apart"
    if attach_after:
        label += f", readers attaching after {attach_after} tokens"
    d, a = summary(direct), summary(app)
    d["cpu"], a["cpu"] = vars(direct_cpu), vars(app_cpu)
    a["cpu_s"] = app_cpu.app
    return {"label": label, "streams": streams, "direct": d, "app": a, "rss": rss,
            "attached": attached, "unit": unit,
            "errors": [t.error for t in app if t.error][:3]}


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    if args.api and args.attach:
        raise SystemExit("--attach: an API call has one reader, its client")
    prompt = _scenario(args.tokens, args.gap_ms, args.first_ms, args.blocks)
    database_url = args.database_url
    if args.peer and not database_url:
        database_url = os.environ.get("TEST_DATABASE_URL") or POSTGRES
    attach_after = (args.attach_after or max(1, args.tokens // 4)) if args.attach else 0
    results = []
    with Bench(database_url=database_url, peer=args.peer, api=args.api) as bench:
        if args.api:
            print(f"API calls: model {bench.api_model}, a key of the person 'bench'")
        for streams in [1] if args.sequential else args.streams:
            for run in range(args.runs):
                result = _scenario_run(bench, args, prompt, streams, attach_after)
                report(f"{result['label']} (run {run + 1}/{args.runs})", result["direct"],
                       result["app"], result["rss"], 2 if args.peer else 1, result["unit"])
                report_attached(result["attached"])
                if result["errors"]:
                    print("  first errors:", result["errors"])
                results.append(result)
    return results


if __name__ == "__main__":
    main()
