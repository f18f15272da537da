"""Starting a chat turn: check the message, pick the provider, save both rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from .. import tree
from ..extensions import db, providers
from ..models import (
    COMPLETE,
    ERROR,
    STOPPED,
    STREAMING,
    Conversation,
    Message,
    User,
    UserSettings,
    utcnow,
)
from ..queries import api, conversations, messages, people
from ..settings.values import effective, sampling
from ..streaming import deadlines, mark_interrupted

TITLE_CHARS = 60


class TurnError(Exception):
    """A turn that cannot start; ``message`` says why, ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.message = message
        self.status = status


def title_from(content: str) -> str:
    """A conversation title from its first message: the first line, cut at a word."""
    line = " ".join(content.strip().split("\n", 1)[0].split())
    if len(line) <= TITLE_CHARS:
        return line or "New chat"
    cut = line[:TITLE_CHARS].rsplit(" ", 1)[0]
    return (cut if len(cut) > TITLE_CHARS // 2 else line[:TITLE_CHARS]) + "…"


def generation_choice(values: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """The provider, model and exact parameters a new answer will use, from settings values
    (a provider or model no longer offered falls back to the installation's default)."""
    registry = providers()
    name = values.get("provider") if values.get("provider") in registry else registry.default
    provider = registry.get(name)
    model = values.get("model")
    if not model or not provider.supports_model(model):
        model = provider.default_model()
    params = sampling(values)
    default_max = getattr(provider, "default_max_tokens", None)
    if "max_tokens" not in params and default_max:
        params["max_tokens"] = default_max  # recorded, so the row says what really applied
    if values.get("system_prompt"):
        params["system_prompt"] = values["system_prompt"]
    return name, model, params


def lock_person(user_id: int) -> None:
    """Hold a lock, until this transaction ends, that every other turn of ``user`` needs too.

    The limits below are counted, then a row is inserted: without the lock, 20 requests at
    once all count the same few running answers and all pass. PostgreSQL locks the person's row
    (``SELECT ... FOR UPDATE``; READ COMMITTED lets the counts that follow see what the previous
    holder committed). SQLite has one writer at a time: a no-op UPDATE of the row starts the
    write transaction before the counts, so they read the latest state and the next writer
    waits (``busy_timeout``) until this one commits.
    """
    params = {"user_id": user_id}
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(people.LOCK_ROW, params)
    else:
        db.session.execute(people.WRITE_ROW, params)


def check_running(user_id: int, conversation: Conversation | None = None) -> None:
    """Refuse a new answer when the person already has as many running as allowed, or when
    ``conversation`` already has one being written. The caller then inserts or updates the
    answer and commits; the person's lock (taken here) makes count and insert one step.

    Running answers past their deadline are ended first (see ``mark_interrupted``: pending for
    ``STREAM_PENDING_SECONDS`` without being started, or streaming but not saved for
    ``STREAM_STALE_SECONDS``); only those are loaded, the live ones are only counted.
    """
    lock_person(user_id)
    params = {"user_id": user_id, **deadlines(current_app.config),
              "conversation_id": conversation.id if conversation is not None else None}
    count, here, overdue = db.session.execute(messages.RUNNING_COUNTS, params).one()
    if overdue:  # rare: ended here, then counted again
        for message in db.session.scalars(messages.OVERDUE_RUNNING, params):
            mark_interrupted(message)
        count, here, _ = db.session.execute(messages.RUNNING_COUNTS, params).one()
    # Answers relayed to API clients count too (one limit of answers at once per person). A
    # call whose process died stays "running" in its record: it stops counting once it could
    # not still be going.
    since = utcnow() - timedelta(seconds=float(current_app.config["STREAM_MAX_SECONDS"]))
    count += db.session.execute(api.RUNNING_CALLS, {"user_id": user_id, "since": since}
                                ).scalar_one()
    limit = current_app.config["STREAMS_PER_USER"]
    if here or count >= limit:
        db.session.commit()  # keeps the answers ended above; releases the lock
    if here:
        raise TurnError("An answer is still being written: wait for it or stop it.", 409)
    if count >= limit:
        raise TurnError(f"You already have {count} answers being written (at most "
                        f"{limit} at once): wait for one to finish or stop it.", 429)


def _check_content(content: str) -> str:
    """The message as it will be saved, or TurnError saying what is wrong with it."""
    content = (content or "").strip()
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if not content:
        raise TurnError("Type a message first.")
    if len(content) > limit:
        raise TurnError(f"The message is too long: {len(content):,} characters "
                        f"(at most {limit:,}).")
    return content


def _reset(answer: Message, provider: str, model: str, params: dict[str, Any], now) -> None:
    """Make ``answer`` a fresh streaming answer with these generation settings."""
    answer.content, answer.html, answer.status, answer.error = "", None, STREAMING, None
    answer.provider, answer.model, answer.params = provider, model, params
    answer.stop_requested, answer.token_count, answer.finish_reason = False, 0, None
    answer.first_token_at = answer.finished_at = answer.followed_until = None
    answer.history_skipped = 0
    answer.created_at = answer.updated_at = answer.started_at = now


def _locked_final_answer(answer: Message, user: User, allowed: tuple[str, ...], what: str
                         ) -> None:
    """Take the person's lock and read ``answer`` again under it (two requests at once act
    once); TurnError unless it is an answer in one of the ``allowed`` statuses."""
    lock_person(user.id)
    db.session.refresh(answer)
    if answer.role != "assistant" or answer.status not in allowed:
        db.session.commit()  # releases the lock
        raise TurnError(what, 409)


def _check_leaf(answer: Message, what: str) -> None:
    """TurnError unless nothing follows ``answer`` (its text is no one's history yet)."""
    if db.session.scalar(messages.HAS_CHILDREN, {"message_id": answer.id}):
        db.session.commit()
        raise TurnError(what, 409)


def retry_answer(answer: Message, user: User) -> Message:
    """Make a failed or stopped answer streaming again, with the current settings, for the
    caller to generate anew. Only an answer nothing follows can be retried."""
    _locked_final_answer(answer, user, (STOPPED, ERROR),
                         "Only an answer that failed or was stopped can be retried.")
    _check_leaf(answer, "Only the latest answer of a conversation can be retried.")
    check_running(user.id, answer.conversation)
    now = utcnow()
    _reset(answer, *generation_choice(effective(user, answer.conversation)), now)
    answer.conversation.updated_at = now
    tree.choose(answer.conversation_id, answer.id)
    db.session.commit()
    return answer


def continue_answer(answer: Message, user: User) -> Message:
    """Make an answer that was stopped or cut at its length streaming again with its text
    kept, for the caller to ask the provider to go on (same provider, model and parameters)."""
    _locked_final_answer(answer, user, (STOPPED, COMPLETE),
                         "Only an answer that was stopped or cut at its length can be "
                         "continued.")
    if (answer.status == COMPLETE and answer.finish_reason != "length") or not answer.content:
        db.session.commit()
        raise TurnError("Only an answer that was stopped or cut at its length can be "
                        "continued.", 409)
    _check_leaf(answer, "Only the latest answer of a conversation can be continued.")
    check_running(user.id, answer.conversation)
    now = utcnow()
    answer.html, answer.status, answer.error, answer.stop_requested = None, STREAMING, None, False
    answer.finish_reason = answer.finished_at = answer.followed_until = None
    answer.updated_at = answer.started_at = now
    answer.conversation.updated_at = now
    tree.choose(answer.conversation_id, answer.id)
    db.session.commit()
    return answer


def _insert(conversation: Conversation, parent_id: int | None, now, *, version: bool = False,
            **values: Any) -> Message:
    """Insert one message following ``parent_id``; a new ``version`` of existing siblings
    becomes the one shown among them."""
    message = db.session.scalars(messages.INSERT, [{
        "conversation_id": conversation.id, "parent_id": parent_id, "selected": True,
        "created_at": now, "updated_at": now, **values}]).one()
    if version:
        db.session.execute(messages.CHOOSE, {"cid": conversation.id, "parent": parent_id,
                                             "chosen": message.id})
    return message


def _insert_answer(conversation: Conversation, parent_id: int, user: User, now, *,
                   version: bool = False) -> Message:
    """A new streaming answer to ``parent_id`` with the current generation settings."""
    provider, model, params = generation_choice(effective(user, conversation))
    return _insert(conversation, parent_id, now, version=version, role="assistant", content="",
                   status=STREAMING, provider=provider, model=model, params=params,
                   started_at=now)


def _touch(conversation: Conversation, now) -> None:
    db.session.execute(conversations.TOUCH, {"conversation_id": conversation.id, "now": now})
    set_committed_value(conversation, "updated_at", now)


def regenerate_answer(answer: Message, user: User) -> Message:
    """A new version of ``answer`` (a sibling, shown from now on) streaming with the current
    settings, for the caller to generate; the earlier versions stay."""
    conversation = answer.conversation
    if answer.role != "assistant" or answer.parent_id is None:
        raise TurnError("Only an answer can be regenerated.", 409)
    check_running(user.id, conversation)
    now = utcnow()
    _touch(conversation, now)
    new = _insert_answer(conversation, answer.parent_id, user, now, version=True)
    # Shown from now on, and the path above it too: a page showing another branch than the
    # one kept on the server regenerates on the branch it shows.
    tree.choose(conversation.id, new.id)
    db.session.commit()
    return new


def edit_message(message: Message, user: User, content: str) -> tuple[Message, Message]:
    """A new version of the person's ``message`` with ``content`` (a sibling, shown from now
    on) and its answer, streaming, for the caller to generate; the old branch stays."""
    if message.role != "user":
        raise TurnError("Only your own messages can be edited.", 409)
    content = _check_content(content)
    conversation = message.conversation
    check_running(user.id, conversation)
    if user.settings is None:
        user.settings = UserSettings()
    now = utcnow()
    _touch(conversation, now)
    new = _insert(conversation, message.parent_id, now, version=True, role="user",
                  content=content,
                  status=COMPLETE)
    answer = _insert_answer(conversation, new.id, user, now)
    tree.choose(conversation.id, new.id)  # the path above it too (see regenerate_answer)
    db.session.commit()
    return new, answer


def start_turn(conversation: Conversation | None, user: User, content: str,
               shown: int | None = None) -> tuple[Conversation, Message, Message]:
    """Save the person's message and its answer, already claimed (streaming) for the caller
    to generate; create the conversation if needed. The message follows ``shown``, the last
    message the person's page shows, when nothing follows it yet, else the end of the current
    path (``Tree.parent_for_new``)."""
    content = _check_content(content)
    check_running(user.id, conversation)
    if user.settings is None:
        user.settings = UserSettings()
    now = utcnow()
    if conversation is None:
        conversation = Conversation(user_id=user.id, title=title_from(content), updated_at=now)
        db.session.add(conversation)
        db.session.flush()
        parent_id = None
    else:
        _touch(conversation, now)
        shape = tree.load(conversation.id)
        parent_id = shape.parent_for_new(shown)
        if parent_id != shape.leaf():  # another branch than the server's: shown from now on
            tree.choose(conversation.id, parent_id, shape)
    user_message = _insert(conversation, parent_id, now, role="user", content=content,
                           status=COMPLETE)
    answer = _insert_answer(conversation, user_message.id, user, now)
    db.session.commit()
    return conversation, user_message, answer
