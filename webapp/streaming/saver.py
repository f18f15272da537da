"""One writer per process for the partial text of every answer it is generating."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from flask import Flask

from ..extensions import app_state
from ..models import utcnow
from ..queries import messages as queries
from .sessions import short_session

if TYPE_CHECKING:
    from .generation import Generation

log = logging.getLogger(__name__)


class Saver:
    """Saves the partial text of every answer this process is writing, and reads what other
    processes say of them (Stop, a page following from elsewhere), in a few queries for all.

    Every ``STREAM_FOLLOW_SECONDS`` it reads the flags of all running answers in one query:
    a Stop asked for in another process acts within that time, and the text of an answer that
    a page on another worker or server follows is saved at once, so that page lags by little.
    Every ``STREAM_SAVE_SECONDS`` it saves the text of all of them in one transaction; that
    save is also the heartbeat that tells other processes an answer is alive (see
    ``mark_interrupted``). One writer per process instead of one per answer keeps the database
    work constant per second however many answers run at once. The thread (a greenlet under
    gevent) runs only while there are answers to save.
    """

    def __init__(self, app: Flask):
        self.app = app
        self.every = float(app.config["STREAM_SAVE_SECONDS"])
        self.tick = min(float(app.config["STREAM_FOLLOW_SECONDS"]), self.every)
        self._lock = threading.Lock()
        self._running: dict[int, Generation] = {}
        #: How many parts of each answer were last saved (unchanged answers are not written).
        self._saved: dict[int, int] = {}
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
                self._saved.pop(generation.job.message_id, None)

    def _run(self) -> None:
        last_save = time.monotonic()
        while True:
            time.sleep(self.tick)
            with self._lock:
                running = list(self._running.values())
                if not running:
                    self._thread = None
                    return
            now = time.monotonic()
            every = now - last_save >= self.every - self.tick / 2
            try:
                self.save(running, every)
            except Exception:  # noqa: BLE001 - a failed save must not end the saving
                log.exception("saving %d partial answers failed", len(running))
            if every:
                last_save = now

    def save(self, running: list[Generation], every: bool = True) -> None:
        """Cancel the generations whose Stop was asked for; write the text so far of those
        followed from elsewhere that changed, or, with ``every``, of all of them."""
        now = utcnow()
        with short_session(self.app) as session:
            flags = session.execute(queries.FLAGS,
                                    {"ids": [g.job.message_id for g in running]}).all()
            stopped = {mid for mid, stop, _ in flags if stop}
            followed = {mid for mid, _, until in flags if until is not None and until > now}
            # In id order, as every writer of several answers locks them: two transactions
            # locking the same rows in different orders deadlock on PostgreSQL.
            rows = sorted((self._row(g, now) for g in running
                           if every or (g.job.message_id in followed and self._changed(g))),
                          key=lambda row: row["mid"])
            if rows:
                session.connection().execute(queries.SAVE_PARTIAL, rows)
        with self._lock:  # only for answers still running (an ended one is forgotten)
            for row in rows:
                if row["mid"] in self._running:
                    self._saved[row["mid"]] = row["token_count"]
        for generation in running:
            if generation.job.message_id in stopped:
                generation.cancel.cancel()

    def _changed(self, generation: Generation) -> bool:
        return len(generation.parts) != self._saved.get(generation.job.message_id)

    @staticmethod
    def _row(generation: Generation, now) -> dict:
        count = len(generation.parts)  # the generation's thread may be adding to them
        job = generation.job
        return {"mid": job.message_id,
                "content": job.prefix + "".join(generation.parts[:count]),
                "token_count": job.prefix_tokens + count,
                "first_token_at": generation.first_token_at, "updated_at": now}


def saver_for(app: Flask) -> Saver:
    """The app's saver (one per app and process)."""
    return app_state(app).once("answer_saver", lambda: Saver(app))
