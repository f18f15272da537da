"""An answer as Server-Sent Events: the HTML pieces htmx swaps in as the text comes."""

from __future__ import annotations

from flask import Response, stream_with_context

from ..extensions import db
from ..models import Message
from ..rendering import StreamingMarkdown, escape_stream_text
from ..streaming import Listener, short_session
from . import fragments
from .sidebar import conversation_list_after


def sse_data(html: str, event_id: str | None = None) -> str:
    """One unnamed SSE message carrying ``html`` (each line its own ``data:`` field), with
    ``event_id`` as its ``id:`` when given."""
    lines = html.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head + "".join(f"data: {line}\n" for line in lines) + "\n"


def _partial(target: str, swap: str, html: str = "") -> str:
    return f'<hx-partial hx-target="#{target}" hx-swap="{swap}">{html}</hx-partial>'


def resume_offset(last_event_id: str | None, after: str | None) -> int:
    """Where a page's stream starts in the answer's text: after the last event it got (its
    ``Last-Event-ID``, when it reconnects), else after the text its page was rendered with
    (``after``), else at the start. Anything else than a whole number (of at most 12 digits:
    an offset in a text, not a bignum to parse) counts as none."""
    for value in (last_event_id, after):
        value = (value or "").strip()
        if value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
    return 0


def answer_stream(app, message_id: int, after: int = 0, resync: bool = False,
                  running: bool = True) -> Response:
    """The event stream of answer ``message_id`` from offset ``after`` of its text (only its
    final HTML when it is not ``running``).

    The page listens to the answer, which runs on the server whether or not anyone listens.
    Each message's ``id:`` is the offset of the text the page has once it is swapped in (the
    keepalives and the last messages repeat the last one); a page that reconnects sends the
    last one as ``Last-Event-ID`` and the stream resumes from there, with no text repeated or
    missing.

    The answer is formatted as it streams (``StreamingMarkdown``): each finished block goes in
    as its sanitized HTML before the open block's element (``#m-N-open``), which shows the rest
    as escaped text; at the end the open block is rendered too, so the body is already the
    final HTML when the final message replaces the whole answer. A stream that starts at an
    offset first reads the text before it the same way. Which blocks are finished depends a
    little on how the text came in pieces, so with ``resync`` (a page that reconnects) the
    first message also puts the body in the state this stream goes on from: the same words,
    none repeated on the page. Every piece is an ``hx-partial`` with its own target.
    """
    open_id = f"m-{message_id}-open"
    db.session.close()  # nothing of the request's session is held while streaming

    def events():
        yield ": stream\n\n"  # the headers go now
        blocks = StreamingMarkdown()
        offset = after
        if running:
            for message, reached in _texts(app, message_id, after, resync, blocks):
                offset = reached
                yield message
        if blocks.text:
            tail = blocks.finish()
            yield sse_data(_partial(open_id, "outerHTML", tail) if tail.strip()
                           else _partial(open_id, "delete"), str(offset))
        with short_session(app) as session:
            final = session.get(Message, message_id)
            # (ux) The sidebar list follows the finished turn, out of band.
            yield sse_data(fragments.message(final, oob=True) + conversation_list_after(final)
                           if final is not None else "", str(offset))

    response = Response(stream_with_context(events()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _texts(app, message_id: int, after: int, resync: bool, blocks: StreamingMarkdown):
    """The SSE messages of the answer's text after offset ``after`` as it grows (each with
    the offset reached, also yielded), and keepalive events while nothing comes."""
    open_id, wait_id = f"m-{message_id}-open", f"m-{message_id}-wait"
    listener = Listener(app, message_id, after)
    offset = after
    try:
        for piece in listener:
            if piece is None:
                # An event, not a comment: the page sees it, and takes a long silence for a
                # dead connection (static/js/answer-watch.js).
                yield f"id: {offset}\nevent: keepalive\n\n", offset
                continue
            start, text = piece
            offset = start + len(text)
            if start and not blocks.text:  # what the page already shows
                done, _ = blocks.feed(listener.live.text[:start])
                if resync:
                    # The whole body in one partial, the new text included: htmx finds the
                    # targets of all of a message's partials before it swaps any, so a
                    # partial after this one would add to the open block it replaces.
                    more, _ = blocks.feed(text)
                    body = done + more + _open_block(open_id, blocks.open_text)
                    yield sse_data(_partial(f"m-{message_id}-body", "innerHTML", body),
                                   str(offset)), offset
                    continue
            yield sse_data(_pieces(blocks, text, open_id, wait_id), str(offset)), offset
    finally:
        listener.close()


def _open_block(open_id: str, text: str) -> str:
    return f'<div class="streaming" id="{open_id}">{escape_stream_text(text)}</div>'


def _pieces(blocks: StreamingMarkdown, text: str, open_id: str, wait_id: str) -> str:
    """The partials that add ``text`` to the answer on the page."""
    started = bool(blocks.text)
    done, cut = blocks.feed(text)
    # The first text replaces "Reading the conversation…".
    out = [] if started else [_partial(wait_id, "delete")]
    if done:
        out.append(_partial(open_id, "beforebegin", done))
    if cut or not started:
        out.append(_partial(open_id, "innerHTML", escape_stream_text(blocks.open_text)))
    else:
        out.append(_partial(open_id, "beforeend", escape_stream_text(text)))
    return "".join(out)
