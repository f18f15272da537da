"""One generation per assistant message: claim it, read the provider, coalesce, save.

A chat turn's answer is generated exactly once. ``claim`` moves the message from pending to
streaming in one conditional UPDATE, so of two requests for the same stream (two tabs, a
reload, two app servers) only one generates; the other ``follow``s the saved text.

The provider is read in a worker thread (a greenlet under gunicorn's gevent workers) feeding a
queue. The response generator waits on the queue with a timeout, so it can send keepalive
comments (a client that left is noticed before the first token) and coalesce tokens into one
event per ``STREAM_COALESCE_MS``; when it wakes it takes everything queued, so a burst costs one
wake-up. One saver per process writes the partial text of all its running answers every
``STREAM_SAVE_SECONDS`` in one transaction and notices a Stop from any process. No database
session is held across a ``yield``: every read and write is a short session of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm.attributes import set_committed_value

from .extensions import app_state, db, providers
from .models import (
    COMPLETE,
    ERROR,
    FINAL_STATUSES,
    PENDING,
    STOPPED,
    STREAMING,
    Message,
    utcnow,
)
from .providers import Cancellation, ProviderError
from .queries import conversations
from .rendering import render_markdown

log = logging.getLogger(__name__)

INTERRUPTED = "Interrupted: the server stopped while answering."
SHUTTING_DOWN = "Stopped: the server restarted while answering. Send the message again."
CLIENT_LEFT = "Stopped: the page was closed before the answer finished."
STOPPED_BY_USER = "Stopped."

_END = object()


@dataclass
class Job:
    """Everything needed to generate one answer, copied out of the database."""

    message_id: int
    conversation_id: int
    provider: str
    model: str
    params: dict[str, Any]
    messages: list[dict[str, str]]
    #: Earlier messages left out of ``messages`` by the history bounds.
    skipped: int = 0


@dataclass
class Outcome:
    """How a generation ended."""

    status: str = STREAMING
    error: str | None = None
    text: str = ""
    tokens: int = 0
    first_token_seconds: float | None = None
    seconds: float = 0.0
    #: The provider's word for why the answer ended ('length': cut at the token limit).
    finish_reason: str | None = None
    #: Earlier messages left out of what the model was sent (bounds and context window).
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class _Stops:
    """Process-local Cancellations by message id, so a Stop handled by the process that is
    generating acts at once; other processes see the database flag within a second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, Cancellation] = {}

    def add(self, message_id: int, cancel: Cancellation) -> None:
        with self._lock:
            self._by_id[message_id] = cancel

    def remove(self, message_id: int) -> None:
        with self._lock:
            self._by_id.pop(message_id, None)

    def cancel(self, message_id: int) -> bool:
        with self._lock:
            cancel = self._by_id.get(message_id)
        if cancel is None:
            return False
        cancel.cancel()
        return True

    def cancel_all(self, reason: str) -> int:
        """Stop every generation of this process (at shutdown); returns how many."""
        with self._lock:
            running = list(self._by_id.values())
        for cancel in running:
            cancel.cancel(reason)
        return len(running)

    def wait_idle(self, seconds: float) -> bool:
        """Wait until no generation runs in this process (their answers are saved)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self._by_id:
                    return True
            time.sleep(0.05)
        return False


stops = _Stops()


class _Saver:
    """Saves the partial text of every answer this process is writing, all in one transaction
    every ``STREAM_SAVE_SECONDS``, and reads all their Stop flags in one query.

    Saving is also the heartbeat that tells other processes an answer is alive (see
    ``mark_interrupted``). One writer per process instead of one per answer keeps the database
    work constant per second however many answers stream at once. The thread (a greenlet under
    gevent) runs only while there are answers to save.
    """

    def __init__(self, app: Flask):
        self.app = app
        self.every = float(app.config["STREAM_SAVE_SECONDS"])
        self._lock = threading.Lock()
        self._running: dict[int, Generation] = {}
        self._thread: threading.Thread | None = None

    def add(self, generation: Generation) -> None:
        with self._lock:
            self._running[generation.job.message_id] = generation
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="answer-saver")
                self._thread.start()

    def remove(self, generation: Generation) -> None:
        with self._lock:
            if self._running.get(generation.job.message_id) is generation:
                del self._running[generation.job.message_id]

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                running = list(self._running.values())
                if not running:
                    self._thread = None
                    return
            try:
                self.save(running)
            except Exception:  # noqa: BLE001 - a failed save must not end the saving
                log.exception("saving %d partial answers failed", len(running))

    def save(self, running: list[Generation]) -> None:
        """Write each generation's text so far; cancel those whose Stop was asked for."""
        now = utcnow()
        rows = [{"mid": g.job.message_id, "content": "".join(g.parts),
                 "token_count": len(g.parts), "first_token_at": g.first_token_at,
                 "updated_at": now} for g in running]
        with short_session(self.app) as session:
            session.connection().execute(_SAVE_PARTIAL, rows)
            stopped = set(session.scalars(select(Message.id).where(
                Message.id.in_([r["mid"] for r in rows]), Message.stop_requested)))
        for generation in running:
            if generation.job.message_id in stopped:
                generation.cancel.cancel()


_savers_lock = threading.Lock()


def saver_for(app: Flask) -> _Saver:
    """The app's saver (one per app and process)."""
    state = app_state(app)
    if state.answer_saver is None:
        with _savers_lock:
            if state.answer_saver is None:
                state.answer_saver = _Saver(app)
    return state.answer_saver


@contextmanager
def short_session(app: Flask):
    """A database session for one short unit of work, committed and released at the end."""
    with app.app_context():
        try:
            yield db.session
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()


# The statements run for every answer are built once, with bound parameters: SQLAlchemy spends
# about 0.3 ms building and keying a statement, several times what SQLite takes to run it.
_messages = Message.__table__
_HISTORY = (select(_messages.c.role, _messages.c.content)
            .where(_messages.c.conversation_id == bindparam("conversation_id"),
                   _messages.c.id < bindparam("message_id"))
            .order_by(_messages.c.id.desc()).limit(bindparam("most")))
_CLAIM = (update(_messages)
          .where(_messages.c.id == bindparam("message_id"), _messages.c.status == PENDING)
          .values(status=STREAMING, started_at=bindparam("now"), updated_at=bindparam("now"))
          .returning(_messages.c.conversation_id, _messages.c.provider, _messages.c.model,
                     _messages.c.params))
_FINISH = (update(_messages).where(_messages.c.id == bindparam("message_id"))
           .values(content=bindparam("content"), html=bindparam("html"),
                   status=bindparam("status"), error=bindparam("error"),
                   token_count=bindparam("tokens"), first_token_at=bindparam("first_token_at"),
                   finish_reason=bindparam("finish_reason"),
                   history_skipped=bindparam("skipped"),
                   finished_at=bindparam("now"), updated_at=bindparam("now")))
_COUNT_HISTORY = (select(func.count()).select_from(_messages)
                  .where(_messages.c.conversation_id == bindparam("conversation_id"),
                         _messages.c.id < bindparam("message_id"),
                         _messages.c.role.in_(("user", "assistant")), _messages.c.content != ""))
# The saver's: only rows still streaming (an answer that ended meanwhile keeps its final text).
_SAVE_PARTIAL = (update(_messages)
                 .where(_messages.c.id == bindparam("mid"), _messages.c.status == STREAMING)
                 .values(content=bindparam("content"), token_count=bindparam("token_count"),
                         first_token_at=func.coalesce(bindparam("first_token_at"),
                                                      _messages.c.first_token_at),
                         updated_at=bindparam("updated_at")))


def history_for(message_id: int, conversation_id: int, system: str,
                config: dict[str, Any]) -> tuple[list[dict[str, str]], int]:
    """The messages sent upstream to answer message ``message_id``: the system prompt, then as
    many of the latest turns before it as fit the configured bounds (oldest dropped first; the
    system prompt and the newest user message are always kept), and how many earlier messages
    were left out."""
    most = int(config["MAX_HISTORY_MESSAGES"])
    params = {"conversation_id": conversation_id, "message_id": message_id}
    rows = db.session.execute(_HISTORY, {**params, "most": most}).all()
    budget = int(config["MAX_HISTORY_CHARS"])
    turns: list[dict[str, str]] = []
    cut = len(rows) == most  # there may be older messages than those read
    for role, content in rows:
        if role not in ("user", "assistant") or not content:
            continue
        if turns and len(content) > budget:
            cut = True
            break
        budget -= len(content)
        turns.append({"role": role, "content": content})
    turns.reverse()
    # Counted only when something may have been left out: the common short conversation
    # costs no second query.
    skipped = db.session.execute(_COUNT_HISTORY, params).scalar_one() - len(turns) if cut else 0
    return ([{"role": "system", "content": system}] if system else []) + turns, skipped


#: A conversation cut to fit is cut by multiples of this many messages (see ``align_history``).
HISTORY_STEP = 8


def align_history(messages: list[dict[str, str]], skipped: int,
                  step: int = HISTORY_STEP) -> tuple[list[dict[str, str]], int]:
    """``messages`` (the history sent, ``skipped`` earlier ones already left out) with a few
    more of the oldest left out, so that the number left out is a multiple of ``step``, unless
    fewer than ``step`` would be left; the system prompt and the newest message stay.
    Returns them and the new number left out.

    A model server reuses what it read of the previous prompt as far as the new one starts the
    same (llama.cpp does, so do hosted APIs' prompt caches). Cutting a long conversation to its
    latest turns moves its start at every turn, and the whole of it is read again each time;
    cut by steps, its start stays the same for several turns and only the new turns are read.
    """
    if not skipped or skipped % step == 0:
        return messages, skipped
    start = 1 if messages and messages[0].get("role") == "system" else 0
    extra = -skipped % step
    if len(messages) - start - extra < step:
        return messages, skipped  # a short history is worth more whole than cached
    return messages[:start] + messages[start + extra:], skipped + extra


def job_for(message_id: int, conversation_id: int, provider: str | None, model: str | None,
            stored: dict[str, Any] | None, config: dict[str, Any]) -> Job:
    """The job of an answer that is already claimed, from its row's values (in the caller's
    session, which reads the history)."""
    params = dict(stored or {})
    system = params.pop("system_prompt", "")
    messages, skipped = history_for(message_id, conversation_id, system, config)
    return Job(message_id, conversation_id, provider or "", model or "", params, messages,
               skipped)


def claim(app: Flask, message_id: int) -> Job | None:
    """Move a pending message to streaming and return its job; None if it was not pending."""
    with short_session(app) as session:
        now = utcnow()
        # One statement claims the row and returns what the job needs (RETURNING works on
        # SQLite 3.35+ and PostgreSQL): no second round trip before the upstream request.
        row = session.execute(_CLAIM, {"message_id": message_id, "now": now}).first()
        if row is None:
            return None
        return job_for(message_id, *row, app.config)


def _take(items: queue.SimpleQueue, wait: float | None, most: int = 4096) -> list[Any]:
    """What the reader has queued: wait up to ``wait`` seconds for one item (``None``: do not
    wait), then take every other item already there, so a burst of tokens costs one wake-up,
    not one per token."""
    try:
        batch = [items.get_nowait() if wait is None else items.get(timeout=wait)]
    except queue.Empty:
        return []
    try:
        while len(batch) < most:
            batch.append(items.get_nowait())
    except queue.Empty:
        pass
    return batch


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return str(exc)
    return f"Internal error: {type(exc).__name__}"


class Generation:
    """Iterate to run one job: yields ``("text", chunk)`` and ``("keepalive", "")``.

    When iteration ends (or the iterator is closed because the client left), the answer is
    saved with its final status and ``outcome`` says how it went.
    """

    def __init__(self, app: Flask, job: Job):
        self.app = app
        self.job = job
        self.outcome = Outcome(skipped=job.skipped)
        self.cancel = Cancellation()
        config = app.config
        self.coalesce = float(config["STREAM_COALESCE_MS"]) / 1000.0
        self.keepalive = float(config["STREAM_KEEPALIVE_SECONDS"])
        #: The text so far, token by token, and when the first came (read by the saver).
        self.parts: list[str] = []
        self.first_token_at = None
        #: Set by the reader once it has queued its last item (the end or the error).
        self.ended = threading.Event()

    def _work(self, items: queue.SimpleQueue) -> None:
        """Worker thread: read the provider into the queue; never touches the database."""
        try:
            self._read(items)
        finally:
            self.ended.set()

    def _read(self, items: queue.SimpleQueue) -> None:
        job = self.job
        if job.provider not in providers(self.app):
            items.put(ProviderError(f"the provider {job.provider!r} is not enabled here"))
            return
        try:
            provider = providers(self.app).get(job.provider)
            # Within the model's context window: oldest turns dropped first (the system
            # prompt and the newest message kept), counted with those the bounds left out.
            messages, dropped = provider.fit_history(job.messages, job.params)
            messages, self.outcome.skipped = align_history(messages, job.skipped + dropped)
            tokens = provider.create_completion(job.model, messages, True,
                                                cancel=self.cancel, **job.params)
            try:
                while not self.cancel.is_set():
                    try:
                        token = next(tokens)
                    except StopIteration as end:
                        # A provider's generator returns its finish reason, if it knows it.
                        if isinstance(end.value, str):
                            self.outcome.finish_reason = end.value[:32]
                        break
                    items.put(token)
            finally:
                tokens.close()
            items.put(_END)
        except Exception as exc:  # noqa: BLE001 - every failure must reach the person
            if not isinstance(exc, ProviderError):
                log.exception("generation %s failed", job.message_id)
            items.put(exc)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        job, out = self.job, self.outcome
        items: queue.SimpleQueue = queue.SimpleQueue()
        stops.add(job.message_id, self.cancel)
        saver = saver_for(self.app)
        saver.add(self)
        started = time.monotonic()
        threading.Thread(target=self._work, args=(items,), daemon=True,
                         name=f"generate-{job.message_id}").start()
        parts = self.parts
        pending: list[str] = []
        flush_at: float | None = None
        last_write = started
        first_token_at = None
        stop_deadline: float | None = None
        client_left = True
        try:
            while True:
                now = time.monotonic()
                if flush_at is not None:
                    # Tokens that come before the event is due only join it: wait until then
                    # and take them all, rather than waking for each one (a wake-up per token
                    # cost more than relaying it). Only the answer's end cuts the wait short.
                    if flush_at > now:
                        self.ended.wait(flush_at - now)
                    batch = _take(items, None)
                else:
                    batch = _take(items, max(self.keepalive - (now - last_write), 0.0))
                now = time.monotonic()
                end = None
                received = False
                for item in batch:
                    if not isinstance(item, str):
                        end = item
                        break
                    parts.append(item)
                    pending.append(item)
                    received = True
                if received:
                    if first_token_at is None:
                        first_token_at = self.first_token_at = utcnow()
                        out.first_token_seconds = now - started
                        flush_at = now  # the first token goes out at once
                    elif flush_at is None:
                        flush_at = now + self.coalesce
                if end is not None:
                    if isinstance(end, BaseException):
                        out.status, out.error = ERROR, _describe(end)
                    if "".join(pending).strip():
                        yield "text", "".join(pending)
                    break
                if flush_at is not None and now >= flush_at:
                    flush_at = None
                    text = "".join(pending)
                    # htmx skips a swap of whitespace alone; hold it until text follows.
                    if text.strip():
                        pending.clear()
                        last_write = now
                        yield "text", text
                elif not batch and now - last_write >= self.keepalive:
                    last_write = now
                    yield "keepalive", ""
                if self.cancel.is_set():
                    # The worker ends promptly once cancelled; do not wait on it for long
                    # (it may be queued behind another generation for the local model).
                    stop_deadline = stop_deadline or now + 1.0
                    if now >= stop_deadline:
                        break
            client_left = False
        finally:
            if out.status == STREAMING:
                if client_left:
                    out.status, out.error = STOPPED, CLIENT_LEFT
                elif self.cancel.is_set():
                    out.status, out.error = STOPPED, self.cancel.reason or STOPPED_BY_USER
                else:
                    out.status = COMPLETE
            self.cancel.cancel()
            out.text, out.tokens = "".join(parts), len(parts)
            out.seconds = time.monotonic() - started
            saver.remove(self)
            try:
                self._save_final(first_token_at)
            finally:
                stops.remove(job.message_id)
            log.info("generation message=%s provider=%s model=%s status=%s tokens=%s "
                     "first_token=%.3fs total=%.3fs", job.message_id, job.provider, job.model,
                     out.status, out.tokens, out.first_token_seconds or -1, out.seconds)

    def _save_final(self, first_token_at) -> None:
        out = self.outcome
        html = str(render_markdown(out.text))  # once, so pages only print it
        now = utcnow()
        with short_session(self.app) as session:
            session.execute(_FINISH, {
                "message_id": self.job.message_id, "content": out.text, "html": html,
                "status": out.status, "error": out.error, "tokens": out.tokens,
                "first_token_at": first_token_at, "now": now,
                # Why it ended matters only for an answer that did end by itself.
                "finish_reason": out.finish_reason if out.status == COMPLETE else None,
                "skipped": out.skipped})
            session.execute(conversations.TOUCH, {"conversation_id": self.job.conversation_id,
                                                  "now": now})


def deadlines(config: dict[str, Any]) -> dict[str, Any]:
    """The two moments before which a running answer is over: a pending one asked for before
    ``pending`` was never started (``STREAM_PENDING_SECONDS``), a streaming one not saved since
    ``stale`` lost its process (``STREAM_STALE_SECONDS``)."""
    now = utcnow()
    return {"pending": now - timedelta(seconds=float(config["STREAM_PENDING_SECONDS"])),
            "stale": now - timedelta(seconds=float(config["STREAM_STALE_SECONDS"]))}


def not_started(config: dict[str, Any]) -> str:
    """The reason given to an answer that no one started in time."""
    return (f"Stopped: the answer did not start within {float(config['STREAM_PENDING_SECONDS']):g}"
            " seconds (the page that asked for it was closed or lost its connection). "
            "Retry to write it now.")


#: Ends one overdue answer, only if it is still in the state (and as old as) its reader saw:
#: a stream that claimed it or saved it meanwhile keeps it.
_END_OVERDUE = (update(_messages)
                .where(_messages.c.id == bindparam("message_id"),
                       _messages.c.status == bindparam("was"),
                       _messages.c.updated_at <= bindparam("deadline"))
                .values(status=bindparam("status"), error=bindparam("error"),
                        html=bindparam("html"), finished_at=bindparam("now"),
                        updated_at=bindparam("now")))


def mark_interrupted(message: Message) -> bool:
    """End ``message`` if it is running past its deadline (in the caller's session, which
    commits): pending and never started within ``STREAM_PENDING_SECONDS`` -> stopped with the
    reason; streaming but not saved by its generator for ``STREAM_STALE_SECONDS`` (it saves
    every second while alive, so its process died) -> interrupted. Returns whether it did.

    No running state holds a person's answers-at-once slot for ever: each has a deadline.
    """
    config = current_app.config
    if message.status == PENDING:
        deadline, status, error = deadlines(config)["pending"], STOPPED, not_started(config)
    elif message.status == STREAMING:
        deadline, status, error = deadlines(config)["stale"], ERROR, INTERRUPTED
    else:
        return False
    if message.updated_at > deadline:
        return False
    html = str(render_markdown(message.content or ""))
    now = utcnow()
    # A conditional UPDATE, not attribute assignment: a stream may claim the pending answer
    # (or a live generator save it) between our read and this write; then it is not ours.
    ended = db.session.execute(_END_OVERDUE, {
        "message_id": message.id, "was": message.status, "deadline": deadline,
        "status": status, "error": error, "html": html, "now": now}).rowcount
    if not ended:
        db.session.refresh(message)
        return False
    for name, value in (("status", status), ("error", error), ("html", html),
                        ("finished_at", now), ("updated_at", now)):
        set_committed_value(message, name, value)
    return True


def follow(app: Flask, message_id: int, poll: float = 0.5) -> Iterator[tuple[str, str]]:
    """For a message another request is generating: yield its text as it is saved, until it
    is final (or found interrupted). Yields like ``Generation``."""
    sent = 0
    while True:
        with short_session(app) as session:
            message = session.get(Message, message_id)
            if message is None:
                return
            mark_interrupted(message)
            content, status = message.content or "", message.status
        if status in FINAL_STATUSES and not sent:
            return  # nothing to relay: the caller sends the final HTML
        if len(content) > sent and content[sent:].strip():
            yield "text", content[sent:]
            sent = len(content)
        else:
            yield "keepalive", ""
        if status in FINAL_STATUSES:
            return
        time.sleep(poll)
