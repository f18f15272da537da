"""A page's view of an answer: its text after the offset the page has, as it grows.

Wherever the answer is generated, a listener reads one ``Live``: the generation's own in the
process that generates it, else the one this process's ``Follower`` keeps from the database.
A listener that goes away changes nothing for the answer.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask

from .follow import follower_for
from .live import Live, lives

#: What a listener yields: ``(offset, text)``, the text that starts at that offset of the
#: answer, or None for a while with nothing new (time for a keepalive).
Piece = tuple[int, str] | None


class Listener:
    """Iterate for the text of answer ``message_id`` after offset ``after``, until it ends;
    ``close`` when the page leaves."""

    def __init__(self, app: Flask, message_id: int, after: int = 0):
        self.keepalive = float(app.config["STREAM_KEEPALIVE_SECONDS"])
        self.after = after
        local = lives.get(message_id)
        self._follower = None if local is not None else follower_for(app)
        #: The answer's text as this process knows it (only grows while the answer runs).
        self.live: Live = local if local is not None else self._follower.attach(message_id)

    def __iter__(self) -> Iterator[Piece]:
        sent = self.after
        while True:
            text, ended = self.live.wait(sent, self.keepalive)
            if text:
                yield sent, text
                sent += len(text)
            elif not ended:
                yield None
            if ended:
                return

    def close(self) -> None:
        if self._follower is not None:
            self._follower.detach(self.live)
            self._follower = None
