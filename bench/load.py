"""Chat turns through the running app under load, measured against the upstream direct.

    .venv/bin/python -m bench.load --streams 50 [--tokens 200 --gap-ms 20] [--runs 3]
    .venv/bin/python -m bench.load --sequential 20          # one turn at a time: overhead
    .venv/bin/python -m bench.load --streams 1 --tokens 2000 --gap-ms 0   # a burst
    .venv/bin/python -m bench.load --sequential 20 --tokens 600 --blocks  # cost of formatting

It starts the fake upstream (``bench.fake_upstream``) and the app under gunicorn with the shipped
``gunicorn.conf.py`` (provider: the OpenAI-compatible one, pointed at the fake upstream), signs
in, and runs the same turns twice in each run: straight to the upstream, then through the app
(post the message as htmx does; the answer to the post is the answer's event stream). Each
token carries its send time, so the client measures time to first token (from the start of the
turn), each token's delivery delay
and the gaps between events. It also samples the app's total resident memory (master and
workers). Prints medians and 99th percentiles and the ratios app/direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.peers import process  # noqa: E402
from tests.peers.appserver import AppServer  # noqa: E402
from tests.peers.webclient import WebClient  # noqa: E402

_STAMP = re.compile(rb"\[(\d{16})\]")


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


def _consume(turn: Turn, started: float, last: list[float]):
    """An ``on_chunk`` that stamps every streamed token's arrival. Events are split on the
    SSE blank line; the app's last event (the whole answer rendered again, ``hx-swap-oob``)
    is not counted as tokens, nor is a token sent again (in a finished block's HTML, in the
    open block's text after a block was cut from it)."""
    pending = bytearray()
    seen: set[bytes] = set()

    def on_chunk(data: bytes) -> None:
        now = time.perf_counter()
        wall_us = time.time_ns() // 1000
        pending.extend(data)
        *events, rest = bytes(pending).split(b"\n\n")
        pending[:] = rest
        stamps = [s for event in events if b"hx-swap-oob" not in event
                  for s in _STAMP.findall(event) if s not in seen]
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


async def app_turn(base: str, cookie: str, token: str, conversation_id: int,
                   prompt: str) -> Turn:
    """Post a message as htmx (with its SSE extension) does and read the answer's stream,
    which is the answer to the post itself: its first event is the turn's HTML."""
    turn, started, last = Turn(), time.perf_counter(), [0.0]
    headers = {"Cookie": cookie, "X-CSRFToken": token, "HX-Request": "true",
               "Accept": "text/html, text/event-stream",
               "Content-Type": "application/x-www-form-urlencoded"}
    form = ("content=" + requests.utils.quote(prompt)).encode()
    consume = _consume(turn, started, last)

    def on_chunk(data: bytes) -> None:
        if turn.post is None:
            turn.post = time.perf_counter() - started
        consume(data)

    try:
        status, body = await _request(f"{base}/c/{conversation_id}/messages", "POST", form,
                                      headers, on_chunk)
        if status != 200:
            turn.error = f"post: HTTP {status} {body[:120]!r}"
        elif b"status-complete" not in body:
            turn.error = "the answer did not complete: " + (
                re.search(rb'msg-error[^>]*>([^<]*)', body) or [b"", b"?"])[1].decode()
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        turn.error = f"{type(exc).__name__}: {exc}"
    turn.seconds = time.perf_counter() - started
    return turn


class MemorySampler:
    """Samples the resident memory of a process and its children (the gunicorn tree)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def _tree(self) -> list[int]:
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

    def cpu(self) -> float:
        """CPU seconds (user + system) the tree has used so far."""
        total = 0
        for pid in self._tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, ValueError, IndexError):
                continue
        return total / os.sysconf("SC_CLK_TCK")

    def rss(self) -> int:
        total = 0
        for pid in self._tree():
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
                self._stop.wait(0.2)

        self.cpu_start = self.cpu()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.cpu_used = self.cpu() - self.cpu_start


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
            "tokens": tokens,
            "stream_rate": statistics.median(
                [(t.tokens - t.first_tokens) / (t.last - t.ttft) for t in ok
                 if t.last is not None and t.last > t.ttft] or [0.0])}


class Bench:
    """The fake upstream and the app under gunicorn, ready for turns."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = env or {}

    def __enter__(self) -> Bench:
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.upstream = self._start_upstream()
        self.server = AppServer(Path(self.tmp.name), {
            "FLASK_PROVIDERS": "openai", "FLASK_OPENAI_BASE_URL": self.upstream + "/v1/",
            "FLASK_STREAMS_PER_USER": "100000", "FLASK_LOGIN_RATE_LIMIT": "100000 per minute",
            "FLASK_MAX_HISTORY_MESSAGES": "4", "GUNICORN_ACCESSLOG": "",
            "FLASK_MESSAGE_RATE_LIMIT": "1000000 per minute",
            "FLASK_LOG_LEVEL": "WARNING", **self.env}, workers=None).start()
        self.server.flask("users", "create", "bench", "--password", "bench-password")
        self.client = WebClient(self.server.base).login("bench", "bench-password")
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.session.cookies)
        self.conversations: list[int] = []
        # Unmeasured turns first, so the first run does not pay for what only the first request
        # of a worker does (imports, compiling templates, opening connections).
        warm = _scenario(5, 0, 0)
        self.run(4, warm, False)
        self.run(4, warm, True)
        return self

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

    def run(self, streams: int, prompt: str, through_app: bool
            ) -> tuple[list[Turn], int, float]:
        self.ensure_conversations(streams)

        async def go():
            if through_app:
                jobs = [app_turn(self.server.base, self.cookie, self.client.token, c, prompt)
                        for c in self.conversations[:streams]]
            else:
                jobs = [direct_turn(self.upstream, prompt) for _ in range(streams)]
            return await asyncio.gather(*jobs)

        with MemorySampler(self.server.proc.pid) as memory:
            turns = self.loop.run_until_complete(go())
        return list(turns), memory.peak, memory.cpu_used

    def __exit__(self, *exc):
        self.server.stop()
        process.stop(self.upstream_proc)
        self.tmp.cleanup()
        self.loop.close()


def report(label: str, direct: dict, app: dict, rss: int) -> None:
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
          f"app peak RSS {rss / 2**20:.0f} MB")
    if app["stream_rate"] and direct["stream_rate"]:
        print(f"  streaming rate, first to last token (median per turn): direct "
              f"{direct['stream_rate']:.0f}, app {app['stream_rate']:.0f} tokens/s "
              f"(x{app['stream_rate'] / direct['stream_rate']:.2f})")
    else:
        print("  streaming rate: not measurable (the tokens after the first came in one event)")
    print(f"  message accepted (first event): p50 {app['post_p50'] * 1000:.1f} ms, "
          f"p99 {app['post_p99'] * 1000:.1f} ms")
    tokens = app["tokens"]
    if app.get("cpu_s") and tokens:
        print(f"  the app's CPU: {app['cpu_s']:.2f} s in all, {app['cpu_s'] * 1e6 / tokens:.0f} "
              f"µs per token relayed, {app['cpu_s'] * 1000 / app['turns']:.1f} ms per turn")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
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
    args = parser.parse_args(argv)
    prompt = _scenario(args.tokens, args.gap_ms, args.first_ms, args.blocks)
    results = []
    with Bench() as bench:
        scenarios = [1] if args.sequential else args.streams
        for streams in scenarios:
            for run in range(args.runs):
                if args.sequential:
                    direct, app, rss, cpu = [], [], 0, 0.0
                    for _ in range(args.sequential):
                        direct += bench.run(1, prompt, False)[0]
                        turns, peak, used = bench.run(1, prompt, True)
                        app += turns
                        rss, cpu = max(rss, peak), cpu + used
                    label = f"{args.sequential} turns one at a time"
                else:
                    direct = bench.run(streams, prompt, False)[0]
                    app, rss, cpu = bench.run(streams, prompt, True)
                    label = f"{streams} concurrent turns"
                label += (f" of {args.tokens} tokens {args.gap_ms:g} ms apart"
                          f" (run {run + 1}/{args.runs})")
                d, a = summary(direct), summary(app)
                a["cpu_s"] = cpu
                report(label, d, a, rss)
                errors = [t.error for t in app if t.error][:3]
                if errors:
                    print("  first errors:", errors)
                results.append({"streams": streams, "direct": d, "app": a, "rss": rss})
    return results


if __name__ == "__main__":
    main()
