"""Queries of conversations."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, false, func, select, update
from sqlalchemy.orm import selectinload

from ..models import COMPLETE, RUNNING_STATUSES, Conversation, Message

_conversations = Conversation.__table__


def for_user(user_id: int) -> Select:
    """A person's conversations: pinned first, then most recently active."""
    return (select(Conversation).where(Conversation.user_id == user_id)
            .order_by(Conversation.pinned.desc(), Conversation.updated_at.desc(),
                      Conversation.id.desc()))


def page_for_user(user_id: int, page: int, size: int) -> Select:
    """Page ``page`` (from 1) of ``for_user``, ``size`` to a page, and one more row: the
    caller learns from it whether there is a next page."""
    return for_user(user_id).offset((page - 1) * size).limit(size + 1)


def running_among(conversation_ids: list[int]) -> Select:
    """The ids among ``conversation_ids`` with an answer being written."""
    return (select(Message.conversation_id).distinct()
            .where(Message.conversation_id.in_(conversation_ids),
                   Message.status.in_(RUNNING_STATUSES)))


def first_answered_among(conversation_ids: list[int]) -> Select:
    """The ids among ``conversation_ids`` with exactly one complete answer and not renamed:
    those a generated title may still be coming for. "Exactly one" is "a first and no
    second", each found by the index without counting a long conversation's answers."""
    def nth_complete(n: int):
        return (select(Message.id)
                .where(Message.conversation_id == Conversation.id, Message.role == "assistant",
                       Message.status == COMPLETE)
                .order_by(Message.id).limit(1).offset(n).scalar_subquery())
    return select(Conversation.id).where(Conversation.id.in_(conversation_ids),
                                         Conversation.title_renamed == false(),
                                         nth_complete(0).is_not(None),
                                         nth_complete(1).is_(None))


def title_state(conversation_id: int) -> Select:
    """Whether a conversation was renamed, and how many complete answers it has (one: the
    answer that just ended is its first)."""
    answers = (select(func.count()).where(Message.conversation_id == conversation_id,
                                          Message.role == "assistant",
                                          Message.status == COMPLETE).scalar_subquery())
    return select(Conversation.title_renamed, answers).where(Conversation.id == conversation_id)


def owned(conversation_id: int, user_id: int) -> Select:
    """One conversation if, and only if, ``user_id`` owns it."""
    return select(Conversation).where(Conversation.id == conversation_id,
                                      Conversation.user_id == user_id)


def with_messages_for_user(user_id: int) -> Select:
    """``for_user`` with every conversation's messages, loaded in one more query (a full
    export of thousands of conversations otherwise costs a query per conversation)."""
    return for_user(user_id).options(selectinload(Conversation.messages))


#: Marks a conversation active (``now``): it moves to the top of its owner's sidebar. Run at
#: every turn and at the end of every answer, so built once (see the package's docstring).
TOUCH = (update(_conversations).where(_conversations.c.id == bindparam("conversation_id"))
         .values(updated_at=bindparam("now")))


#: Gives a conversation a generated title, unless the person renamed it meanwhile (the
#: condition is in the UPDATE, so a rename that lands first always wins).
SET_GENERATED_TITLE = (update(_conversations)
                       .where(_conversations.c.id == bindparam("conversation_id"),
                              _conversations.c.title_renamed == false())
                       .values(title=bindparam("title")))
