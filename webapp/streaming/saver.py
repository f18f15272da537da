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
            session.connection().execute(queries.SAVE_PARTIAL, rows)
            stopped = set(session.scalars(queries.stop_requested([r["mid"] for r in rows])))
        for generation in running:
            if generation.job.message_id in stopped:
                generation.cancel.cancel()


_savers_lock = threading.Lock()


def saver_for(app: Flask) -> Saver:
    """The app's saver (one per app and process)."""
    state = app_state(app)
    if state.answer_saver is None:
        with _savers_lock:
            if state.answer_saver is None:
                state.answer_saver = Saver(app)
    return state.answer_saver
