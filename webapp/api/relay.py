"""One API call: checked against the person's limits, recorded, relayed from the provider.

Unlike a web turn (generated apart from any request, for pages to attach to), an API call is
relayed in its own request, token by token, as OpenAI's API does: the client is the only
listener, and a client that goes away stops the upstream. Before the upstream is asked, only
the limits' check and the call's record are written; when the call ends, however it ends, its
record is finished and its turn kept (``API_KEEP_CONVERSATIONS``), in one transaction. A
shutdown (``stops.cancel_all``) ends it with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, Response

from ..chat.turns import TurnError, check_running
from ..extensions import db, providers
from ..models import COMPLETE, ERROR, STOPPED, utcnow
from ..providers import Cancellation, ProviderError
from ..queries import api as queries
from ..rendering import render_markdown
from ..streaming import short_session, stops
from ..streaming.ending import over_time
from . import keep
from .body import ChatRequest
from .catalog import Choice
from .watch import ClientWatch
from .wire import DONE, ApiError, Shapes, error_event, json_response, usage

log = logging.getLogger(__name__)

#: The ``finish_reason`` values OpenAI's clients know; any other is reported as ``stop``.
FINISH_REASONS = {"stop", "length", "content_filter"}
#: Said of a call whose client closed the connection before the answer ended.
CLIENT_LEFT = "The client closed the connection before the answer ended."

_STATUS = {COMPLETE: "complete", STOPPED: "stopped", ERROR: "error"}


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    """The prompt's size in tokens, estimated (about four characters a token, and a few for
    each message's framing): the providers do not all say how many they read."""
    return sum(len(m["content"]) for m in messages) // 4 + 4 * len(messages)


@dataclass
class Call:
    """A call in progress: its ids, what it asks, and how far it got."""

    id: int
    key_id: int
    person_id: int
    chat: ChatRequest
    choice: Choice
    started_at: datetime
    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    first_token_at: datetime | None = None
    finish_reason: str = "stop"
    status: str = COMPLETE
    error: str | None = None
    http_status: int = 200
    cancel: Cancellation = field(default_factory=Cancellation)

    @property
    def stop_key(self) -> str:
        """Its name among this process's running answers (``stops``)."""
        return f"api-{self.id}"


def begin(key_id: int, person_id: int, chat: ChatRequest, choice: Choice,
          endpoint: str) -> Call:
    """Check the person's answers at once and record the call (running), in one short
    transaction; ``ApiError`` 429 over the limit. Nothing else is written before the upstream
    is asked: the turn is kept when the call ends (``keep``)."""
    try:
        check_running(person_id)
    except TurnError as exc:
        db.session.rollback()
        raise ApiError(exc.status, exc.message, code="too_many_answers") from None
    now = utcnow()
    call_id = db.session.execute(queries.START_CALL, {
        "user_id": person_id, "key_id": key_id, "endpoint": endpoint, "model": chat.model,
        "provider": choice.provider, "provider_model": choice.model, "stream": chat.stream,
        "status": "running", "http_status": 200, "prompt_tokens": 0,
        "completion_tokens": 0, "started_at": now,
    }).scalar_one()
    db.session.execute(queries.KEY_USED, {"key_id": key_id, "now": now})
    db.session.commit()
    return Call(call_id, key_id, person_id, chat, choice, now)


class Relay:
    """A call's answer read from its provider: ``open`` waits for the first token (so an
    upstream that fails at once is a 502, not a stream with an error in it), then ``stream``
    or ``whole`` gives the rest."""

    def __init__(self, app: Flask, call: Call):
        self.app = app
        self.call = call
        self.time_limit = float(app.config["STREAM_MAX_SECONDS"])
        self.shapes = Shapes(call.id, call.choice.id)
        self._tokens: Iterator[str] | None = None
        #: The provider's generator has ended (its finish reason was kept).
        self._exhausted = False
        #: The response began as a stream (its status, 200, was sent).
        self._streamed = False
        self._finished_once = False
        self._watch: ClientWatch | None = None

    def open(self, environ: dict[str, Any]) -> str:
        """Ask the provider and return its first piece of text ('' for an empty answer);
        ``ApiError`` 502 when it fails before that (the call is then recorded as failed).
        Until a stream begins, a watch on the client's socket cancels the call if the client
        leaves (``watch``)."""
        call = self.call
        stops.add(call.stop_key, call.cancel)
        self._watch = ClientWatch.start(environ, call.cancel, CLIENT_LEFT)
        provider = providers(self.app).get(call.choice.provider)
        try:
            # Within the model's context window, as for a chat turn: the oldest turns go
            # first (a local model would otherwise fail on a long history).
            messages, dropped = provider.fit_history(call.chat.messages, call.chat.params)
            if dropped:
                log.info("api call=%s: %s earlier messages left out to fit the model",
                         call.id, dropped)
            self._tokens = provider.create_completion(
                call.choice.model, messages, stream=provider.supports_stream,
                cancel=call.cancel, **call.chat.params)
            return self._next() or ""
        except ProviderError as exc:
            error = self._failed(exc)
            self.finish()
            raise error from None
        except BaseException:
            self._ended(ERROR, "Internal error.", 500)
            self.finish()
            raise

    def _next(self) -> str | None:
        """The provider's next piece of text, or None at its end (its finish reason kept)."""
        if self._exhausted or self._tokens is None:
            return None
        try:
            token = next(self._tokens)
        except StopIteration as end:
            self._exhausted = True
            self._finished(end.value)
            return None
        call = self.call
        call.parts.append(token)
        if call.first_token_at is None:
            call.first_token_at = utcnow()
        if time.monotonic() - call.started > self.time_limit:
            call.cancel.cancel(over_time(self.time_limit))
        return token

    def _finished(self, reason: Any) -> None:
        call = self.call
        if call.cancel.is_set():  # the client left, a time limit or a shutdown ended it early
            reason = call.cancel.reason or "Stopped."
            self._ended(STOPPED, reason, 499 if reason == CLIENT_LEFT else 503)
        else:
            call.finish_reason = reason if reason in FINISH_REASONS else "stop"

    def _ended(self, status: str, error: str, http_status: int) -> None:
        call = self.call
        call.status, call.error, call.http_status = status, error, http_status

    def _failed(self, exc: ProviderError) -> ApiError:
        self._ended(ERROR, str(exc), 502)
        return ApiError(502, f"The upstream failed: {exc}", code="upstream_error")

    def usage(self) -> dict[str, int]:
        """The call's ``usage``."""
        return usage(prompt_tokens(self.call.chat.messages), len(self.call.parts))

    def whole(self, first: str) -> Response:
        """The ``chat.completion`` of a call that asked for no stream."""
        call = self.call
        try:
            while self._next() is not None:
                pass
        except ProviderError as exc:
            raise self._failed(exc) from None
        finally:
            self.finish()
        if call.status != COMPLETE:
            raise ApiError(call.http_status, call.error or "Stopped.", code="stopped")
        text = "".join(call.parts)
        return json_response(self.shapes.completion(text, call.finish_reason, self.usage()))

    def stream(self, first: str) -> Iterator[bytes]:
        """The call as ``chat.completion.chunk`` events, ``data: [DONE]`` last."""
        shapes = self.shapes
        self._streamed = True
        self._stop_watching()  # from here on, a write notices a client that left
        try:
            opening = shapes.first_chunk()
            yield opening + shapes.chunk(first) if first else opening
            while (token := self._next()) is not None:
                yield shapes.chunk(token)
            yield from self._closing()
        except ProviderError as exc:
            yield error_event(self._failed(exc))
            yield DONE
        except Exception:  # noqa: BLE001 - the client is told, the log keeps the traceback
            log.exception("api call %s failed", self.call.id)
            self._ended(ERROR, "Internal error.", 500)
            yield error_event(ApiError(500, "Internal error: the answer could not be "
                                            "finished.", code="internal_error"))
            yield DONE
        except GeneratorExit:
            if self.call.status == COMPLETE and not self._exhausted:
                self._ended(STOPPED, CLIENT_LEFT, 499)
            raise
        finally:
            self.finish()

    def _stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _closing(self) -> Iterator[bytes]:
        call = self.call
        if call.status != COMPLETE:
            yield error_event(ApiError(call.http_status, call.error or "Stopped.",
                                       code="stopped"))
        else:
            yield self.shapes.last_chunk(call.finish_reason)
            if call.chat.include_usage:
                yield self.shapes.usage_chunk(self.usage())
        yield DONE

    def finish(self) -> None:
        """Stop the provider, then record how the call ended and keep its answer. Runs once,
        however the call ends."""
        call = self.call
        if self._finished_once:
            return
        self._finished_once = True
        self._stop_watching()
        if self._streamed and call.http_status != 499:
            call.http_status = 200  # what was sent: a stream's errors come inside it
        tokens, self._tokens = self._tokens, None
        stops.remove(call.stop_key)
        call.cancel.cancel()
        if tokens is not None:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # the provider's ``finally`` closes the upstream response
        try:
            _record(self.app, call, prompt_tokens(call.chat.messages))
        except Exception:  # noqa: BLE001 - the client has its answer; the log says what failed
            log.exception("recording API call %s failed", call.id)
        log.info("api call=%s person=%s model=%s status=%s tokens=%s total=%.3fs", call.id,
                 call.person_id, call.choice.id, call.status, len(call.parts),
                 time.monotonic() - call.started)


def _record(app: Flask, call: Call, prompt: int) -> None:
    """Write how the call ended and, with ``API_KEEP_CONVERSATIONS``, keep its turn."""
    now = utcnow()
    text = "".join(call.parts)
    with short_session(app) as session:
        conversation_id = None
        if app.config["API_KEEP_CONVERSATIONS"]:
            params = dict(call.chat.params)
            if call.chat.system:
                params["system_prompt"] = call.chat.system
            conversation_id = keep.keep_turn(session, call.person_id, call.chat,
                                             call.started_at, {
                "content": text, "html": str(render_markdown(text)), "status": call.status,
                "provider": call.choice.provider, "model": call.choice.model,
                "params": params, "error": call.error, "token_count": len(call.parts),
                "finish_reason": call.finish_reason if call.status == COMPLETE else None,
                "created_at": call.started_at, "started_at": call.started_at,
                "first_token_at": call.first_token_at, "finished_at": now,
                "updated_at": now})
        session.execute(queries.END_CALL, {
            "call_id": call.id, "status": _STATUS.get(call.status, call.status),
            "http_status": call.http_status, "error": call.error,
            "prompt_tokens": prompt, "completion_tokens": len(call.parts),
            "conversation_id": conversation_id, "first_token_at": call.first_token_at,
            "finished_at": now})
