"""OpenAI's wire format: error bodies, ``chat.completion`` and ``chat.completion.chunk``.

Kept apart from the views so the shapes are in one place; the SDK's exceptions key off the
status and read ``error.message``, ``error.type`` and ``error.code``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, request

#: The addresses the API answers under (the path Equing clients call, and the usual one).
PREFIXES = ("/v1/", "/api/openai/v1/")

#: Each error status's OpenAI ``type`` and ``code`` when the caller names none.
_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("api_error", "upstream_error"),
    503: ("api_error", "unavailable"),
}


class ApiError(Exception):
    """A call refused or failed, answered in OpenAI's error shape with ``status``."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        default_kind, default_code = _KINDS.get(status, ("api_error", None))
        self.kind = kind or default_kind
        self.code = code or default_code
        self.param = param

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    def response(self) -> Response:
        """The error as a JSON response (with ``WWW-Authenticate`` for a 401)."""
        response = json_response(self.body(), self.status)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return response


def is_api_request() -> bool:
    """Whether the current request is addressed to the API (its errors are JSON)."""
    return request.path.startswith(PREFIXES)


def json_response(body: Any, status: int = 200) -> Response:
    """``body`` as compact JSON."""
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status,
                    mimetype="application/json")


class Shapes:
    """The objects of one completion: its id, creation time and model name are shared by every
    chunk, and each chunk's fixed part is encoded once (a burst of tokens costs one
    ``json.dumps`` of the text each)."""

    def __init__(self, call_id: int, model: str):
        self.id = f"chatcmpl-{call_id}"
        self.created = int(time.time())
        self.model = model
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model}
        # Everything before a chunk's content, and after it.
        marker = "\x00content\x00"  # encoded as an escape no model name can hold
        opening = json.dumps({**head, "choices": [{"index": 0, "delta": {"content": marker},
                                                   "finish_reason": None}]},
                             separators=(",", ":"), ensure_ascii=False)
        self._before, self._after = opening.split(json.dumps(marker), 1)
        self._head = head

    def chunk(self, text: str) -> bytes:
        """One ``data:`` event carrying ``text``."""
        encoded = json.dumps(text, ensure_ascii=False)
        return f"data: {self._before}{encoded}{self._after}\n\n".encode()

    def first_chunk(self) -> bytes:
        """The event that opens a stream: the assistant's role, no text yet."""
        return self._event({"choices": [{"index": 0,
                                         "delta": {"role": "assistant", "content": ""},
                                         "finish_reason": None}]})

    def last_chunk(self, finish_reason: str) -> bytes:
        """The event that ends the choice, with its ``finish_reason``."""
        return self._event({"choices": [{"index": 0, "delta": {},
                                         "finish_reason": finish_reason}]})

    def usage_chunk(self, usage: dict[str, int]) -> bytes:
        """The event ``stream_options.include_usage`` asks for: no choices, the usage."""
        return self._event({"choices": [], "usage": usage})

    def completion(self, text: str, finish_reason: str, usage: dict[str, int]) -> dict:
        """The ``chat.completion`` of a call that asked for no stream."""
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish_reason}],
                "usage": usage}

    def _event(self, fields: dict[str, Any]) -> bytes:
        body = json.dumps({**self._head, **fields}, separators=(",", ":"), ensure_ascii=False)
        return f"data: {body}\n\n".encode()


def error_event(error: ApiError) -> bytes:
    """A failure after the stream began, as OpenAI sends it: an event with an ``error``."""
    body = json.dumps(error.body(), separators=(",", ":"), ensure_ascii=False)
    return f"data: {body}\n\n".encode()


#: The stream's last event.
DONE = b"data: [DONE]\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
