"""This process's running generations by message id, so a Stop acts at once."""

from __future__ import annotations

import threading
import time

from ..providers import Cancellation


class Stops:
    """Process-local Cancellations by message id (and API calls by ``"api-ID"``), so a Stop
    handled by the process that is generating acts at once; other processes see the database
    flag within a second (the saver reads it). A shutdown cancels them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int | str, Cancellation] = {}

    def add(self, message_id: int | str, cancel: Cancellation) -> None:
        with self._lock:
            self._by_id[message_id] = cancel

    def remove(self, message_id: int | str) -> None:
        with self._lock:
            self._by_id.pop(message_id, None)

    def cancel(self, message_id: int) -> bool:
        """Stop generation ``message_id`` if this process runs it; returns whether it did."""
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


#: The process's one registry.
stops = Stops()
