"""HTTP to an upstream: pooled keep-alive connections that a ``Cancellation`` interrupts,
the environment's proxies found once, and a response body as bytes as they arrive.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from .base import Cancellation, ProviderError, UpstreamConnectionError, UpstreamTimeout
from .offload import cooperative

#: Seconds to wait for the rest of a body after the answer in it has ended (see
#: ``ByteSource.close``).
_TAIL_WAIT = 0.1
#: More than this many bytes after the answer is not a tail: not worth waiting for.
_TAIL_LIMIT = 64 * 1024

_thread_state = threading.local()


class _CancellableMixin:
    """Registers the socket with the thread's current ``Cancellation`` before waiting for
    the response, so ``cancel()`` from another thread wakes a read blocked on the headers or
    the body (closing the file descriptor alone does not wake a blocked ``recv`` on Linux)."""

    #: The ``(cancellation, callback)`` registered for the response being read, removed
    #: before the connection goes back to the pool (a later cancel must not shut down the
    #: socket while another answer reads from it).
    cancel_hook: tuple[Cancellation, Any] | None = None

    def getresponse(self, *args: Any, **kwargs: Any):
        cancel = getattr(_thread_state, "cancel", None)
        sock = getattr(self, "sock", None)
        if cancel is not None and sock is not None:
            def hook() -> None:
                _shutdown(sock)
            self.cancel_hook = (cancel, hook)
            cancel.on_cancel(hook)
        return super().getresponse(*args, **kwargs)


class _HTTPConnection(_CancellableMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_CancellableMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with connections that a ``Cancellation`` can interrupt."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any):
        manager = super().proxy_manager_for(proxy, **kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS managers have their own pools
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


#: Keep-alive connections kept per upstream host by the shared Session of a gevent worker: as
#: many as the answers it may stream at once (gunicorn's worker_connections), since a pool
#: smaller than that discards the extra connections and every later answer connects anew.
_SHARED_POOL_SIZE = 1024
_shared: requests.Session | None = None


@functools.lru_cache(maxsize=64)
def _environment(url: str) -> dict[str, Any]:
    """The proxies and CA bundle the environment gives requests to ``url``, found once.

    requests looks them up on every request (proxy variables, ``NO_PROXY``, the CA bundle
    variables and a stat of ``~/.netrc``), a noticeable part of starting an answer; the
    process environment does not change, so the Session ignores it and each request passes
    what was found here. ``~/.netrc`` is not used: the API key is the credential.
    """
    settings = requests.Session().merge_environment_settings(url, {}, None, None, None)
    return {"proxies": settings["proxies"], "verify": settings["verify"]}


def _new_session(pool_size: int = requests.adapters.DEFAULT_POOLSIZE) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # see _environment()
    adapter = _Adapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _session() -> requests.Session:
    """The requests Session for this caller: pooled keep-alive connections.

    With OS threads, one per thread (requests does not promise a Session is thread-safe). In a
    gevent worker thread-locals are per greenlet, i.e. per answer, which would open a new
    connection for every answer; greenlets never run at the same time, so the whole process
    shares one Session with a pool large enough for many answers at once.
    """
    global _shared
    if cooperative():
        if _shared is None:
            _shared = _new_session(_SHARED_POOL_SIZE)
        return _shared
    session = getattr(_thread_state, "session", None)
    if session is None:
        session = _thread_state.session = _new_session()
    return session


def post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: Any,
         cancel: Cancellation | None) -> requests.Response:
    """POST ``body`` as JSON and return the streamed response once its headers came; a
    ``cancel`` meanwhile shuts the socket down (the request then raises)."""
    _thread_state.cancel = cancel
    try:
        return _session().post(url, json=body, headers=headers, stream=True, timeout=timeout,
                               **_environment(url))
    finally:
        _thread_state.cancel = None


class ByteSource:
    """The response body as an iterator of byte chunks, as they arrive.

    requests' ``iter_content(None)`` waits for the whole body when the upstream does not use
    chunked transfer encoding, which would turn a stream into one burst; ``read1`` returns what
    the socket has. Low-level errors become provider errors, and ``exhausted`` tells the parser
    whether the body ended (so a half event at the end is reported as a cut stream).
    """

    def __init__(self, response: requests.Response, provider: str,
                 cancel: Cancellation | None):
        self.response = response
        self.provider = provider
        self.cancel = cancel
        self.exhausted = False
        self._chunks = self._read()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def _read(self) -> Iterator[bytes]:
        raw = self.response.raw
        try:
            if raw.chunked and raw.supports_chunked_reads():
                yield from raw.read_chunked(decode_content=True)
            else:
                while chunk := raw.read1(65536, decode_content=True):
                    yield chunk
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError) as exc:
            if self._cancelled():
                return
            raise UpstreamTimeout("no data from the upstream within the read timeout",
                                  provider=self.provider) from exc
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            # ValueError: urllib3 reading a response whose socket another thread shut down.
            if self._cancelled():
                return
            raise UpstreamConnectionError(f"the connection broke mid-answer ({exc})",
                                          provider=self.provider) from exc
        self.exhausted = True

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def close(self, answered: bool) -> None:
        """Close the response; after a whole answer, keep its connection for the next one.

        An answer ends at ``finish_reason`` or ``[DONE]``, usually a few bytes before the body
        does. Those bytes are read if they come within ``_TAIL_WAIT`` seconds, and the
        connection goes back to the pool instead of being closed, so the next answer does not
        connect anew (a TLS handshake to a remote upstream). An upstream that keeps the
        stream open after the answer only costs that wait.
        """
        raw = self.response.raw
        connection = getattr(raw, "connection", None)
        if answered and connection is not None and not self._cancelled():
            hook = getattr(connection, "cancel_hook", None)
            if hook is not None:
                hook[0].discard(hook[1])
                connection.cancel_hook = None
            sock = connection.sock
            try:
                if not self.exhausted and sock is not None:
                    sock.settimeout(_TAIL_WAIT)
                    read = 0
                    for chunk in self._chunks:
                        read += len(chunk)
                        if read > _TAIL_LIMIT:
                            break  # more than a tail: not worth waiting for
            except ProviderError:
                pass
            if self.exhausted:
                raw.release_conn()
                return
        self.response.close()
