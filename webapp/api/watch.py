"""Noticing a client that leaves while nothing is being sent to it.

Once a stream flows, a client that closed its connection is noticed by the next write. Before
the first token (and through the whole of a call that asked for no stream) nothing is
written, so a client that gave up would leave the upstream answering, and the call holding
one of its owner's answers at once, until the answer ended. A watch peeks at the client's
socket meanwhile: end of file there means the client left, and the call is cancelled.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

from ..providers import Cancellation

#: How often a watch looks again, in seconds (also how soon it ends once told to stop).
LOOK_SECONDS = 0.25


class ClientWatch:
    """Cancels ``cancel`` with ``reason`` when the client closes ``sock``; ``stop`` it once
    writing begins (or the call ends)."""

    def __init__(self, sock: Any, cancel: Cancellation, reason: str):
        self.sock = sock
        self.cancel = cancel
        self.reason = reason
        self._stopped = threading.Event()

    @classmethod
    def start(cls, environ: dict[str, Any], cancel: Cancellation, reason: str
              ) -> ClientWatch | None:
        """A running watch on the request's socket (gunicorn's workers give it); None where
        there is none to watch (the test client)."""
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return None
        watch = cls(sock, cancel, reason)
        # A greenlet under gevent's workers (threading is patched), a thread under gthread.
        threading.Thread(target=watch._run, daemon=True, name="api-client-watch").start()
        return watch

    def stop(self) -> None:
        """Stop watching (the watch ends within ``LOOK_SECONDS``)."""
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set() and not self.cancel.is_set():
            try:
                readable, _, _ = select.select([self.sock], [], [], LOOK_SECONDS)
                if not readable or self._stopped.is_set():
                    continue
                data = self.sock.recv(1, socket.MSG_PEEK)
            except (OSError, ValueError):  # closed under us: the request is over
                data = b""
            if not data:
                self.cancel.cancel(self.reason)
            # Data: the client sent more (a next request on the same connection); it has
            # not left, and the socket is not ours to read.
            return
