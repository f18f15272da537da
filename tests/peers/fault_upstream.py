"""An OpenAI-style upstream on 127.0.0.1 that misbehaves on demand.

A real server never sends one byte per chunk, a cut event or a reset connection when asked, so
the provider tests use this one for those cases (and the real llama.cpp server for the rest).
The scenario is the first path segment: a provider configured with
``url="http://127.0.0.1:PORT/<scenario>/"`` gets that behaviour. The server records each
request (path, headers, JSON body, client address) and, for streams that the client abandons,
the moment the client's connection closed. ``numbered`` sends numbered words in groups, and
a test that asked for a ``gate`` first lets each group after the first go when it says so, so
it can act while an answer is in a known place.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk(text: str, finish: str | None = None) -> dict:
    """One chat.completion.chunk object carrying ``text``."""
    return {"object": "chat.completion.chunk", "model": "gpt-3.5-turbo",
            "choices": [{"index": 0, "delta": {"content": text} if text else {},
                         "finish_reason": finish}]}


def event(obj: dict | str, eol: str = "\n") -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}{eol}{eol}".encode()


TOKENS = ["Hello", ", ", "wörld", " 🌍", " 日本", "!"]
TEXT = "".join(TOKENS)
XSS_TOKENS = ["<script>alert('s1')</script>", " <img src=x onerror=alert('s2')>",
              " <svg onload=alert('s3')>", ' <iframe srcdoc="<script>alert(4)</script>">',
              "</iframe> [a](javascript:alert('s5')) [b](data:text/html,<script>alert(6)",
              "</script>)\n\n```html\n<script>alert('s7')</script>\n```\n\n<scr",
              "ipt>alert('s8')</scr", "ipt> <b onmouseover=alert('s9')>x</b>",
              " <details open ontoggle=alert('s10')>y</details>"]
MARKDOWN_TOKENS = ["Here ", "is ", "**bold** ", "text ", "and ", "a ", "list:\n\n", "- one\n",
                   "- two\n\n", "```python\n", "print('hi')\n", "```\n", "Done ", "<b>x</b>."]


#: How many words the ``numbered`` scenario streams.
WORDS_COUNT = 60
WORDS_TEXT = "".join(f"w{i} " for i in range(WORDS_COUNT))


BLOCK_TOKENS = ["Some **bold** ", "words.\n\n", "- one\n", "- two\n\n", "```python\n",
                "print('hi')\n", "```\n\n", "| a | b |\n", "|---|---|\n", "| 1 | 2 |\n\n",
                "A picture: ![a cat](http://127.0.0.1:9/cat.png)\n\n", "Still "]


#: The ``numbered`` scenario's groups of words ("n0 " … "n79 "), and the whole answer they make.
NUMBERED = [[f"n{g * 20 + i} " for i in range(20)] for g in range(4)]
NUMBERED_TEXT = "".join(word for group in NUMBERED for word in group)

#: How long ``numbered`` waits for its gate before it goes on anyway (a test that failed must
#: not leave an upstream request hanging for ever).
GATE_SECONDS = 30.0


def normal_events(eol: str = "\n") -> list[bytes]:
    events = [event(chunk(t), eol) for t in TOKENS]
    events.append(event(chunk("", "stop"), eol))
    events.append(event("[DONE]", eol))
    return events


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultServer

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        scenario = self.path.strip("/").split("/")[0]
        self.server.requests.append({"scenario": scenario, "path": self.path,
                                     "client": self.client_address,
                                     "headers": dict(self.headers.items()), "body": body})
        getattr(self, "scenario_" + scenario.replace("-", "_"), self.scenario_ok)(body)

    # -- helpers -----------------------------------------------------------------------
    def start(self, status=200, ctype="text/event-stream", chunked=True, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()

    def send_chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def reply(self, status: int, body: bytes, ctype: str):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, events: list[bytes], pause: float = 0.0):
        self.start()
        for data in events:
            self.send_chunk(data)
            if pause:
                time.sleep(pause)
        self.end_chunks()

    # -- scenarios -----------------------------------------------------------------------
    def scenario_ok(self, body):
        if body and body.get("stream") is False:
            answer = {"object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": TEXT},
                 "finish_reason": "stop"}]}
            return self.reply(200, json.dumps(answer).encode(), "application/json")
        self.stream(normal_events())

    def scenario_bytewise(self, body):
        self.start()
        for data in normal_events():
            for i in range(len(data)):
                self.send_chunk(data[i:i + 1])
        self.end_chunks()

    def scenario_bytewise_close(self, body):
        # No chunked encoding: the body ends when the connection closes.
        self.start(chunked=False)
        for data in normal_events():
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(0.0005)

    def scenario_packed(self, body):
        self.start()
        self.send_chunk(b"".join(normal_events()))
        self.end_chunks()

    def scenario_crlf(self, body):
        events = normal_events("\r\n")
        self.start()
        blob = b"".join(events)
        # Split inside CRLF pairs on purpose.
        for i in range(0, len(blob), 7):
            self.send_chunk(blob[i:i + 7])
        self.end_chunks()

    def scenario_cr(self, body):
        self.stream(normal_events("\r"))

    def scenario_multiline(self, body):
        # Each JSON object split over several data: lines, plus comments, ids and event names.
        out = [b": this is a comment\n\n", b"retry: 1000\n\n"]
        for data in normal_events():
            text = data.decode()[len("data: "):].strip()
            # Split where JSON allows whitespace (after a comma): the lines join with "\n".
            half = text.find(", ") + 1 or len(text)
            out.append(("id: 1\nevent: message\n: note\n"
                        f"data: {text[:half]}\ndata: {text[half:]}\n\n").encode())
        self.stream(out)

    def scenario_utf8_split(self, body):
        self.start()
        blob = b"".join(normal_events())
        # Split every multi-byte character between two chunks.
        i = 0
        while i < len(blob):
            step = 1 if blob[i] >= 0x80 else 5
            self.send_chunk(blob[i:i + step])
            i += step
        self.end_chunks()

    def scenario_finish_then_hang(self, body):
        # finish_reason arrives, then the server keeps the stream open and silent.
        self.start()
        for data in normal_events()[:-1]:
            self.send_chunk(data)
        time.sleep(5)
        self.end_chunks()

    def scenario_no_done(self, body):
        self.stream(normal_events()[:3])

    def scenario_cut(self, body):
        self.start()
        for data in normal_events()[:2]:
            self.send_chunk(data)
        self.send_chunk(b'data: {"choices":[{"delta":{"cont')
        self.end_chunks()

    def scenario_malformed(self, body):
        self.stream(normal_events()[:2] + [b"data: {this is not json}\n\n"])

    def scenario_error_event(self, body):
        error = {"error": {"message": "upstream exploded", "type": "server_error"}}
        self.stream(normal_events()[:2] + [event(error)])

    def scenario_named_error_event(self, body):
        self.stream(normal_events()[:2] + [b"event: error\ndata: overloaded, try later\n\n"])

    def scenario_http500(self, body):
        error = {"error": {"message": "The server had an error", "type": "server_error"}}
        self.reply(500, json.dumps(error).encode(), "application/json")

    def scenario_http503(self, body):
        error = {"error": {"message": "no channel is available for model gpt-3.5-turbo",
                           "type": "one_api_error"}}
        self.reply(503, json.dumps(error).encode(), "application/json")

    def scenario_http401(self, body):
        self.reply(401, b'{"error":true,"msg":"empty access code"}', "application/json")

    def scenario_http403(self, body):
        self.reply(403, b'{"error":true,"msg":"you are not allowed to use gpt-4 model"}',
                   "application/json")

    def scenario_html(self, body):
        page = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                b"<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>")
        self.reply(502, page, "text/html")

    def scenario_plain(self, body):
        self.reply(500, b"Internal Server Error\n", "text/plain")

    def scenario_json_error_200(self, body):
        self.reply(200, b'{"error":{"message":"quota exceeded","type":"insufficient_quota"}}',
                   "application/json")

    def scenario_not_json(self, body):
        self.reply(200, b"this is not json", "application/json")

    def scenario_hang(self, body):
        time.sleep(self.server.hang_seconds)

    def scenario_slow_first(self, body):
        time.sleep(1.0)
        self.stream(normal_events())

    def scenario_reset(self, body):
        self.start()
        for data in normal_events()[:3]:
            self.send_chunk(data)
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def scenario_length(self, body):
        # The answer stops at the token limit: finish_reason "length".
        self.stream([event(chunk(t)) for t in TOKENS[:3]]
                    + [event(chunk("", "length")), event("[DONE]")])

    def scenario_blocks_then_pause(self, body):
        # Finished blocks (paragraph, list, fence, table, an image) come at once, then the
        # last paragraph streams after a pause long enough to look at the page.
        self.start()
        for token in BLOCK_TOKENS:
            self.send_chunk(event(chunk(token)))
        time.sleep(self.server.pause_seconds)
        for token in ["The ", "*end*", "."]:
            self.send_chunk(event(chunk(token)))
            time.sleep(0.05)
        self.send_chunk(event(chunk("", "stop")))
        self.send_chunk(event("[DONE]"))
        self.end_chunks()

    def scenario_slow_markdown(self, body):
        # A markdown answer, one token every 60 ms: slow enough to watch it grow.
        self.stream([event(chunk(t)) for t in MARKDOWN_TOKENS]
                    + [event(chunk("", "stop")), event("[DONE]")], pause=0.06)

    def scenario_watch_first(self, body):
        # Sends headers, then holds the first token for up to 10 s while watching for the
        # client to close the connection (EOF on a peek), and records when it did.
        self.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    data = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    data = b""
                if not data:
                    self.server.closed_at.append(time.monotonic())
                    self.close_connection = True
                    return
        self.stream(normal_events())

    def scenario_many(self, body):
        # 50 tokens 10 ms apart: for many answers at once.
        self.stream([event(chunk(f"w{i} ")) for i in range(50)]
                    + [event(chunk("", "stop")), event("[DONE]")], pause=0.01)

    def scenario_numbered(self, body):
        # NUMBERED's groups, a word every 5 ms; with a gate (FaultServer.gate), each group
        # after the first (and the first too, with ``hold_first``) waits for a release.
        gate, hold_first = self.server.take_gate()
        self.start()
        try:
            for number, group in enumerate(NUMBERED):
                if gate is not None and (number or hold_first):
                    gate.acquire(timeout=GATE_SECONDS)
                for word in group:
                    self.send_chunk(event(chunk(word)))
                    time.sleep(0.005)
            self.send_chunk(event(chunk("", "stop")))
            self.send_chunk(event("[DONE]"))
            self.end_chunks()
        except OSError:
            self.server.closed_at.append(time.monotonic())
            self.close_connection = True

    def scenario_words(self, body):
        # "w0 w1 … w59", 50 ms apart, so a page can tell a word repeated or missing. Before
        # word i it waits (up to 30 s) for ``holds[i]`` when there is one: a test decides
        # while the answer is held mid-way what happens to the page meanwhile.
        self.start()
        try:
            for i in range(WORDS_COUNT):
                hold = self.server.holds.get(i)
                if hold is not None:
                    hold.wait(30)
                self.send_chunk(event(chunk(f"w{i} ")))
                time.sleep(0.05)
            self.send_chunk(event(chunk("", "stop")))
            self.send_chunk(event("[DONE]"))
            self.end_chunks()
        except OSError:
            self.close_connection = True

    def scenario_xss(self, body):
        # Known payloads, some split across tokens, 0.4 s apart so they stream visibly: the
        # answer is generated from the moment the message is accepted, and a loaded machine
        # can take longer than a quick stream to show the page that watches it.
        self.stream([event(chunk(t)) for t in XSS_TOKENS]
                    + [event(chunk("", "stop")), event("[DONE]")], pause=0.4)

    def scenario_endless(self, body):
        # A token every 20 ms for up to 20 s; records when the client goes away.
        self.start()
        try:
            for i in range(1000):
                self.send_chunk(event(chunk(f"t{i} ")))
                time.sleep(0.02)
        except OSError:
            self.server.closed_at.append(time.monotonic())
            self.close_connection = True
            return
        self.end_chunks()


    def scenario_tree(self, body):
        # Every answer differs, "Answer N to <the person's last message>." (N counts this
        # scenario's requests), so a page can tell the versions of an answer apart; what each
        # request was sent is in ``requests``. The person's message sets the pace: with "slow"
        # in it a word comes every 50 ms for 15 s (time to press Stop), with "cut" the answer
        # ends at the length limit. A continuation (the last message is the answer so far)
        # goes on with " and the rest." and ends.
        messages = (body or {}).get("messages") or [{}]
        asked = next((m.get("content", "") for m in reversed(messages)
                      if m.get("role") == "user"), "")
        number = sum(1 for r in self.server.requests if r["scenario"] == "tree")
        finish = "stop"
        if messages[-1].get("role") == "assistant":
            tokens = [" and", " the", " rest."]
        elif "slow" in asked:
            tokens = [f"s{i} " for i in range(300)]
        else:
            tokens = ["Answer ", f"{number} ", "to ", f"{asked}."]
            finish = "length" if "cut" in asked else "stop"
        try:
            self.stream([event(chunk(t)) for t in tokens]
                        + [event(chunk("", finish)), event("[DONE]")],
                        pause=0.05 if "slow" in asked else 0.01)
        except OSError:
            self.server.closed_at.append(time.monotonic())
            self.close_connection = True


class FaultServer(ThreadingHTTPServer):
    """The server; ``requests`` and ``closed_at`` record what happened."""

    daemon_threads = True
    hang_seconds = 5.0
    #: How long ``blocks-then-pause`` waits before its last paragraph.
    pause_seconds = 2.0
    # socketserver's default listen queue is 5: many answers starting at once (a gevent worker
    # connects for all of them in the same instant) would overflow it and see resets.
    request_queue_size = 256

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.closed_at: list[float] = []
        self._gates: list[tuple[threading.Semaphore, bool]] = []
        self._gates_lock = threading.Lock()
        #: Word index -> threading.Event the ``words`` scenario waits for before that word.
        self.holds: dict[int, threading.Event] = {}

    def gate(self, hold_first: bool = False) -> threading.Semaphore:
        """A gate for the next ``numbered`` request: each ``release()`` lets one more group of
        words go (the first goes at once, unless ``hold_first``)."""
        gate = threading.Semaphore(0)
        with self._gates_lock:
            self._gates.append((gate, hold_first))
        return gate

    def take_gate(self) -> tuple[threading.Semaphore | None, bool]:
        """The gate for this ``numbered`` request, in the order they were asked for."""
        with self._gates_lock:
            return self._gates.pop(0) if self._gates else (None, False)

    def handle_error(self, request, client_address):
        # Clients that go away mid-stream are the point of several scenarios; no tracebacks.
        pass

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, scenario: str) -> str:
        """The provider ``url`` that selects ``scenario``."""
        return f"{self.base}/{scenario}/"

    def start_background(self) -> FaultServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self
