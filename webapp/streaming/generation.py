"""One run of a provider for one answer, as the events of its response.

The provider is read in a worker thread (``reader``) feeding a queue. The response side waits
on the queue with a timeout, so it can send keepalive comments and coalesce tokens into events
(``Coalescer``); when it wakes it takes everything queued, so a burst costs one wake-up. The
process's ``Saver`` writes the text so far every ``STREAM_SAVE_SECONDS``; at the end the answer
is saved once with its final status (``Outcome.end``) and HTML.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Flask

from ..extensions import providers
from ..models import utcnow
from ..providers import Cancellation
from ..queries import conversations
from ..queries import messages as queries
from ..rendering import render_markdown
from .coalesce import Coalescer, Event
from .ending import Outcome
from .jobs import Job
from .reader import read, take
from .saver import saver_for
from .sessions import short_session
from .stops import stops

log = logging.getLogger(__name__)

#: Seconds a cancelled generation waits for its reader to end before it ends without it (the
#: reader may be queued behind another generation for the local model).
_STOP_WAIT = 1.0


def _split(batch: list[Any]) -> tuple[list[str], Any]:
    """A batch taken from the queue as its tokens and the item that ended the answer (None if
    it goes on)."""
    for i, item in enumerate(batch):
        if not isinstance(item, str):
            return batch[:i], item
    return batch, None


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
        self.first_token_at: datetime | None = None
        #: Set by the reader once it has queued its last item (the end or the error).
        self.ended = threading.Event()
        #: The exception that ended the answer, once the response side has taken it.
        self._failure: BaseException | None = None
        self._items: queue.SimpleQueue = queue.SimpleQueue()

    def _work(self) -> None:
        """Worker thread: read the provider into the queue; never touches the database."""
        try:
            read(providers(self.app), self.job, self.cancel, self.outcome, self._items)
        finally:
            self.ended.set()

    def __iter__(self) -> Iterator[Event]:
        started = time.monotonic()
        stops.add(self.job.message_id, self.cancel)
        saver_for(self.app).add(self)
        threading.Thread(target=self._work, daemon=True,
                         name=f"generate-{self.job.message_id}").start()
        client_left = True
        try:
            yield from self._events(started)
            client_left = False
        finally:
            self._end(started, client_left)

    def _events(self, started: float) -> Iterator[Event]:
        coalescer = Coalescer(self.coalesce, self.keepalive, started)
        stop_deadline: float | None = None
        while True:
            tokens, end = _split(self._wait(coalescer))
            now = time.monotonic()
            if tokens:
                self._received(tokens, now - started)
            if end is not None:
                if isinstance(end, BaseException):
                    self._failure = end
                rest = coalescer.finish(tokens)
                if rest is not None:
                    yield "text", rest
                return
            event = coalescer.add(tokens, now)
            if event is not None:
                yield event
            if self.cancel.is_set():
                # The worker ends promptly once cancelled; do not wait on it for long.
                stop_deadline = stop_deadline or now + _STOP_WAIT
                if now >= stop_deadline:
                    return

    def _wait(self, coalescer: Coalescer) -> list[Any]:
        """The next batch of queued items, taken when the coalescer's moment comes."""
        now = time.monotonic()
        if coalescer.due is None:
            return take(self._items, coalescer.until_keepalive(now))
        # Tokens that come before the event is due only join it: wait until then and take
        # them all, rather than waking for each one (a wake-up per token cost more than
        # relaying it). Only the answer's end cuts the wait short.
        if coalescer.due > now:
            self.ended.wait(coalescer.due - now)
        return take(self._items, None)

    def _received(self, tokens: list[str], seconds: float) -> None:
        """Keep ``tokens`` (for the saver and the final write), the first ``seconds`` after
        the start."""
        self.parts.extend(tokens)
        if self.first_token_at is None:
            self.first_token_at = utcnow()
            self.outcome.first_token_seconds = seconds

    def _end(self, started: float, client_left: bool) -> None:
        """Decide how the answer ended, stop the reader, save the answer once."""
        job, out = self.job, self.outcome
        out.end(self._failure, client_left, self.cancel)
        self.cancel.cancel()
        out.text, out.tokens = "".join(self.parts), len(self.parts)
        out.seconds = time.monotonic() - started
        saver_for(self.app).remove(self)
        try:
            self._save_final()
        finally:
            stops.remove(job.message_id)
        log.info("generation message=%s provider=%s model=%s status=%s tokens=%s "
                 "first_token=%.3fs total=%.3fs", job.message_id, job.provider, job.model,
                 out.status, out.tokens, out.first_token_seconds or -1, out.seconds)

    def _save_final(self) -> None:
        out = self.outcome
        html = str(render_markdown(out.text))  # once, so pages only print it
        now = utcnow()
        with short_session(self.app) as session:
            session.execute(queries.FINISH, {
                "message_id": self.job.message_id, "content": out.text, "html": html,
                "status": out.status, "error": out.error, "tokens": out.tokens,
                "first_token_at": self.first_token_at, "now": now,
                "finish_reason": out.stored_finish_reason, "skipped": out.skipped})
            session.execute(conversations.TOUCH, {"conversation_id": self.job.conversation_id,
                                                  "now": now})
