"""An answer's text as its listeners see it grow, one ``Live`` per running answer a process
knows of.

A page never reads a generation directly: it listens to the answer's ``Live``. In the process
that generates the answer, the generation publishes to it as its coalesced text comes; in any
other process (another worker, another app server), the process's ``Follower`` fills it from
the saved text. Either way a listener asks for the text after the offset it already has, so a
page that reconnects resumes where it left off, wherever it lands.
"""

from __future__ import annotations

import threading


class Live:
    """The published text of one answer and whether it has ended; listeners wait on it."""

    def __init__(self, message_id: int, text: str = ""):
        self.message_id = message_id
        self.text = text
        self.ended = False
        self._changed = threading.Condition()

    def publish(self, chunk: str) -> None:
        """Add ``chunk`` to the text (the generating process)."""
        with self._changed:
            self.text += chunk
            self._changed.notify_all()

    def catch_up(self, text: str) -> None:
        """Take ``text``, the answer's saved text, if it is further along (a following
        process; the saved text only grows while the answer runs)."""
        if len(text) <= len(self.text):
            return
        with self._changed:
            self.text = text
            self._changed.notify_all()

    def end(self) -> None:
        """The answer is over: its final state is in the database."""
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait(self, after: int, timeout: float) -> tuple[str, bool]:
        """The text after offset ``after`` (waiting up to ``timeout`` seconds for some) and
        whether the answer has ended."""
        with self._changed:
            if len(self.text) <= after and not self.ended:
                self._changed.wait(timeout)
            return self.text[after:], self.ended


class Lives:
    """The ``Live`` of each answer generated in this process, by message id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, Live] = {}

    def add(self, live: Live) -> None:
        with self._lock:
            self._by_id[live.message_id] = live

    def get(self, message_id: int) -> Live | None:
        with self._lock:
            return self._by_id.get(message_id)

    def remove(self, live: Live) -> None:
        with self._lock:
            if self._by_id.get(live.message_id) is live:
                del self._by_id[live.message_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)


#: The answers this process generates.
lives = Lives()
