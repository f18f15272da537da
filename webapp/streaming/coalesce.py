"""Tokens into events: one event per ``STREAM_COALESCE_MS``, keepalives while nothing comes.

Every event costs the browser a frame (and the server a wake-up), while a model writes
several tokens per frame: tokens that come within the coalescing interval after the first
held one go out together. ``Coalescer`` is only that decision; it is given the time and never
reads a clock, waits or sleeps, so it is tested without threads.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The events a generation yields: ``("text", chunk)`` or ``KEEPALIVE``.
Event = tuple[str, str]
KEEPALIVE: Event = ("keepalive", "")


class Coalescer:
    """Decides when the tokens received so far go out as one event.

    The first text goes out at once (the first token is what a person waits for); after it,
    a token that comes while nothing is due makes what is held due ``every`` seconds later,
    and the tokens that come meanwhile only join it. Whitespace alone is held
    until text follows (htmx skips a swap of whitespace alone). When no event went out for
    ``keepalive`` seconds and nothing came, it is time for a keepalive (a client that left is
    noticed before the first token).
    """

    def __init__(self, every: float, keepalive: float, now: float):
        self.every = every
        self.keepalive = keepalive
        #: When the held text is due to go out; None while none waits for a moment.
        self.due: float | None = None
        self._held: list[str] = []
        self._received = False
        self._last_event = now

    def add(self, tokens: Sequence[str], now: float) -> Event | None:
        """Take the ``tokens`` that came by ``now`` (none: the wait ended without any); the
        event to send now, or None."""
        if tokens:
            self._held.extend(tokens)
            if not self._received:
                self._received = True
                self.due = now  # the first token goes out at once
            elif self.due is None:
                self.due = now + self.every
        if self.due is not None and now >= self.due:
            self.due = None
            text = "".join(self._held)
            if not text.strip():
                return None
            self._held.clear()
            self._last_event = now
            return "text", text
        if not tokens and now - self._last_event >= self.keepalive:
            self._last_event = now
            return KEEPALIVE
        return None

    def until_keepalive(self, now: float) -> float:
        """Seconds from ``now`` until a keepalive is due (0 if it is)."""
        return max(self.keepalive - (now - self._last_event), 0.0)

    def finish(self, tokens: Sequence[str] = ()) -> str | None:
        """At the answer's end, with its last ``tokens``: all the text still held, if it
        shows anything."""
        self._held.extend(tokens)
        text = "".join(self._held)
        self._held.clear()
        self.due = None
        return text if text.strip() else None
