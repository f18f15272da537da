"""Following, for the pages this process serves, answers that another process generates.

An answer is generated in the process that accepted it. A page served by another worker or
another app server (a reload lands anywhere) follows it through the database, which every
deployment already has: this process marks the answers its pages follow (``followed_until``, a
few seconds ahead, renewed while they stay), the generating process then saves their text every
``STREAM_FOLLOW_SECONDS`` instead of every ``STREAM_SAVE_SECONDS`` (see ``Saver``), and this
process reads all the answers it follows in one query every ``STREAM_FOLLOW_SECONDS``. The
added delay is about one to two such intervals (docs/benchmarks.md); no broker is needed.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask

from ..extensions import app_state
from ..models import FINAL_STATUSES, Message, utcnow
from ..queries import messages as queries
from .ending import overdue_ending
from .live import Live
from .overdue import mark_interrupted
from .sessions import short_session

log = logging.getLogger(__name__)

#: How far ahead an answer is marked followed, in reads: long enough that a late renewal
#: does not drop it back to slow saving, short enough that a page that left stops costing.
_MARK_AHEAD = 30
#: The least, in seconds, it is marked ahead (a short interval must not mean seconds of lag).
_MARK_AT_LEAST = 3.0


class Follower:
    """One per app and process: reads the answers its pages follow, feeds their ``Live``."""

    def __init__(self, app: Flask):
        self.app = app
        self.every = float(app.config["STREAM_FOLLOW_SECONDS"])
        self.mark_ahead = max(self.every * _MARK_AHEAD, _MARK_AT_LEAST)
        self._lock = threading.Lock()
        self._lives: dict[int, Live] = {}
        self._listeners: dict[int, int] = {}
        self._thread: threading.Thread | None = None

    def attach(self, message_id: int) -> Live:
        """The ``Live`` of answer ``message_id``, followed until every listener detaches."""
        with self._lock:
            live = self._lives.get(message_id)
            if live is None:
                live = self._lives[message_id] = Live(message_id)
            self._listeners[message_id] = self._listeners.get(message_id, 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="answer-follower")
                self._thread.start()
        return live

    def detach(self, live: Live) -> None:
        with self._lock:
            left = self._listeners.get(live.message_id, 0) - 1
            if left > 0:
                self._listeners[live.message_id] = left
            elif self._lives.get(live.message_id) is live:
                del self._lives[live.message_id]
                self._listeners.pop(live.message_id, None)

    def _run(self) -> None:
        marked: set[int] = set()
        marked_at = 0.0
        while True:
            with self._lock:
                lives = dict(self._lives)
                if not lives:
                    self._thread = None
                    return
            now = time.monotonic()
            # Marked at once for an answer new here, then renewed well before the mark ends.
            renew = not set(lives) <= marked or now - marked_at >= self.mark_ahead / 3
            try:
                self.read(lives, renew)
                if renew:
                    marked, marked_at = set(lives), now
            except Exception:  # noqa: BLE001 - a failed read must not end the following
                log.exception("following %d answers failed", len(lives))
            time.sleep(self.every)

    def read(self, lives: dict[int, Live], renew: bool) -> None:
        """Bring each ``Live`` up to its answer's saved text; end those whose answer ended
        (or ended now, past its deadline: its process died). With ``renew``, mark them all
        followed for a while longer."""
        ids = list(lives)
        with short_session(self.app) as session:
            if renew:
                until = utcnow() + timedelta(seconds=self.mark_ahead)
                session.execute(queries.FOLLOW, {"ids": ids, "until": until})
            rows = session.execute(queries.FOLLOWED, {"ids": ids}).all()
            ended = set(ids) - {row[0] for row in rows}  # deleted meanwhile
            for message_id, content, status, updated_at in rows:
                lives[message_id].catch_up(content or "")
                if status not in FINAL_STATUSES and _overdue(status, updated_at, self.app):
                    message = session.get(Message, message_id)
                    if message is not None and mark_interrupted(message):
                        status = message.status
                if status in FINAL_STATUSES:
                    ended.add(message_id)
        # Once committed: a listener told the answer ended reads its final row.
        for message_id in ended:
            lives[message_id].end()


def _overdue(status: str, updated_at, app: Flask) -> bool:
    ending = overdue_ending(status, app.config)
    return ending is not None and updated_at <= ending[0]


def follower_for(app: Flask) -> Follower:
    """The app's follower (one per app and process)."""
    return app_state(app).once("answer_follower", lambda: Follower(app))
