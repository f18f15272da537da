"""Queries of messages (a person's and the assistant's answers)."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, insert, literal, select, update

from ..models import PENDING, RUNNING_STATUSES, STREAMING, Conversation, Message


def owned(message_id: int, user_id: int) -> Select:
    """One message if, and only if, ``user_id`` owns its conversation."""
    return (select(Message).join(Conversation)
            .where(Message.id == message_id, Conversation.user_id == user_id))


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


# The statements of an answer's life, run for every answer (several for every turn, one per
# second per running answer for the saver): built once (see the package's docstring).
_messages = Message.__table__

def _ancestors(name: str, most=None):
    """A recursive CTE of the messages above ``message_id`` on its branch (its parent, the
    parent's parent…), each with its ``depth`` (1 for the parent); at most ``most`` of them
    when given. Ids only grow down a branch, but a branch is not an id range: siblings sit
    between, so the path is walked through ``parent_id``."""
    start = (select(_messages.c.id, _messages.c.parent_id, _messages.c.role,
                    _messages.c.content, literal(1).label("depth"))
             .where(_messages.c.id == select(_messages.c.parent_id)
                    .where(_messages.c.id == bindparam("message_id")).scalar_subquery())
             .cte(name, recursive=True))
    step = (select(_messages.c.id, _messages.c.parent_id, _messages.c.role,
                   _messages.c.content, start.c.depth + 1)
            .where(_messages.c.id == start.c.parent_id))
    if most is not None:
        step = step.where(start.c.depth < most)
    return start.union_all(step)


_up_to_most = _ancestors("up_to_most", bindparam("most"))
_up_all = _ancestors("up_all")

#: The latest ``most`` messages above ``message_id`` on its branch, nearest first.
HISTORY = (select(_up_to_most.c.role, _up_to_most.c.content)
           .order_by(_up_to_most.c.depth).limit(bindparam("most")))

#: How many messages above ``message_id`` could be sent upstream (a person's or an answer,
#: not empty): what ``HISTORY`` would give without its bounds.
COUNT_HISTORY = (select(func.count()).select_from(_up_all)
                 .where(_up_all.c.role.in_(("user", "assistant")), _up_all.c.content != ""))

#: Makes ``chosen`` the one version shown among the messages following ``parent`` in
#: conversation ``cid`` (bind names unlike the columns': an UPDATE keeps those for its SET).
CHOOSE = (update(_messages)
          .where(_messages.c.conversation_id == bindparam("cid"),
                 _messages.c.parent_id.is_not_distinct_from(bindparam("parent")))
          .values(selected=_messages.c.id == bindparam("chosen")))

#: Whether any message follows ``message_id``.
HAS_CHILDREN = select(select(_messages.c.id)
                      .where(_messages.c.parent_id == bindparam("message_id")).exists())

#: Moves a pending answer to streaming and returns what its job needs; no row if it was not
#: pending (another request claimed it, or it ended).
CLAIM = (update(_messages)
         .where(_messages.c.id == bindparam("message_id"), _messages.c.status == PENDING)
         .values(status=STREAMING, started_at=bindparam("now"), updated_at=bindparam("now"))
         .returning(_messages.c.conversation_id, _messages.c.provider, _messages.c.model,
                    _messages.c.params))

#: The saver's write of an answer's text so far: only rows still streaming (an answer that
#: ended meanwhile keeps its final text).
SAVE_PARTIAL = (update(_messages)
                .where(_messages.c.id == bindparam("mid"), _messages.c.status == STREAMING)
                .values(content=bindparam("content"), token_count=bindparam("token_count"),
                        first_token_at=func.coalesce(bindparam("first_token_at"),
                                                     _messages.c.first_token_at),
                        updated_at=bindparam("updated_at")))

#: An answer's last write: its text, HTML, final status and how it ended.
FINISH = (update(_messages).where(_messages.c.id == bindparam("message_id"))
          .values(content=bindparam("content"), html=bindparam("html"),
                  status=bindparam("status"), error=bindparam("error"),
                  token_count=bindparam("tokens"), first_token_at=bindparam("first_token_at"),
                  finish_reason=bindparam("finish_reason"),
                  history_skipped=bindparam("skipped"),
                  finished_at=bindparam("now"), updated_at=bindparam("now")))

#: Ends one overdue answer, only if it is still in the state (and as old as) its reader saw:
#: a stream that claimed it or saved it meanwhile keeps it.
END_OVERDUE = (update(_messages)
               .where(_messages.c.id == bindparam("message_id"),
                      _messages.c.status == bindparam("was"),
                      _messages.c.updated_at <= bindparam("deadline"))
               .values(status=bindparam("status"), error=bindparam("error"),
                       html=bindparam("html"), finished_at=bindparam("now"),
                       updated_at=bindparam("now")))


#: What the generating process learns of its running answers ``ids`` from other processes,
#: every ``STREAM_FOLLOW_SECONDS``: whether Stop was asked for, and until when a page served
#: elsewhere follows it.
FLAGS = (select(_messages.c.id, _messages.c.stop_requested, _messages.c.followed_until)
         .where(_messages.c.id.in_(bindparam("ids", expanding=True))))

#: The saved state of answers ``ids`` followed by this process (for pages it serves).
FOLLOWED = (select(_messages.c.id, _messages.c.content, _messages.c.status,
                   _messages.c.updated_at)
            .where(_messages.c.id.in_(bindparam("ids", expanding=True))))

#: Marks answers ``ids`` followed from this process until ``until`` (only running ones). A
#: row another transaction holds (its generator saving it) is skipped, not waited for: the mark
#: is renewed well before it runs out, and waiting on rows locked in another order deadlocked
#: on PostgreSQL (SQLite has one writer at a time and ignores the clause).
FOLLOW = (update(_messages)
          .where(_messages.c.id.in_(
              select(_messages.c.id)
              .where(_messages.c.id.in_(bindparam("ids", expanding=True)),
                     _messages.c.status.in_(RUNNING_STATUSES))
              .with_for_update(skip_locked=True).scalar_subquery()))
          .values(followed_until=bindparam("until")))
