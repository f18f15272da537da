"""One run of a provider for one answer, to its end, whether or not a page is watching.

A generation runs on its own thread (a greenlet under gunicorn's gevent workers), started when
the answer is accepted; pages only listen to its ``Live``. The provider is read in a second
thread (``reader``) feeding a queue; the generation waits on the queue with a timeout, so it
can coalesce tokens into one published piece per ``STREAM_COALESCE_MS`` (``Coalescer``), act on
a Stop and keep the time limit (``STREAM_MAX_SECONDS``); when it wakes it takes everything
queued, so a burst costs one wake-up. The process's ``Saver`` writes the text so far every
``STREAM_SAVE_SECONDS`` (more often while another process follows it); at the end the answer is
saved once with its final status (``Outcome.end``) and HTML, and then its listeners are told;
after a conversation's first answer, its title is asked for then (``titles``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.exc import OperationalError

from ..extensions import providers
from ..models import utcnow
from ..providers import Cancellation
from ..queries import conversations
from ..queries import messages as queries
from ..rendering import render_markdown
from .coalesce import Coalescer
from .ending import Outcome, over_time
from .jobs import Job
from .live import Live, lives
from .reader import read, take
from .saver import saver_for
from .sessions import short_session
from .stops import stops
from .titles import title_after

log = logging.getLogger(__name__)

#: How many times an answer's final save is tried.
_SAVE_TRIES = 4

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


def start_generation(app: Flask, job: Job) -> Generation:
    """Generate ``job``'s answer (already claimed) to its end, in the background."""
    return Generation(app, job).start()


class Generation:
    """One answer generated to its end: ``start`` it, listen to its ``live``.

    When it ends (by itself, failed, stopped, over its time limit, or at shutdown), the answer
    is saved with its final status and ``outcome`` says how it went.
    """

    def __init__(self, app: Flask, job: Job):
        self.app = app
        self.job = job
        self.outcome = Outcome(skipped=job.skipped)
        self.cancel = Cancellation()
        config = app.config
        self.coalesce = float(config["STREAM_COALESCE_MS"]) / 1000.0
        self.keepalive = float(config["STREAM_KEEPALIVE_SECONDS"])
        self.time_limit = float(config["STREAM_MAX_SECONDS"])
        #: What pages listen to: the text published so far.
        self.live = Live(job.message_id, job.prefix)
        #: The text so far, token by token, and when the first came (read by the saver).
        self.parts: list[str] = []
        self.first_token_at: datetime | None = None
        #: Set by the reader once it has queued its last item (the end or the error).
        self.ended = threading.Event()
        #: The exception that ended the answer, once the generation has taken it.
        self._failure: BaseException | None = None
        self._items: queue.SimpleQueue = queue.SimpleQueue()

    def start(self) -> Generation:
        """Register the answer in this process (for Stop, the saver, listeners) and run it on
        threads of its own."""
        message_id = self.job.message_id
        stops.add(message_id, self.cancel)
        lives.add(self.live)
        saver_for(self.app).add(self)
        threading.Thread(target=self._work, daemon=True, name=f"read-{message_id}").start()
        threading.Thread(target=self.run, daemon=True, name=f"answer-{message_id}").start()
        return self

    def _work(self) -> None:
        """Worker thread: read the provider into the queue; never touches the database."""
        try:
            read(providers(self.app), self.job, self.cancel, self.outcome, self._items)
        finally:
            self.ended.set()

    def run(self) -> None:
        """Publish the answer as it comes, then save it with how it ended."""
        started = time.monotonic()
        try:
            self._publish(started)
        except Exception as exc:  # noqa: BLE001 - the answer must still be saved, with why
            log.exception("generation %s failed", self.job.message_id)
            self._failure = self._failure or exc
        finally:
            self._end(started)

    def _publish(self, started: float) -> None:
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
                    self.live.publish(rest)
                return
            event = coalescer.add(tokens, now)
            if event is not None and event[0] == "text":
                self.live.publish(event[1])
            if not self.cancel.is_set() and now - started >= self.time_limit:
                self.cancel.cancel(over_time(self.time_limit))
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

    def _end(self, started: float) -> None:
        """Decide how the answer ended, stop the reader, save the answer once, and then tell
        its listeners (they read the final answer from the database)."""
        job, out = self.job, self.outcome
        out.end(self._failure, self.cancel)
        self.cancel.cancel()
        out.text = self.job.prefix + "".join(self.parts)
        out.tokens = self.job.prefix_tokens + len(self.parts)
        out.seconds = time.monotonic() - started
        saver_for(self.app).remove(self)
        try:
            self._save_final()
        except Exception:  # noqa: BLE001 - logged; the answer ends as interrupted when stale
            log.exception("saving the end of answer %s failed", job.message_id)
        finally:
            stops.remove(job.message_id)
            lives.remove(self.live)
            self.live.end()
        log.info("generation message=%s provider=%s model=%s status=%s tokens=%s "
                 "first_token=%.3fs total=%.3fs", job.message_id, job.provider, job.model,
                 out.status, out.tokens, out.first_token_seconds or -1, out.seconds)
        # After the pages were told: a title is asked for on this thread, and no page waits.
        title_after(self.app, job, out.status, out.text)

    def _save_final(self) -> None:
        """Save the answer once with how it ended; a transaction the database chose to undo
        (a deadlock, a serialization failure) is tried again, so the end is never lost."""
        html = str(render_markdown(self.outcome.text))  # once, so pages only print it
        for attempt in range(_SAVE_TRIES):
            try:
                self._write_final(html)
                return
            except OperationalError:
                if attempt == _SAVE_TRIES - 1:
                    raise
                log.warning("saving the end of answer %s failed; trying again",
                            self.job.message_id, exc_info=True)
                time.sleep(0.1 * (attempt + 1))

    def _write_final(self, html: str) -> None:
        out = self.outcome
        now = utcnow()
        with short_session(self.app) as session:
            session.execute(queries.FINISH, {
                "message_id": self.job.message_id, "content": out.text, "html": html,
                "status": out.status, "error": out.error, "tokens": out.tokens,
                "first_token_at": self.first_token_at, "now": now,
                "finish_reason": out.stored_finish_reason, "skipped": out.skipped})
            session.execute(conversations.TOUCH, {"conversation_id": self.job.conversation_id,
                                                  "now": now})
