"""The sidebar's list of conversations: one page at a time, and out of band after a turn, so
it follows without a reload. Conversations with an answer being written are marked; such an
item asks for itself again every few seconds until the answer is done, and a little longer
while its conversation may still get a generated title (``streaming.titles``). The item of
the open conversation, asked for alone, also brings the page's ``<title>`` and heading, so a
new title shows everywhere without a reload."""

from __future__ import annotations

from flask import current_app

from ..extensions import db
from ..models import Conversation, Message
from ..queries import conversations
from ..streaming.titles import may_get_title
from . import fragments


def running(rows: list[Conversation]) -> set[int]:
    """The ids of the conversations among ``rows`` whose item asks for itself again: with an
    answer being written, or with a generated title that may be coming (its first answer
    just ended). The latter are also marked ``title_coming`` (an attribute of the row, for
    this rendering only): their item asks again without showing an answer as running."""
    if not rows:
        return set()
    busy = set(db.session.scalars(conversations.running_among([c.id for c in rows])))
    recent = [c.id for c in may_get_title(rows, current_app.config) if c.id not in busy]
    if recent:
        coming = set(db.session.scalars(conversations.first_answered_among(recent)))
        for conversation in rows:
            conversation.title_coming = conversation.id in coming
        busy |= coming
    return busy


def item(conversation: Conversation, current: int) -> str:
    """``conversation``'s sidebar item as it stands, alone; when it is the open one
    (``current``), with the page's ``<title>`` and heading out of band."""
    busy = conversation.id in running([conversation])
    return fragments.sidebar_item(conversation, current, busy, alone=True)


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
