"""A TCP proxy on 127.0.0.1 in front of a server, whose connections a test can break.

Playwright's ``context.set_offline`` only fails the requests a page starts while offline: a
response already streaming keeps flowing (chromium's network emulation does not touch open
connections). To drop the network under a page for real, the page goes through this proxy:
``cut`` closes every open connection at once (the page sees its stream fail), ``stall`` stops
forwarding on the open ones without closing them (the page hears nothing, as when a connection
dies silently), and while ``down`` a new connection is closed as soon as it is accepted.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class _Pair:
    """One proxied connection: the browser's socket and ours to the server."""

    def __init__(self, client: socket.socket, upstream: socket.socket):
        self.client = client
        self.upstream = upstream
        self.stalled = threading.Event()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class NetProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``; ``base`` is its URL."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.down = False
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> NetProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def cut(self) -> int:
        """Close every open connection; how many there were."""
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            pair.close()
        return len(pairs)

    def stall(self) -> int:
        """Stop forwarding on every open connection, leaving it open; how many there were.
        Connections made afterwards are forwarded as usual."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.stalled.set()
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.add(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or pair.stalled.is_set():
                    # A stalled connection swallows what comes and sends nothing on.
                    if data:
                        continue
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._pairs.discard(pair)
        pair.close()
