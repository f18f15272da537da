"""Shared links: their secret tokens, finding one by its token, making or updating a
conversation's link, and continuing a snapshot as a conversation of one's own."""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import abort

from ..extensions import db
from ..models import COMPLETE, Conversation, Message, Share, User, utcnow
from ..queries import shares
from ..settings.values import from_user

#: What ``new_token`` makes: URL-safe base64, at most the column's 64 characters.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_token() -> str:
    """32 random bytes, URL-safe: 256 bits, so links cannot be guessed."""
    return secrets.token_urlsafe(32)


def live_share(token: str) -> Share:
    """The share behind a link, or 404 (revoked, mistyped, or never existed)."""
    # Only a token's own alphabet reaches the database (PostgreSQL refuses a NUL in text).
    if not _TOKEN.fullmatch(token):
        abort(404)
    share = db.session.scalar(shares.by_token(token))
    if share is None:
        abort(404)
    return share


def publish(conversation: Conversation, snapshot: dict[str, Any],
            include_system_prompt: bool) -> bool:
    """Give the conversation's link ``snapshot``, making the link if it has none; whether it
    was made (else updated)."""
    share = db.session.scalar(shares.of_conversation(conversation.id))
    now = utcnow()
    created = share is None
    if share is None:
        share = Share(token=new_token(), conversation_id=conversation.id,
                      user_id=conversation.user_id, created_at=now, snapshot=snapshot)
        db.session.add(share)
    share.include_system_prompt = include_system_prompt
    share.snapshot = snapshot
    share.updated_at = now
    db.session.commit()
    return created


def revoke(share: Share) -> None:
    """Delete a link: from now on it answers 404."""
    db.session.delete(share)
    db.session.commit()


def copy_for(user: User, snapshot: dict[str, Any]) -> Conversation:
    """A new conversation of ``user`` holding a (checked) snapshot's messages, to carry on:
    one branch, each message following the one before it."""
    now = utcnow()
    conversation = Conversation(user_id=user.id, title=snapshot["title"][:200],
                                created_at=now, updated_at=now)
    if snapshot.get("system_prompt"):
        conversation.settings = {**from_user(user.settings),
                                 "system_prompt": snapshot["system_prompt"]}
    db.session.add(conversation)
    parent = None
    for item in snapshot["messages"]:
        parent = Message(conversation=conversation, parent=parent, selected=True,
                         role=item["role"], content=item["content"], html=item.get("html"),
                         status=item.get("status") or COMPLETE, provider=item.get("provider"),
                         model=item.get("model"), params=item.get("params"), created_at=now,
                         updated_at=now)
        db.session.add(parent)
    db.session.commit()
    return conversation
