"""The OpenAI chat-completions protocol over HTTP, shared by Equing and generic servers.

``OpenAICompatible`` speaks ``POST {base}/chat/completions`` to Ollama, vLLM, a llama.cpp
server or OpenAI itself; ``Equing`` (in ``equing.py``) is the same protocol at another path with
the headers of the seed. Everything the original Equing client got wrong is handled once:
SSE framing (``sse.py``), incremental UTF-8, ``[DONE]`` and ``finish_reason``, error events,
timeouts and closing the response on every exit (here), error bodies (``upstream_errors.py``),
connections that a Stop interrupts and that a whole answer leaves to the next
(``transport.py``).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, ClassVar

import requests

from . import sse
from .base import (
    AbstractProvider,
    Cancellation,
    CreateResult,
    MalformedResponse,
    UpstreamConnectionError,
    UpstreamStreamError,
    UpstreamTimeout,
    check_messages,
)
from .transport import ByteSource, post
from .upstream_errors import clean, error_message, http_error


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


def _event_object(name: str, data: str, source: ByteSource, provider: str) -> Any:
    """The JSON object of one stream event; an error event, an error object or a broken
    event raises the provider error that says so."""
    if name == "error":
        # A named error event may carry plain text rather than JSON.
        try:
            message = error_message(json.loads(data))
        except json.JSONDecodeError:
            message = None
        raise UpstreamStreamError(message or clean(data) or "error event", provider=provider)
    try:
        obj = json.loads(data)
    except json.JSONDecodeError as exc:
        if source.exhausted:
            raise UpstreamStreamError("the upstream cut the stream off mid-event",
                                      provider=provider) from exc
        raise MalformedResponse(f"malformed event from the upstream: {clean(data)[:120]!r}",
                                doc=data, pos=exc.pos, provider=provider) from exc
    message = error_message(obj)
    if message:
        raise UpstreamStreamError(message, provider=provider)
    return obj


def _stream_tokens(source: ByteSource, provider: str) -> Generator[str, None, str | None]:
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


def _whole_answer(source: ByteSource, content_type: str, provider: str
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
        raise MalformedResponse(f"the answer is not JSON: {clean(doc)[:120]!r}",
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
        """The JSON request body: messages, model, stream, the sampling parameters and
        ``stop`` (a list, only when there are stop sequences)."""
        return {"messages": messages, "stream": stream, "model": model, **params}

    @classmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        """Answer ``messages`` (see ``AbstractProvider.create_completion``).

        The model and parameters are checked here, before any network call, so a wrong model
        fails at once rather than on the first ``next()``.
        """
        cls.check_model(model)
        params = cls.read_params(kwargs)
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
        try:
            return post(cls.endpoint(), body, headers, timeout, cancel)
        except requests.exceptions.RequestException as exc:
            if cancel is not None and cancel.is_set():
                return None
            if isinstance(exc, requests.exceptions.Timeout):
                raise UpstreamTimeout(f"the upstream did not answer in time ({exc})",
                                      provider=cls.name) from exc
            raise UpstreamConnectionError(f"cannot reach the upstream ({exc})",
                                          provider=cls.name) from exc

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
        source: ByteSource | None = None
        answered = False  # the whole answer was read: the connection can serve another
        try:
            if response.status_code >= 400:
                raise http_error(response, cls.name)
            source = ByteSource(response, cls.name, cancel)
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
