"""What one answer's generation needs, copied out of the database; and claiming it.

A chat turn's answer is generated exactly once. ``claim`` moves the message from pending to
streaming in one conditional UPDATE, so of two requests for the same stream (two tabs, a
reload, two app servers) only one generates; the other ``follow``s the saved text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from ..extensions import db
from ..models import utcnow
from ..queries import messages as queries
from .sessions import short_session


@dataclass
class Job:
    """Everything needed to generate one answer, copied out of the database."""

    message_id: int
    conversation_id: int
    provider: str
    model: str
    params: dict[str, Any]
    messages: list[dict[str, str]]
    #: Earlier messages left out of ``messages`` by the history bounds.
    skipped: int = 0
    #: The answer's text so far when it is continued (the provider is asked to go on from
    #: it: ``messages`` then ends with it as an assistant message), and its token count.
    prefix: str = ""
    prefix_tokens: int = 0


def history_for(message_id: int, conversation_id: int, system: str,
                config: dict[str, Any]) -> tuple[list[dict[str, str]], int]:
    """The messages sent upstream to answer message ``message_id``: the system prompt, then as
    many of the latest turns before it as fit the configured bounds (oldest dropped first; the
    system prompt and the newest user message are always kept), and how many earlier messages
    were left out."""
    most = int(config["MAX_HISTORY_MESSAGES"])
    params = {"conversation_id": conversation_id, "message_id": message_id}
    rows = db.session.execute(queries.HISTORY, {**params, "most": most}).all()
    budget = int(config["MAX_HISTORY_CHARS"])
    turns: list[dict[str, str]] = []
    cut = len(rows) == most  # there may be older messages than those read
    for role, content in rows:
        if role not in ("user", "assistant") or not content:
            continue
        if turns and len(content) > budget:
            cut = True
            break
        budget -= len(content)
        turns.append({"role": role, "content": content})
    turns.reverse()
    # Counted only when something may have been left out: the common short conversation
    # costs no second query.
    skipped = (db.session.execute(queries.COUNT_HISTORY, params).scalar_one() - len(turns)
               if cut else 0)
    return ([{"role": "system", "content": system}] if system else []) + turns, skipped


#: A conversation cut to fit is cut by multiples of this many messages (see ``align_history``).
HISTORY_STEP = 8


def align_history(messages: list[dict[str, str]], skipped: int,
                  step: int = HISTORY_STEP) -> tuple[list[dict[str, str]], int]:
    """``messages`` (the history sent, ``skipped`` earlier ones already left out) with a few
    more of the oldest left out, so that the number left out is a multiple of ``step``, unless
    fewer than ``step`` would be left; the system prompt and the newest message stay.
    Returns them and the new number left out.

    A model server reuses what it read of the previous prompt as far as the new one starts the
    same (llama.cpp does, so do hosted APIs' prompt caches). Cutting a long conversation to its
    latest turns moves its start at every turn, and the whole of it is read again each time;
    cut by steps, its start stays the same for several turns and only the new turns are read.
    """
    if not skipped or skipped % step == 0:
        return messages, skipped
    start = 1 if messages and messages[0].get("role") == "system" else 0
    extra = -skipped % step
    if len(messages) - start - extra < step:
        return messages, skipped  # a short history is worth more whole than cached
    return messages[:start] + messages[start + extra:], skipped + extra


def job_for(message_id: int, conversation_id: int, provider: str | None, model: str | None,
            stored: dict[str, Any] | None, config: dict[str, Any], *, prefix: str = "",
            prefix_tokens: int = 0) -> Job:
    """The job of an answer that is already claimed, from its row's values (in the caller's
    session, which reads the history); with ``prefix``, the job goes on from that text."""
    params = dict(stored or {})
    system = params.pop("system_prompt", "")
    messages, skipped = history_for(message_id, conversation_id, system, config)
    if prefix:
        messages.append({"role": "assistant", "content": prefix})
    return Job(message_id, conversation_id, provider or "", model or "", params, messages,
               skipped, prefix, prefix_tokens)


def claim(app: Flask, message_id: int) -> Job | None:
    """Move a pending message to streaming and return its job; None if it was not pending."""
    with short_session(app) as session:
        now = utcnow()
        # One statement claims the row and returns what the job needs (RETURNING works on
        # SQLite 3.35+ and PostgreSQL): no second round trip before the upstream request.
        row = session.execute(queries.CLAIM, {"message_id": message_id, "now": now}).first()
        if row is None:
            return None
        return job_for(message_id, *row, app.config)
