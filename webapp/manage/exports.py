"""Export and import: a person's conversations as JSON (which imports back) or Markdown, and
an export file read, checked against the schema and stored at once.

An import stores nothing unless everything passes; the first problem is reported in words
(``ImportRejected``), saying which conversation, message and field, and why. The rules for
settings and parameters are the settings forms' (``webapp.settings.schema``).

A conversation is a tree (``webapp.tree``). The JSON export (version 2) keeps all of it: each
message has a local ``id`` (its number in the conversation's list, in the order the messages
were made), its ``parent``'s local id (null for a first message) and whether it is the
``selected`` version, so an import rebuilds the same tree with the same versions shown. A
version 1 file (before trees) is a flat list and imports as one branch. The Markdown export is
the conversation as its page shows it: the current path only.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app
from sqlalchemy import insert, text
from sqlalchemy.exc import DataError

from .. import tree
from ..extensions import db
from ..models import COMPLETE, FINAL_STATUSES, STOPPED, Conversation, Message, utcnow
from ..queries import conversations as conversation_queries
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
#: Version 2: conversations as trees (each message's ``id``, ``parent``, ``selected``).
EXPORT_VERSION = 2
#: The versions an import reads: 1 is a flat list of messages, one branch.
READ_VERSIONS = (1, 2)
#: Bounds on the rows one import may add, beside its size in bytes (MAX_IMPORT_BYTES): each
#: row costs an insert, and a tiny row is a few bytes of JSON.
IMPORT_MAX_CONVERSATIONS = 10_000
IMPORT_MAX_MESSAGES = 100_000
#: Longest texts, as the rest of the app stores them.
TITLE_CHARS = 200
CONTENT_CHARS = 200_000
ERROR_CHARS = 10_000
DEFAULT_TITLE = "Imported chat"


# -- export ------------------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def export_conversation(conversation: Conversation) -> dict[str, Any]:
    """One conversation as plain data (the JSON export's element): every message of every
    branch, in the order they were made, with local ids (1, 2, …) for ``id`` and ``parent``,
    so exporting an import again gives the same file."""
    local = {m.id: number for number, m in enumerate(conversation.messages, 1)}
    return {
        "title": conversation.title,
        "pinned": conversation.pinned,
        "settings": conversation.settings,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "messages": [{
            "id": local[m.id], "parent": local.get(m.parent_id), "selected": m.selected,
            "role": m.role, "content": m.content, "status": m.status, "provider": m.provider,
            "model": m.model, "params": m.params, "error": m.error,
            "created_at": _iso(m.created_at), "finished_at": _iso(m.finished_at),
        } for m in conversation.messages],
    }


def to_json(conversations: list[Conversation]) -> str:
    """Conversations as an export file (JSON that imports back)."""
    envelope = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                "exported_at": _iso(utcnow()),
                "conversations": [export_conversation(c) for c in conversations]}
    return json.dumps(envelope, ensure_ascii=False, indent=1)


def everything_of(user_id: int) -> list[Conversation]:
    """All of a person's conversations with their messages, for a full export."""
    return db.session.scalars(conversation_queries.with_messages_for_user(user_id)).all()


def to_markdown(conversation: Conversation) -> str:
    """A conversation as a Markdown document: the versions shown (its current path)."""
    lines = [f"# {conversation.title}", ""]
    for m in tree.path_messages(conversation.id)[0]:
        if m.role == "user":
            lines += ["## You", "", m.content, ""]
        else:
            lines += [f"## Assistant ({m.provider or '?'} · {m.model or '?'})", "",
                      m.content or "", ""]
            if m.status != COMPLETE:
                lines += [f"*{m.error or m.status}*", ""]
    return "\n".join(lines)


def slug(title: str) -> str:
    """A file name's stem made from a title."""
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:50] or "conversation"


def download(body: str, mimetype: str, filename: str) -> Response:
    """``body`` as a file to save, named ``filename``."""
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# -- import ------------------------------------------------------------------------------

def import_limit() -> int:
    """Largest import file in bytes (MAX_IMPORT_BYTES): bigger than other requests' limit,
    so that everything a person can export imports back."""
    return int(current_app.config["MAX_IMPORT_BYTES"])


def megabytes(size: int) -> str:
    """``size`` bytes in words, for messages."""
    return f"{size / 1_000_000:,.1f} MB"


class ImportRejected(Exception):
    """An import refused, with nothing stored: ``str()`` says why in words (and where: which
    conversation, message and field); ``status`` is the HTTP status it answers with: 400 for a
    file that is not JSON this app reads or text no database can hold, else 422."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


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


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id(value: int) -> str:
    """A local id for a message, cut short (JSON allows thousands of digits)."""
    digits = str(value)
    return digits if len(digits) <= 20 else digits[:20] + "…"


def _link(item: dict, positions: dict[int, int]) -> tuple[int | None, bool]:
    """A version 2 message's place in its tree: the position in the list of the message it
    follows (None for a first message) and whether it is marked shown. ``positions`` maps the
    local ids of the messages before it to their positions; its own is added.

    A parent must come before its child in the list, which is how an export lists them; that
    also rules out a message following itself, or a cycle of messages."""
    local_id = item.get("id")
    if not _whole_number(local_id):
        raise Invalid(f"“id” must be a whole number, not {kind(local_id)}")
    if local_id in positions:
        raise Invalid(f"“id” {_id(local_id)} is already the id of message "
                      f"{positions[local_id] + 1}")
    parent = item.get("parent")
    if parent is not None and not _whole_number(parent):
        raise Invalid(f"“parent” must be the id of an earlier message, or null for a first "
                      f"message, not {kind(parent)}")
    if parent is not None and parent not in positions:
        itself = " (its own id)" if parent == local_id else ""
        raise Invalid(f"“parent” {_id(parent)}{itself} is not the id of a message before it in "
                      "this conversation (a message follows one listed before it)")
    selected = item.get("selected")
    if selected is not None and not isinstance(selected, bool):
        raise Invalid(f"“selected” must be true or false, not {kind(selected)}")
    positions[local_id] = len(positions)
    return (None if parent is None else positions[parent]), selected is not False


def _shown_versions(parents: list[int | None], marked: list[bool]) -> list[bool]:
    """Each message's ``selected`` flag as the app keeps them: exactly one version of each
    set of siblings, the one the tree shows for these marks (the newest marked, else the
    newest), so the import shows the same path and each branch's chosen versions."""
    shape = tree.Tree((n, parent, mark) for n, (parent, mark)
                      in enumerate(zip(parents, marked, strict=True)))
    return [shape.chosen_child(parent) == n for n, parent in enumerate(parents)]


def _messages(items: list, version: int, now: datetime) -> tuple[list[dict], list[int | None]]:
    """A conversation's messages' row values, checked, and each one's parent as a position
    in the list. Version 1 is a flat list: one branch, each message following the one before."""
    messages: list[dict[str, Any]] = []
    parents: list[int | None] = []
    marked: list[bool] = []
    positions: dict[int, int] = {}
    for number, item in enumerate(items, 1):
        try:
            messages.append(_message(item, now))
            parent, mark = (_link(item, positions) if version > 1
                            else (number - 2 if number > 1 else None, True))
        except Invalid as exc:
            raise _where(exc, f"message {number}") from None
        parents.append(parent)
        marked.append(mark)
    for message, selected in zip(messages, _shown_versions(parents, marked), strict=True):
        message["selected"] = selected
    return messages, parents


def _conversation(item: Any, registry, now: datetime, version: int) -> dict[str, Any]:
    """One conversation's row values, checked, with its messages' under ``"messages"`` and
    each message's parent (a position in that list, or None) under ``"parents"``."""
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
    messages, parents = _messages(item["messages"], version, now)
    return {
        "title": title if title and title.strip() else DEFAULT_TITLE,
        "pinned": pinned, "settings": settings,
        "created_at": _time(item, "created_at") or now,
        "updated_at": _time(item, "updated_at") or now,
        "messages": messages, "parents": parents,
    }


def check_export(data: Any, registry) -> list[dict[str, Any]]:
    """Every conversation of an export as row values, or ``Invalid`` for the first problem."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise Invalid("this is not an Equing Chat export (no \"format\": \"equing-chat\")")
    version = data.get("version")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise Invalid(f"unknown export version {json.dumps(version)[:40]} "
                      f"(this site reads versions {READ_VERSIONS[0]} to {READ_VERSIONS[-1]})")
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
            checked.append(_conversation(item, registry, now, int(version)))
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


def read_export(raw: bytes, registry) -> list[dict[str, Any]]:
    """Every conversation of the export file ``raw`` as checked row values, or
    ``ImportRejected`` for the first problem."""
    try:
        return check_export(parse(raw), registry)
    except Invalid as exc:
        raise ImportRejected(str(exc), exc.status) from None


def _reserve_message_ids(count: int) -> list[int]:
    """``count`` new message ids, ascending, that no other writer will take.

    PostgreSQL hands them out from the ids' own sequence. SQLite has one writer at a time, and
    this transaction has held the write lock since it inserted the conversations, so the ids
    above the highest one ever given (``sqlite_sequence``, as AUTOINCREMENT never reuses one)
    are free until it commits; inserting them moves ``sqlite_sequence`` past them."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sorted(db.session.scalars(text(
            "SELECT nextval(pg_get_serial_sequence('messages', 'id')) "
            "FROM generate_series(1, :count)"), {"count": count}))
    top = db.session.scalar(text(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), "
        "coalesce((SELECT max(id) FROM messages), 0))"))
    return list(range(top + 1, top + 1 + count))


def _message_rows(conversations: list[dict[str, Any]], conversation_ids: list[int],
                  message_ids: list[int]) -> list[dict[str, Any]]:
    """Every message's row, with its id given (from ``message_ids``, in list order, so
    versions keep their order) and its parent's id found from its position."""
    rows, given = [], iter(message_ids)
    for conversation_id, conversation in zip(conversation_ids, conversations, strict=True):
        ids = [next(given) for _ in conversation["messages"]]
        rows += [{**message, "id": own, "conversation_id": conversation_id,
                  "parent_id": None if parent is None else ids[parent]}
                 for message, own, parent in zip(conversation["messages"], ids,
                                                 conversation["parents"], strict=True)]
    return rows


def store(conversations: list[dict[str, Any]], user_id: int) -> int:
    """Insert checked conversations for ``user_id`` in one transaction; returns how many, or
    ``ImportRejected`` (nothing stored) when the database refuses a value.

    Rows go in as bulk inserts (an export of thousands of conversations would otherwise cost
    an ORM round trip per row); a value the database still refuses rolls everything back. A
    message's row needs its parent's id, so the ids are taken first (``_reserve_message_ids``)
    and every message of every conversation goes in with its id and its parent's in one
    statement: three statements for any import, whatever the trees' shapes (inserting level by
    level would cost one per message of the longest conversation). ``render_nulls``: else the
    ORM leaves each None out of its row and starts a new batch whenever the columns left out
    change (a first message has no parent, a question no provider), which made nearly every
    message a statement of its own."""
    if not conversations:
        return 0
    _render_answers(conversations)
    try:
        ids = db.session.scalars(
            insert(Conversation).execution_options(render_nulls=True)
            .returning(Conversation.id, sort_by_parameter_order=True),
            [{"user_id": user_id,
              **{k: v for k, v in c.items() if k not in ("messages", "parents")}}
             for c in conversations]).all()
        count = sum(len(c["messages"]) for c in conversations)
        if count:
            db.session.execute(insert(Message).execution_options(render_nulls=True),
                               _message_rows(conversations, ids, _reserve_message_ids(count)))
        db.session.commit()
    except DataError as exc:
        db.session.rollback()
        raise ImportRejected(f"the database refused a value ({str(exc.orig)[:200]})",
                             Unreadable.status) from None
    return len(conversations)
