"""A fake OpenAI-compatible upstream for benchmarks: asyncio, on 127.0.0.1.

    .venv/bin/python -m bench.fake_upstream --port 8900

``POST .../chat/completions`` streams ``tokens`` chunks ``gap_ms`` apart after ``first_ms``,
all read from the last user message (``"bench tokens=200 gap_ms=20 first_ms=0"``), so one
server serves every scenario and the app needs no special configuration. Each token's text is
``[<microseconds since the epoch when it was sent>] ``: whoever receives it, directly or through
the app, can tell how long it took to arrive (``blocks=1``: in markdown blocks).
``"stream": false`` answers the whole text at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

_PARAM = re.compile(r"(tokens|gap_ms|first_ms|prose|blocks)=(\d+(?:\.\d+)?)")
DEFAULTS = {"tokens": 200.0, "gap_ms": 20.0, "first_ms": 0.0, "prose": 0.0, "blocks": 0.0}
#: With ``prose=1`` tokens are words of ordinary English length (about four characters a token,
#: as tokenizers average) in paragraphs of about 60, instead of 19-character timestamps: the
#: size of text a real answer of that many tokens has, for measuring the browser's cost.
_TEXT = ("The quick brown fox jumps over the lazy dog while a small model writes its answer "
         "one token at a time, and the page shows each word as soon as it arrives so that "
         "reading can start long before the end")
WORDS = tuple(_TEXT.split(" "))


def params_from(body: dict) -> dict[str, float]:
    """The scenario named in the last user message."""
    text = ""
    for message in body.get("messages") or []:
        if message.get("role") == "user":
            text = str(message.get("content", ""))
    return {**DEFAULTS, **{k: float(v) for k, v in _PARAM.findall(text)}}


def stamp() -> str:
    return f"[{time.time_ns() // 1000}] "


#: With ``blocks=1`` the timestamps come as markdown blocks, in turn a paragraph, a list and a
#: code fence of 20 tokens each: the app renders each finished block as it streams.
_BLOCK_KINDS = ("", "- ", "```")


def token(p: dict[str, float], i: int) -> str:
    """The ``i``-th token of the answer: a timestamp, or a word of prose."""
    if p["blocks"]:
        kind, at = _BLOCK_KINDS[i // 20 % 3], i % 20
        if kind == "```":
            return {0: "```\n", 19: "```\n\n"}.get(at, stamp() + "\n")
        return kind + stamp() + ("\n" if kind else "") + ("\n" if at == 19 else "")
    if not p["prose"]:
        return stamp()
    word = WORDS[i % len(WORDS)]
    return (" " if i % 60 else "\n\n") + word if i else word


def _chunk(text: str, finish: str | None = None) -> bytes:
    event = {"object": "chat.completion.chunk", "model": "fake",
             "choices": [{"index": 0, "delta": {"content": text} if text else {},
                          "finish_reason": finish}]}
    data = b"data: " + json.dumps(event).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _answer(writer: asyncio.StreamWriter, body: dict) -> None:
    p = params_from(body)
    if body.get("stream") is False:
        await asyncio.sleep(p["first_ms"] / 1000)
        text = "".join(token(p, i) for i in range(int(p["tokens"])))
        payload = json.dumps({"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text},
             "finish_reason": "stop"}]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
        await writer.drain()
        return
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
    loop = asyncio.get_running_loop()
    start = loop.time() + p["first_ms"] / 1000
    for i in range(int(p["tokens"])):
        # Sleep to an absolute schedule, so cadence does not drift with load.
        delay = start + i * p["gap_ms"] / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        writer.write(_chunk(token(p, i)))
        await writer.drain()
    writer.write(_chunk("", "stop"))
    done = b"data: [DONE]\n\n"
    writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
    await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length)) if length else {}
            if lines[0].startswith("GET"):
                payload = b'{"object":"list","data":[{"id":"fake","object":"model"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                await writer.drain()
                continue
            await _answer(writer, body)
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve(port: int, ready: asyncio.Event | None = None) -> None:
    """Serve forever on 127.0.0.1:``port`` (0: any free port, printed)."""
    server = await asyncio.start_server(_serve, "127.0.0.1", port, backlog=4096)
    print(f"fake upstream on http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
          flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
