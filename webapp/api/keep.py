"""API turns kept as conversations (``API_KEEP_CONVERSATIONS``), marked as from the API.

A client sends the whole history with every call. A conversation remembers a digest of its
messages so far; a call whose history (all but its last message) has the digest of one of the
person's API conversations continues that conversation, so a client's chat is one
conversation here too, not one per call.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from .. import tree
from ..chat.turns import title_from
from ..extensions import db
from ..models import COMPLETE, Conversation, Message
from ..queries import api as queries
from ..queries import conversations
from ..queries import messages as message_queries
from ..rendering import render_markdown
from .body import ChatRequest


def digest_of(messages: list[dict[str, str]]) -> str:
    """A digest of a list of messages (roles and texts, in order)."""
    pairs = [[m["role"], m["content"]] for m in messages]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode("utf-8")).hexdigest()


def _insert(conversation_id: int, parent_id: int | None, now: datetime, **values: Any) -> int:
    return db.session.scalars(message_queries.INSERT, [{
        "conversation_id": conversation_id, "parent_id": parent_id, "selected": True,
        "created_at": now, "updated_at": now, **values}]).one().id


def store_request(user_id: int, chat: ChatRequest, now: datetime) -> tuple[int, int]:
    """Keep the call's messages (in the caller's transaction): the last one added to the API
    conversation its history continues, or all of them in a new one. Returns the
    conversation's id and the id of the message the answer will follow."""
    turns = chat.turns
    earlier = digest_of(chat.messages[:-1])
    found = db.session.scalar(queries.api_conversation(user_id, earlier)) if len(turns) > 1 \
        else None
    if found is not None:
        new, parent_id = turns[-1:], tree.load(found.id).leaf()
        db.session.execute(conversations.TOUCH, {"conversation_id": found.id, "now": now})
        conversation_id = found.id
    else:
        first = next((m["content"] for m in turns if m["role"] == "user"), turns[0]["content"])
        conversation = Conversation(user_id=user_id, title=title_from(first), origin="api",
                                    created_at=now, updated_at=now)
        db.session.add(conversation)
        db.session.flush()
        new, parent_id, conversation_id = turns, None, conversation.id
    for message in new:
        parent_id = _insert(conversation_id, parent_id, now, role=message["role"],
                            content=message["content"], status=COMPLETE)
    return conversation_id, parent_id


def store_answer(session: Session, conversation_id: int, parent_id: int, chat: ChatRequest,
                 values: dict[str, Any]) -> None:
    """Keep the answer (``values``: its columns) after ``parent_id``; a complete answer makes
    the conversation the one its next call continues."""
    text = values.get("content", "")
    session.add(Message(conversation_id=conversation_id, parent_id=parent_id, role="assistant",
                        html=str(render_markdown(text)), **values))
    digest = digest_of(chat.messages + [{"role": "assistant", "content": text}]) \
        if values.get("status") == COMPLETE else None
    session.execute(update(Conversation).where(Conversation.id == conversation_id)
                    .values(api_digest=digest, updated_at=values["finished_at"]))
