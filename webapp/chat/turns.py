"""Starting a chat turn: check the message, pick the provider, save both rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import false, func, select

from ..extensions import db
from ..models import (
    COMPLETE,
    ERROR,
    FINAL_STATUSES,
    PENDING,
    STOPPED,
    STREAMING,
    Conversation,
    Message,
    User,
    UserSettings,
    utcnow,
)
from ..settings.values import effective, sampling
from ..streaming import mark_interrupted

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
    registry = current_app.extensions["providers"]
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


def _check_running(user: User, conversation: Conversation | None = None) -> None:
    """Refuse a new answer when the person already has as many running as allowed, or when
    ``conversation`` already has one being written.

    Answers whose writer has not saved them for ``STREAM_STALE_SECONDS`` are marked interrupted
    first (their process died); only those are loaded, the live ones are only counted.
    """
    mine = (Conversation.user_id == user.id, Message.status.not_in(FINAL_STATUSES))
    stale = utcnow() - timedelta(seconds=float(current_app.config["STREAM_STALE_SECONDS"]))
    is_stale = (Message.status == STREAMING) & (Message.updated_at <= stale)
    in_here = (Message.conversation_id == conversation.id if conversation is not None
               else false())
    count, here, stale_count = db.session.execute(
        select(func.count(), func.count().filter(in_here), func.count().filter(is_stale))
        .select_from(Message).join(Conversation).where(*mine)).one()
    if stale_count:  # rare: their process died; mark them and count again
        for message in db.session.scalars(select(Message).join(Conversation)
                                          .where(*mine, is_stale)):
            mark_interrupted(message)
        count, here = db.session.execute(
            select(func.count(), func.count().filter(in_here))
            .select_from(Message).join(Conversation).where(*mine)).one()
    if here:
        raise TurnError("An answer is still being written: wait for it or stop it.", 409)
    limit = current_app.config["STREAMS_PER_USER"]
    if count >= limit:
        raise TurnError(f"You already have {count} answers being written (at most "
                        f"{limit} at once): wait for one to finish or stop it.", 429)


def retry_answer(answer: Message, user: User) -> Message:
    """Make a failed or stopped answer pending again, with the current settings; its stream
    then generates it anew. Only the last message of a conversation can be retried."""
    if answer.role != "assistant" or answer.status not in (STOPPED, ERROR):
        raise TurnError("Only an answer that failed or was stopped can be retried.", 409)
    last = db.session.scalar(select(Message.id).where(
        Message.conversation_id == answer.conversation_id).order_by(Message.id.desc()).limit(1))
    if last != answer.id:
        raise TurnError("Only the latest answer of a conversation can be retried.", 409)
    _check_running(user)
    provider, model, params = generation_choice(effective(user, answer.conversation))
    now = utcnow()
    answer.content, answer.html, answer.status, answer.error = "", None, PENDING, None
    answer.provider, answer.model, answer.params = provider, model, params
    answer.stop_requested, answer.token_count = False, 0
    answer.started_at = answer.first_token_at = answer.finished_at = None
    answer.created_at = answer.updated_at = now
    answer.conversation.updated_at = now
    db.session.commit()
    return answer


def start_turn(conversation: Conversation | None, user: User, content: str,
               claimed: bool = False) -> tuple[Conversation, Message, Message]:
    """Save the person's message and a pending answer; create the conversation if needed.

    ``claimed``: the caller generates the answer itself, in this request, so it is saved as
    already streaming (no stream request will claim it).
    """
    content = (content or "").strip()
    limit = current_app.config["MAX_MESSAGE_CHARS"]
    if not content:
        raise TurnError("Type a message first.")
    if len(content) > limit:
        raise TurnError(f"The message is too long: {len(content):,} characters "
                        f"(at most {limit:,}).")
    _check_running(user, conversation)
    if user.settings is None:
        user.settings = UserSettings()
    provider, model, params = generation_choice(effective(user, conversation))
    now = utcnow()
    if conversation is None:
        conversation = Conversation(user_id=user.id, title=title_from(content))
        db.session.add(conversation)
    conversation.updated_at = now
    user_message = Message(conversation=conversation, role="user", content=content,
                           status=COMPLETE, created_at=now)
    answer = Message(conversation=conversation, role="assistant", content="",
                     status=STREAMING if claimed else PENDING, started_at=now if claimed else None,
                     provider=provider, model=model, params=params, created_at=now,
                     updated_at=now)
    db.session.add_all([user_message, answer])
    db.session.commit()
    return conversation, user_message, answer
