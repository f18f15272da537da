"""The sidebar's conversation list sent out of band, so it follows a turn without a reload."""

from __future__ import annotations

from flask import current_app, get_template_attribute

from ..extensions import db
from ..models import Message
from ..queries import conversations


def conversation_list_oob(user_id: int, current: int) -> str:
    """The first page of ``user_id``'s conversations as an element that replaces the sidebar
    list in place (``hx-swap-oob``), with ``current`` marked as the open one."""
    size = current_app.config["CONVERSATIONS_PER_PAGE"]
    rows = db.session.scalars(conversations.for_user(user_id).limit(size + 1)).all()
    render = get_template_attribute("chat/_macros.html", "conversation_list")
    return str(render(rows[:size], len(rows) > size, current, oob=True))


def conversation_list_after(message: Message | None) -> str:
    """The sidebar update sent with an answer's last event: its conversation moved and titled
    as the database now has it. Empty when the message is gone (its conversation deleted)."""
    if message is None:
        return ""
    conversation = message.conversation
    return conversation_list_oob(conversation.user_id, conversation.id)
