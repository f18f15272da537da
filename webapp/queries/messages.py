"""Queries of messages (a person's and the assistant's answers)."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, insert, select

from ..models import PENDING, RUNNING_STATUSES, STREAMING, Conversation, Message


def owned(message_id: int, user_id: int) -> Select:
    """One message if, and only if, ``user_id`` owns its conversation."""
    return (select(Message).join(Conversation)
            .where(Message.id == message_id, Conversation.user_id == user_id))


def last_id(conversation_id: int) -> Select:
    """The id of a conversation's latest message."""
    return (select(Message.id).where(Message.conversation_id == conversation_id)
            .order_by(Message.id.desc()).limit(1))


# Run at every turn, so built once (see the package's docstring). A person's answers being
# written (named positively, so the status index finds the few running rows among all
# messages), and those past their deadline (pending: never started; streaming: its writer
# stopped saving; the deadlines are ``streaming.deadlines``).
_running = (Conversation.user_id == bindparam("user_id"), Message.status.in_(RUNNING_STATUSES))
_overdue = (((Message.status == STREAMING) & (Message.updated_at <= bindparam("stale")))
            | ((Message.status == PENDING) & (Message.updated_at <= bindparam("pending"))))

#: How many answers ``user_id`` has running: in all, in ``conversation_id``, past their deadline.
RUNNING_COUNTS = (select(func.count(),
                         func.count().filter(Message.conversation_id
                                             == bindparam("conversation_id")),
                         func.count().filter(_overdue))
                  .select_from(Message).join(Conversation).where(*_running))
#: The running answers of ``user_id`` past their deadline.
OVERDUE_RUNNING = select(Message).join(Conversation).where(*_running, _overdue)
#: Messages inserted (several rows in one statement) and returned in the order given.
INSERT = insert(Message).returning(Message, sort_by_parameter_order=True)
