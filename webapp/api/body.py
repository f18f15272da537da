"""A chat-completions request's body, read and checked: what is wrong is said in words.

Fields OpenAI defines that do not change the answer (``user``, ``seed``, ``logprobs``…) are
accepted and ignored, so ordinary clients work; those that would change it in a way the
providers cannot honour (``n`` above 1, tools) are refused, not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest

from ..guards import unstorable
from ..providers.base import MOST_STOP_CHARS, MOST_STOPS, SAMPLING_PARAMS, stop_sequences
from .wire import ApiError

#: The roles a message may have; ``developer`` is OpenAI's newer name for ``system``.
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass
class ChatRequest:
    """What a call asks for, checked."""

    model: str
    #: The messages, each ``{"role", "content"}`` with text content, system ones first.
    messages: list[dict[str, str]]
    stream: bool = False
    #: Sampling parameters the person named (and ``stop``), to pass on.
    params: dict[str, Any] = field(default_factory=dict)
    #: ``stream_options.include_usage``: a last chunk with the usage.
    include_usage: bool = False

    @property
    def system(self) -> str:
        """The system prompt: the system messages' texts, joined."""
        return "\n\n".join(m["content"] for m in self.messages if m["role"] == "system")

    @property
    def turns(self) -> list[dict[str, str]]:
        """The messages other than the system prompt."""
        return [m for m in self.messages if m["role"] != "system"]


def _bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, code=code or "invalid_request", param=param)


def _text(content: Any, where: str) -> str:
    """A message's content as text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str)):
                raise _bad(f"{where} may only hold text parts ({{\"type\": \"text\", "
                           "\"text\": …}}): images, audio and files are not supported.", where)
            texts.append(part["text"])
        return "".join(texts)
    raise _bad(f"{where} must be a string or a list of text parts.", where)


def _message(item: Any, index: int) -> dict[str, str]:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object with a role and a content.", where)
    role = item.get("role")
    if role not in ROLES:
        raise _bad(f"{where}.role must be one of system, developer, user or assistant "
                   f"(tools and functions are not supported), not {role!r}.", f"{where}.role")
    content = _text(item.get("content"), f"{where}.content")
    if unstorable(content):
        raise _bad(f"{where}.content holds a character that cannot be stored (a NUL "
                   "character or a broken Unicode sequence).", f"{where}.content")
    return {"role": ROLES[role], "content": content}


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _bad("messages must be a non-empty list of messages.", "messages")
    read = [_message(item, i) for i, item in enumerate(value)]
    if all(m["role"] == "system" for m in read):
        raise _bad("messages needs at least one user or assistant message.", "messages")
    # The system prompt goes first, whatever the client's order (as providers expect it).
    return [m for m in read if m["role"] == "system"] + [m for m in read if m["role"] != "system"]


def _number(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            (kind is int and not float(value).is_integer()):
        raise _bad(f"{name} must be {'a whole number' if kind is int else 'a number'}.", name)
    return kind(value)


def _params(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling parameters named in ``body``, within the ranges providers take."""
    if "max_tokens" not in body and "max_completion_tokens" in body:
        body = {**body, "max_tokens": body["max_completion_tokens"]}
    params: dict[str, Any] = {}
    for param in SAMPLING_PARAMS:
        value = _number(body, param.name, param.type)
        if value is None:
            continue
        if value != value or (param.minimum is not None and value < param.minimum) or \
                (param.maximum is not None and value > param.maximum):
            raise _bad(f"{param.name} must be between {param.minimum} and {param.maximum}.",
                       param.name)
        params[param.name] = value
    stop = _stop(body.get("stop"))
    if stop:
        params["stop"] = stop
    return params


def _stop(value: Any) -> list[str]:
    """The stop sequences, checked as the providers check them (and storable)."""
    try:
        stops = stop_sequences({"stop": value})
    except ValueError:
        stops = None
    if stops is None or any(unstorable(s) for s in stops):
        raise _bad(f"stop must be a string or a list of at most {MOST_STOPS} non-empty strings "
                   f"of at most {MOST_STOP_CHARS} characters.", "stop")
    return stops


def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("n must be 1: one answer per call.", "n")
    for name in ("tools", "functions"):
        if body.get(name):
            raise _bad(f"{name} are not supported by this server.", name)


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(f"{name} must be true or false.", name)
    return value


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise _bad("stream_options must be an object.", "stream_options")
    return _flag(options, "include_usage")


def read_request() -> ChatRequest:
    """The request's body as a ``ChatRequest``; ``ApiError`` 400 saying what is wrong."""
    try:
        body = request.get_json(force=True, silent=False)
    except RecursionError:
        raise _bad("The JSON body is nested too deeply.") from None
    except BadRequest:  # (a body over MAX_CONTENT_LENGTH is a 413, raised as it is)
        raise _bad("The body must be JSON: a chat-completions request object.",
                   code="invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200 or unstorable(model):
        raise _bad("model must name a model (GET /v1/models lists them).", "model")
    _refuse_unsupported(body)
    stream = _flag(body, "stream")
    return ChatRequest(model.strip(), _messages(body.get("messages")), stream, _params(body),
                       stream and _include_usage(body))


def check_sizes(chat: ChatRequest, config: Any) -> None:
    """The web chat's bounds, as a 422 saying which: each message at most
    ``MAX_MESSAGE_CHARS``; before the newest, at most ``MAX_HISTORY_MESSAGES`` messages and
    ``MAX_HISTORY_CHARS`` characters."""
    most = int(config["MAX_MESSAGE_CHARS"])
    for i, message in enumerate(chat.messages):
        if len(message["content"]) > most:
            raise ApiError(422, f"A message has {len(message['content'])} characters; at most "
                                f"{most} are allowed here.", code="message_too_long",
                           param=f"messages[{i}].content")
    earlier = chat.turns[:-1]
    most_messages = int(config["MAX_HISTORY_MESSAGES"])
    if len(earlier) > most_messages:
        raise ApiError(422, f"The history has {len(earlier)} messages before the last; at most "
                            f"{most_messages} are allowed here.", code="history_too_long",
                       param="messages")
    chars = sum(len(m["content"]) for m in earlier)
    most_chars = int(config["MAX_HISTORY_CHARS"])
    if chars > most_chars:
        raise ApiError(422, f"The history before the last message has {chars} characters; at "
                            f"most {most_chars} are allowed here.", code="history_too_long",
                       param="messages")
