"""The upstream's own words for what went wrong, in whatever shape its error comes."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import requests
import urllib3.exceptions

from .base import UpstreamHTTPError

#: How much of an error body is read to find the upstream's message.
_ERROR_BODY_LIMIT = 64 * 1024
#: How long an error message may be once cleaned for display.
_MESSAGE_LIMIT = 300


def clean(text: str) -> str:
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
        return clean(str(message)) if message else "unknown error"
    if isinstance(err, str) and err:
        return clean(err)
    if err:
        message = obj.get("msg") or obj.get("message")
        return clean(str(message)) if message else "unknown error"
    if "detail" in obj and "choices" not in obj:
        detail = obj["detail"]
        if isinstance(detail, list):
            detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                               for d in detail)
        return clean(str(detail))
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
            return clean(html.unescape(title.group(1)))
        return clean(html.unescape(re.sub(r"<[^>]+>", " ", stripped))) or "an HTML error page"
    return clean(stripped)


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
