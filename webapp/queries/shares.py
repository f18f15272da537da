"""Queries of shared links."""

from __future__ import annotations

from sqlalchemy import Select, select

from ..models import Share


def for_user(user_id: int) -> Select:
    """A person's links, newest first."""
    return (select(Share).where(Share.user_id == user_id)
            .order_by(Share.updated_at.desc(), Share.id.desc()))


def owned(share_id: int, user_id: int) -> Select:
    """One link if, and only if, ``user_id`` made it."""
    return select(Share).where(Share.id == share_id, Share.user_id == user_id)


def by_token(token: str) -> Select:
    """The link whose secret is ``token``."""
    return select(Share).where(Share.token == token)


def of_conversation(conversation_id: int) -> Select:
    """The link of one conversation (there is at most one)."""
    return select(Share).where(Share.conversation_id == conversation_id)
