"""API turns kept as conversations (``API_KEEP_CONVERSATIONS``), marked as from the API.

A client sends the whole history with every call. A conversation remembers a digest of its
messages so far; a call whose history (all but its last message) has the digest of one of the
person's API conversations continues that conversation, so a client's chat is one
conversation here too, not one per call.

The turn is kept when the call ends, in the transaction that records how it ended: nothing is
written between the limits' check and the upstream request, so the first token is not kept
waiting. (The client holds the messages it sent; a crash mid-call loses only this copy.)
Core statements, not the ORM: this runs once per call.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .. import tree
from ..chat.turns import title_from
from ..models import COMPLETE
from ..queries import api as queries
from ..queries import messages as message_queries
from .body import ChatRequest


def digest_of(messages: list[dict[str, str]]) -> str:
    """A digest of a list of messages (roles and texts, in order)."""
    pairs = [[m["role"], m["content"]] for m in messages]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()


def _message(session: Session, conversation_id: int, parent_id: int | None, now: datetime,
             **values: Any) -> int:
    return session.execute(queries.KEEP_MESSAGE, {
        "conversation_id": conversation_id, "parent_id": parent_id, "selected": True,
        "created_at": now, "updated_at": now, **values}).scalar_one()


def _continued(session: Session, user_id: int, chat: ChatRequest) -> tuple[int, int] | None:
    """The conversation (and its last message) whose messages so far are the call's history."""
    if len(chat.turns) < 2:
        return None
    found = session.execute(queries.API_CONVERSATION, {
        "user_id": user_id, "digest": digest_of(chat.messages[:-1])}).scalar()
    if found is None:
        return None
    return found, tree.load(found).leaf()


def keep_turn(session: Session, user_id: int, chat: ChatRequest, started_at: datetime,
              answer: dict[str, Any]) -> int:
    """Keep the call's messages and its ``answer`` (the message's columns): after the API
    conversation its history continues, or in a new one. Returns the conversation's id."""
    now = answer["finished_at"]
    continued = _continued(session, user_id, chat)
    if continued is not None:
        conversation_id, parent_id = continued
        new = chat.turns[-1:]
    else:
        turns = chat.turns
        first = next((m["content"] for m in turns if m["role"] == "user"), turns[0]["content"])
        conversation_id = session.execute(queries.NEW_CONVERSATION, {
            "user_id": user_id, "title": title_from(first), "origin": "api",
            "created_at": started_at, "updated_at": now}).scalar_one()
        parent_id, new = None, turns
    for i, message in enumerate(new):
        parent_id = _message(session, conversation_id, parent_id, started_at,
                             role=message["role"], content=message["content"], status=COMPLETE)
        if i == 0 and continued is not None:
            # Two calls may continue the same history at once: the newest is shown.
            session.execute(message_queries.CHOOSE, {"cid": conversation_id,
                                                     "parent": continued[1],
                                                     "chosen": parent_id})
    _message(session, conversation_id, parent_id, now, role="assistant", **answer)
    text = answer.get("content", "")
    digest = digest_of(chat.messages + [{"role": "assistant", "content": text}]) \
        if answer.get("status") == COMPLETE else None
    session.execute(queries.CONVERSATION_KEPT, {"conversation_id": conversation_id,
                                                "digest": digest, "now": now})
    return conversation_id
