"""The sidebar's list of conversations: one page at a time, and out of band after a turn, so
it follows without a reload. Conversations with an answer being written are marked; such an
item asks for itself again every few seconds until the answer is done."""

from __future__ import annotations

from flask import current_app

from ..extensions import db
from ..models import Conversation, Message
from ..queries import conversations
from . import fragments


def running(rows: list[Conversation]) -> set[int]:
    """The ids of the conversations among ``rows`` with an answer being written."""
    if not rows:
        return set()
    return set(db.session.scalars(conversations.running_among([c.id for c in rows])))


def sidebar_page(user_id: int, page: int) -> tuple[list[Conversation], bool, set[int]]:
    """Page ``page`` (from 1) of ``user_id``'s conversations, whether there are more, and
    which of them have an answer being written."""
    size = current_app.config["CONVERSATIONS_PER_PAGE"]
    rows = db.session.scalars(conversations.page_for_user(user_id, page, size)).all()
    return rows[:size], len(rows) > size, running(rows[:size])


def conversation_list_oob(user_id: int, current: int) -> str:
    """The first page of ``user_id``'s conversations as an element that replaces the sidebar
    list in place (``hx-swap-oob``), with ``current`` marked as the open one."""
    rows, more, busy = sidebar_page(user_id, 1)
    return fragments.conversation_list(rows, more, current, busy)


def conversation_list_after(message: Message | None) -> str:
    """The sidebar update sent with an answer's last event: its conversation moved and titled
    as the database now has it. Empty when the message is gone (its conversation deleted)."""
    if message is None:
        return ""
    conversation = message.conversation
    return conversation_list_oob(conversation.user_id, conversation.id)
