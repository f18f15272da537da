"""The OpenAI chat-completions protocol over HTTP, shared by Equing and generic servers.

``OpenAICompatible`` speaks ``POST {base}/chat/completions`` to Ollama, vLLM, a llama.cpp
server or OpenAI itself; ``Equing`` (in ``equing.py``) is the same protocol at another path with
the headers of the seed. Everything the original Equing client got wrong is handled here once:
SSE framing (``sse.py``), incremental UTF-8, ``[DONE]`` and ``finish_reason``, error
bodies and error events, timeouts, and closing the response on every exit.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import re
import socket
import threading
from collections.abc import Generator, Iterator
from typing import Any, ClassVar

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from . import sse
from .base import (
    AbstractProvider,
    Cancellation,
    CreateResult,
    MalformedResponse,
    ProviderError,
    UpstreamConnectionError,
    UpstreamHTTPError,
    UpstreamStreamError,
    UpstreamTimeout,
    check_messages,
    sampling_kwargs,
)
from .offload import cooperative

#: Seconds to wait for the rest of a body after the answer in it has ended (see
#: ``_ByteSource.close``).
_TAIL_WAIT = 0.1
#: How much of an error body is read to find the upstream's message.
_ERROR_BODY_LIMIT = 64 * 1024
#: How long an error message may be once cleaned for display.
_MESSAGE_LIMIT = 300

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


class _ByteSource:
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
                        if read > _ERROR_BODY_LIMIT:
                            break  # more than a tail: not worth waiting for
            except ProviderError:
                pass
            if self.exhausted:
                raw.release_conn()
                return
        self.response.close()


def _clean(text: str) -> str:
    """Collapse whitespace and shorten to a message fit to show a person."""
    text = " ".join(text.split())
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 1] + "…"
    return text


def error_message(obj: Any) -> str | None:
    """The human message inside an error object in any of the shapes upstreams use.

    OpenAI and one-api: ``{"error": {"message": ..., "type": ...}}``; NextChat:
    ``{"error": true, "msg": ...}``; FastAPI: ``{"detail": ...}``; or ``{"message": ...}``.
    Returns ``None`` when ``obj`` is not an error.
    """
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if isinstance(err, dict):
        message = err.get("message") or err.get("msg") or err.get("type") or err.get("code")
        return _clean(str(message)) if message else "unknown error"
    if isinstance(err, str) and err:
        return _clean(err)
    if err:
        message = obj.get("msg") or obj.get("message")
        return _clean(str(message)) if message else "unknown error"
    if "detail" in obj and "choices" not in obj:
        detail = obj["detail"]
        if isinstance(detail, list):
            detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                               for d in detail)
        return _clean(str(detail))
    return None


def _body_message(text: str, content_type: str) -> str:
    """The message of an error body that is JSON, an HTML page or plain text."""
    stripped = text.strip()
    if "json" in content_type or stripped.startswith(("{", "[")):
        try:
            message = error_message(json.loads(stripped))
        except ValueError:
            message = None
        if message:
            return message
    if "html" in content_type or stripped[:1] == "<":
        title = re.search(r"<title[^>]*>(.*?)</title>", stripped, re.I | re.S)
        if title and title.group(1).strip():
            return _clean(html.unescape(title.group(1)))
        return _clean(html.unescape(re.sub(r"<[^>]+>", " ", stripped))) or "an HTML error page"
    return _clean(stripped)


def http_error(response: requests.Response, provider: str) -> UpstreamHTTPError:
    """An ``UpstreamHTTPError`` carrying the status and the upstream's own message."""
    try:
        raw = response.raw.read(_ERROR_BODY_LIMIT, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, OSError):
        raw = b""
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    message = _body_message(text, response.headers.get("Content-Type", "")) or response.reason
    return UpstreamHTTPError(message or "error", status=response.status_code, provider=provider,
                             body=text[:2000])


def _completion_content(obj: Any, provider: str, doc: str) -> str:
    """The assistant text of a non-streamed chat completion."""
    message = error_message(obj)
    if message:
        raise UpstreamStreamError(message, provider=provider)
    try:
        content = obj["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse("the answer has no choices[0].message.content",
                                doc=doc, provider=provider) from None
    return content or ""


def _finish_reason(obj: Any) -> str | None:
    """``choices[0].finish_reason`` of a non-streamed completion, if it is there."""
    try:
        reason = obj["choices"][0].get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return str(reason) if reason else None


def _event_object(name: str, data: str, source: _ByteSource, provider: str) -> Any:
    """The JSON object of one stream event; an error event, an error object or a broken
    event raises the provider error that says so."""
    if name == "error":
        # A named error event may carry plain text rather than JSON.
        try:
            message = error_message(json.loads(data))
        except json.JSONDecodeError:
            message = None
        raise UpstreamStreamError(message or _clean(data) or "error event", provider=provider)
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        if source.exhausted:
            raise UpstreamStreamError("the upstream cut the stream off mid-event",
                                      provider=provider) from exc
        raise MalformedResponse(f"malformed event from the upstream: {_clean(data)[:120]!r}",
                                doc=data, pos=exc.pos, provider=provider) from exc
    message = error_message(obj)
    if message:
        raise UpstreamStreamError(message, provider=provider)
    return obj


def _stream_tokens(source: _ByteSource, provider: str) -> Generator[str, None, str | None]:
    """Yield the text of each chunk event until ``[DONE]`` or a ``finish_reason``; return the
    ``finish_reason`` (``'length'``: cut at the token limit), None if there was none."""
    reason = None
    for name, data in sse.events(source):
        data = data.strip()
        if data == "[DONE]":
            return reason
        finished = False
        for choice in _event_object(name, data, source, provider).get("choices") or ():
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content")
            if content:
                yield content
            if choice.get("finish_reason"):
                finished = True
                reason = str(choice["finish_reason"])
        if finished:
            return reason
    if source.cancel is not None and source.cancel.is_set():
        return None
    raise UpstreamStreamError("the upstream ended the stream before the answer was finished",
                              provider=provider)


def _collect(tokens: Generator[str, None, str | None]) -> tuple[str, str | None]:
    """All of a token stream as one text, and the finish reason it returned."""
    texts: list[str] = []
    while True:
        try:
            texts.append(next(tokens))
        except StopIteration as end:
            return "".join(texts), end.value


def _whole_answer(source: _ByteSource, content_type: str, provider: str
                  ) -> tuple[str, str | None] | None:
    """The whole answer of a response read at once, and its finish reason: an event stream
    (when a single answer was asked for) or a plain JSON completion. None if it was
    cancelled while the JSON was read."""
    if "text/event-stream" in content_type:
        return _collect(_stream_tokens(source, provider))
    doc = b"".join(source).decode("utf-8", errors="replace")
    if source.cancel is not None and source.cancel.is_set():
        return None
    try:
        obj = json.loads(doc)
    except json.JSONDecodeError as exc:
        raise MalformedResponse(f"the answer is not JSON: {_clean(doc)[:120]!r}",
                                doc=doc, pos=exc.pos, provider=provider) from exc
    return _completion_content(obj, provider, doc), _finish_reason(obj)


class OpenAICompatible(AbstractProvider):
    """Any server with OpenAI's ``/chat/completions`` API (Ollama, vLLM, llama.cpp, OpenAI).

    ``url`` is the API base including its version, e.g. ``http://127.0.0.1:11434/v1/``;
    ``api_key``, when set, is sent as a Bearer token. ``models`` lists what it offers (an empty
    list accepts any model id).
    """

    name = "openai"
    label = "OpenAI-compatible server"
    url = "http://127.0.0.1:8080/v1/"
    working = False
    supports_stream = True
    supports_gpt_35_turbo = True
    supports_gpt_4 = True
    models: ClassVar[tuple[str, ...]] = ()
    #: Path of the chat-completions endpoint below ``url``.
    endpoint_path: ClassVar[str] = "chat/completions"
    api_key: ClassVar[str] = ""

    @classmethod
    def endpoint(cls) -> str:
        """The full URL requests are POSTed to."""
        return cls.url.rstrip("/") + "/" + cls.endpoint_path.lstrip("/")

    @classmethod
    def build_headers(cls, stream: bool) -> dict[str, str]:
        """Request headers; subclasses add their own identity."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            # A compressed event stream is buffered by the decompressor; ask for it plain.
            "Accept-Encoding": "identity",
        }
        if cls.api_key:
            headers["Authorization"] = f"Bearer {cls.api_key}"
        return headers

    @classmethod
    def build_body(cls, model: str, messages: list[dict[str, str]], stream: bool,
                   params: dict[str, Any]) -> dict[str, Any]:
        """The JSON request body: messages, model, stream and the sampling parameters."""
        return {"messages": messages, "stream": stream, "model": model, **params}

    @classmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        """Answer ``messages`` (see ``AbstractProvider.create_completion``).

        The model and parameters are checked here, before any network call, so a wrong model
        fails at once rather than on the first ``next()``.
        """
        cls.check_model(model)
        try:
            params = sampling_kwargs(kwargs, cls.params)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=cls.name) from None
        check_messages(messages, cls.name)
        timeout = kwargs.get("timeout") or cls.timeout
        cancel = kwargs.get("cancel")
        body = cls.build_body(model, messages, stream, params)
        return cls._generate(body, cls.build_headers(stream), stream, timeout, cancel)

    @classmethod
    def _post(cls, body: dict[str, Any], headers: dict[str, str], timeout: Any,
              cancel: Cancellation | None) -> requests.Response | None:
        """Send the request and return the response once its headers came; None if it was
        cancelled meanwhile."""
        _thread_state.cancel = cancel
        try:
            url = cls.endpoint()
            return _session().post(url, json=body, headers=headers, stream=True,
                                   timeout=timeout, **_environment(url))
        except requests.exceptions.RequestException as exc:
            if cancel is not None and cancel.is_set():
                return None
            if isinstance(exc, requests.exceptions.Timeout):
                raise UpstreamTimeout(f"the upstream did not answer in time ({exc})",
                                      provider=cls.name) from exc
            raise UpstreamConnectionError(f"cannot reach the upstream ({exc})",
                                          provider=cls.name) from exc
        finally:
            _thread_state.cancel = None

    @classmethod
    def _generate(cls, body: dict[str, Any], headers: dict[str, str], stream: bool,
                  timeout: Any, cancel: Cancellation | None) -> CreateResult:
        """POST the request and yield the answer; the response is closed on every exit.
        Returns (as the generator's value) the upstream's ``finish_reason``, if it gave one."""
        if cancel is not None and cancel.is_set():
            return
        response = cls._post(body, headers, timeout, cancel)
        if response is None:
            return
        source: _ByteSource | None = None
        answered = False  # the whole answer was read: the connection can serve another
        try:
            if response.status_code >= 400:
                raise http_error(response, cls.name)
            source = _ByteSource(response, cls.name, cancel)
            content_type = response.headers.get("Content-Type", "")
            if stream and "text/event-stream" in content_type:
                reason = yield from _stream_tokens(source, cls.name)
                answered = True
                return reason
            # Read at once: a single answer asked for, or a plain JSON answer, asked for or
            # not (some servers ignore "stream": true).
            whole = _whole_answer(source, content_type, cls.name)
            if whole is None:
                return
            answered = True
            yield whole[0]
            return whole[1]
        finally:
            if source is not None:
                source.close(answered)
            else:
                response.close()
