"""Importing a JSON export: read it, check all of it against the schema, then store it at once.

Nothing is stored unless everything passes; the first problem is reported in words, saying
which conversation, message and field, and why. The rules for settings and parameters are the
settings forms' (``webapp.settings.schema``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DataError

from ..extensions import db
from ..models import FINAL_STATUSES, STOPPED, Conversation, Message, utcnow
from ..rendering import render_markdown
from ..settings.schema import (
    MODEL_CHARS,
    PROVIDER_CHARS,
    Invalid,
    check_params,
    check_settings,
    check_text,
    kind,
    shown,
)

EXPORT_FORMAT = "equing-chat"
EXPORT_VERSION = 1
#: Bounds on the rows one import may add, beside its size in bytes (MAX_IMPORT_BYTES): each
#: row costs an insert, and a tiny row is a few bytes of JSON.
IMPORT_MAX_CONVERSATIONS = 10_000
IMPORT_MAX_MESSAGES = 100_000
#: Longest texts, as the rest of the app stores them.
TITLE_CHARS = 200
CONTENT_CHARS = 200_000
ERROR_CHARS = 10_000
DEFAULT_TITLE = "Imported chat"


class Unreadable(Invalid):
    """The file is not JSON text this app reads (400): not UTF-8, not JSON, NaN or Infinity,
    nested deeper than Python can parse."""

    status = 400


class _Constant(ValueError):
    """NaN, Infinity or -Infinity: accepted by Python's parser, but not JSON."""


def _refuse_constant(name: str) -> Any:
    raise _Constant(name)


def parse(raw: bytes) -> Any:
    """The JSON value in ``raw``, strictly: UTF-8, standard JSON only."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the file is not UTF-8 text (byte {exc.start + 1})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except _Constant as exc:
        raise Unreadable(f"the file holds {exc}, which is not a number JSON allows "
                         "(nothing in an export is)") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(f"the file is not JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    except RecursionError:
        raise Unreadable("the file is nested too deeply to be an export") from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise Unreadable("the file holds a number with thousands of digits, which no export "
                         "has") from None


def _where(exc: Invalid, prefix: str) -> Invalid:
    """``exc`` with ``prefix`` (where it happened) before its words, same class."""
    return type(exc)(f"{prefix}: {exc}")


def _optional_text(item: dict, key: str, limit: int) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    return check_text(value, f"“{key}”", limit)


def _time(item: dict, key: str) -> datetime | None:
    """A timestamp as stored (naive UTC), from ISO 8601 text; None if absent."""
    value = item.get(key)
    if value is None or value == "":
        return None
    check_text(value, f"“{key}”", 64)
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise Invalid(f"“{key}” is not a date and time like 2026-01-31T12:00:00 "
                      f"({shown(value)})") from None
    return moment


def _message(item: Any, now: datetime) -> dict[str, Any]:
    """One message's row values, checked."""
    if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
        raise Invalid("each message needs a role of “user” or “assistant”")
    status = item.get("status")
    if status is not None and not isinstance(status, str):
        raise Invalid(f"“status” must be text, not {kind(status)}")
    content = _optional_text(item, "content", CONTENT_CHARS) or ""
    try:
        params = check_params(item.get("params"))
    except Invalid as exc:
        raise _where(exc, "“params”") from None
    return {
        "role": item["role"], "content": content,
        # An answer exported while it was being written ends here as stopped.
        "status": status if status in FINAL_STATUSES else STOPPED,
        "provider": _optional_text(item, "provider", PROVIDER_CHARS) or None,
        "model": _optional_text(item, "model", MODEL_CHARS) or None,
        "params": params,
        "error": _optional_text(item, "error", ERROR_CHARS) or None,
        "created_at": _time(item, "created_at") or now,
        "finished_at": _time(item, "finished_at"),
        "updated_at": now,
    }


def _conversation(item: Any, registry, now: datetime) -> dict[str, Any]:
    """One conversation's row values with its messages' under ``"messages"``, checked."""
    if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
        raise Invalid("each conversation needs a “messages” list")
    pinned = item.get("pinned", False)
    if pinned is None:
        pinned = False
    if not isinstance(pinned, bool):
        raise Invalid(f"“pinned” must be true or false, not {kind(pinned)}")
    try:
        settings = check_settings(item.get("settings"), registry)
    except Invalid as exc:
        raise _where(exc, "“settings”") from None
    title = _optional_text(item, "title", TITLE_CHARS)
    messages = []
    for number, message in enumerate(item["messages"], 1):
        try:
            messages.append(_message(message, now))
        except Invalid as exc:
            raise _where(exc, f"message {number}") from None
    return {
        "title": title if title and title.strip() else DEFAULT_TITLE,
        "pinned": pinned, "settings": settings,
        "created_at": _time(item, "created_at") or now,
        "updated_at": _time(item, "updated_at") or now,
        "messages": messages,
    }


def check_export(data: Any, registry) -> list[dict[str, Any]]:
    """Every conversation of an export as row values, or ``Invalid`` for the first problem."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise Invalid("this is not an Equing Chat export (no \"format\": \"equing-chat\")")
    version = data.get("version")
    if version != EXPORT_VERSION or isinstance(version, bool):
        raise Invalid(f"unknown export version {json.dumps(version)[:40]} "
                      f"(this site reads version {EXPORT_VERSION})")
    conversations = data.get("conversations")
    if not isinstance(conversations, list):
        raise Invalid("“conversations” must be a list")
    if len(conversations) > IMPORT_MAX_CONVERSATIONS:
        raise Invalid(f"at most {IMPORT_MAX_CONVERSATIONS:,} conversations at once "
                      f"(this file has {len(conversations):,})")
    now = utcnow()
    checked, messages = [], 0
    for number, item in enumerate(conversations, 1):
        try:
            checked.append(_conversation(item, registry, now))
        except Invalid as exc:
            title = item.get("title") if isinstance(item, dict) else None
            named = f" ({shown(title)})" if isinstance(title, str) and title.strip() else ""
            raise _where(exc, f"conversation {number}{named}") from None
        messages += len(checked[-1]["messages"])
        if messages > IMPORT_MAX_MESSAGES:
            raise Invalid(f"at most {IMPORT_MAX_MESSAGES:,} messages at once")
    return checked


def _render_answers(conversations: list[dict[str, Any]]) -> None:
    """Give every answer its stored HTML, as a finished answer has.

    Rendering is most of an import's time (about 4 ms per KB of markdown), so it happens
    before the transaction opens (on SQLite a write holds the one write lock), and it yields
    now and then: under gevent a worker's requests share one thread, and its streams (and the
    arbiter's heartbeat) would otherwise wait for the whole import."""
    for number, message in enumerate(m for c in conversations for m in c["messages"]):
        message["html"] = (str(render_markdown(message["content"]))
                           if message["role"] == "assistant" else None)
        if number % 20 == 19:
            time.sleep(0)  # gevent patches sleep: 0 lets the other greenlets run


def store(conversations: list[dict[str, Any]], user_id: int) -> int:
    """Insert checked conversations for ``user_id`` in one transaction; returns how many.

    Rows go in as bulk inserts (an export of thousands of conversations would otherwise cost
    an ORM round trip per row); a value the database still refuses rolls everything back."""
    if not conversations:
        return 0
    _render_answers(conversations)
    try:
        ids = db.session.scalars(
            insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
            [{"user_id": user_id, **{k: v for k, v in c.items() if k != "messages"}}
             for c in conversations]).all()
        rows = [{**m, "conversation_id": conversation_id}
                for conversation_id, c in zip(ids, conversations, strict=True)
                for m in c["messages"]]
        if rows:
            db.session.execute(insert(Message), rows)
        db.session.commit()
    except DataError as exc:
        db.session.rollback()
        raise Unreadable(f"the database refused a value ({str(exc.orig)[:200]})") from None
    return len(conversations)


__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "Invalid", "Unreadable",
           "check_export", "parse", "store"]
