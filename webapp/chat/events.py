"""An answer as Server-Sent Events: the HTML pieces htmx swaps in as the text comes."""

from __future__ import annotations

from flask import Response, stream_with_context

from ..extensions import db
from ..models import Message
from ..rendering import StreamingMarkdown, escape_stream_text
from ..streaming import Generation, Job, claim, follow, short_session
from . import fragments
from .sidebar import conversation_list_after


def sse_data(html: str) -> str:
    """One unnamed SSE message carrying ``html`` (each line its own ``data:`` field)."""
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join(f"data: {line}\n" for line in lines) + "\n"


def _partial(target: str, swap: str, html: str = "") -> str:
    return f'<hx-partial hx-target="#{target}" hx-swap="{swap}">{html}</hx-partial>'


def answer_stream(app, message_id: int, job: Job | None = None, first: str | None = None
                  ) -> Response:
    """The event stream of answer ``message_id``.

    With ``job`` (the answer already claimed by this request) it generates it; otherwise it
    claims the answer if it is pending, or follows the saved text. ``first``, when given, is
    HTML sent as the first message (the turn, for the composer's request).

    The answer is formatted as it streams (``StreamingMarkdown``): each finished block goes in
    as its sanitized HTML before the open block's element (``#m-N-open``), which shows the rest
    as escaped text; at the end the open block is rendered too, so the body is already the
    final HTML when the final message replaces the whole answer. Every piece is an
    ``hx-partial`` with its own target, whichever element asked for the stream.
    """
    open_id, wait_id = f"m-{message_id}-open", f"m-{message_id}-wait"
    db.session.close()  # nothing of the request's session is held while streaming

    def events():
        yield sse_data(first) if first is not None else ": stream\n\n"  # headers go now
        generation = job or claim(app, message_id)
        source = iter(Generation(app, generation) if generation is not None
                      else follow(app, message_id))
        blocks = StreamingMarkdown()
        try:
            for kind, text in source:
                if kind != "text":
                    yield ": keepalive\n\n"
                    continue
                started = bool(blocks.text)
                done, cut = blocks.feed(text)
                # The first text replaces "Reading the conversation…".
                out = [] if started else [_partial(wait_id, "delete")]
                if done:
                    out.append(_partial(open_id, "beforebegin", done))
                if cut or not started:
                    out.append(_partial(open_id, "innerHTML",
                                        escape_stream_text(blocks.open_text)))
                else:
                    out.append(_partial(open_id, "beforeend", escape_stream_text(text)))
                yield sse_data("".join(out))
        finally:
            source.close()
        if blocks.text:
            tail = blocks.finish()
            yield sse_data(_partial(open_id, "outerHTML", tail) if tail.strip()
                           else _partial(open_id, "delete"))
        with short_session(app) as session:
            final = session.get(Message, message_id)
            # (ux) The sidebar list follows the finished turn, out of band.
            yield sse_data(fragments.message(final, oob=True) + conversation_list_after(final))

    response = Response(stream_with_context(events()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
