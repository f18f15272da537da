"""Queries of messages (a person's and the assistant's answers)."""

from __future__ import annotations

from sqlalchemy import Select, select

from ..models import Conversation, Message


def owned(message_id: int, user_id: int) -> Select:
    """One message if, and only if, ``user_id`` owns its conversation."""
    return (select(Message).join(Conversation)
            .where(Message.id == message_id, Conversation.user_id == user_id))
