"""Database models: people, their settings, conversations and messages."""

from __future__ import annotations

from datetime import UTC, datetime
from secrets import token_hex

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db

#: Table option for tables whose ids are seen by people (in links, bookmarks, exports): SQLite's
#: AUTOINCREMENT never hands out the id of a deleted row again, so an old link cannot open
#: someone else's newer conversation. PostgreSQL's sequences never reuse ids anyway.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (stored the same way by SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


class User(UserMixin, db.Model):
    """A person with an account."""

    __tablename__ = "users"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Part of every session's identity; a new one at sign-out ends all the person's sessions
    #: (a signed cookie copied before sign-out is worth nothing after it).
    session_token: Mapped[str | None] = mapped_column(String(64), default=lambda: token_hex(16))

    # Loaded with the person (one query per request, not two): every chat turn needs them.
    settings: Mapped[UserSettings | None] = relationship(back_populates="user", lazy="joined",
                                                         cascade="all, delete-orphan")

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password`` (never the password)."""
        self.password_hash = generate_password_hash(password)

    def get_id(self) -> str:
        """Flask-Login's session identity: the id and the current session token."""
        return f"{self.id}:{self.session_token or ''}"

    def end_sessions(self) -> None:
        """Invalidate every session of this person (sign-out)."""
        self.session_token = token_hex(16)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)



class UserSettings(db.Model):
    """A person's generation defaults; new people get the seed's (NextChat's) values."""

    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    temperature: Mapped[float] = mapped_column(default=0.5)
    top_p: Mapped[float] = mapped_column(default=1.0)
    presence_penalty: Mapped[float] = mapped_column(default=0.0)
    frequency_penalty: Mapped[float] = mapped_column(default=0.0)
    max_tokens: Mapped[int | None] = mapped_column(default=None)
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="settings")


class Conversation(db.Model):
    """One chat: a title and its messages, owned by one person."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),
                      Index("ix_conversations_user_api_digest", "user_id", "api_digest"),
                      NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    #: Set once the person renames the conversation: no generated title replaces theirs.
    title_renamed: Mapped[bool] = mapped_column(default=False, server_default=false())
    pinned: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Where its turns came from: ``"web"`` (the chat) or ``"api"`` (the served API, when
    #: ``API_KEEP_CONVERSATIONS`` keeps its turns).
    origin: Mapped[str] = mapped_column(String(8), default="web", server_default="web")
    #: For an API conversation: a digest of its messages so far, so that a client that sends
    #: the same history again with one more message continues it instead of starting another.
    api_digest: Mapped[str | None] = mapped_column(String(64))
    #: This conversation's own generation settings (same keys as ``UserSettings``), or None
    #: to use the person's defaults. Applies from the next message on.
    settings: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Message.id")
    shares: Mapped[list[Share]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True)



class Share(db.Model):
    """A read-only link to a snapshot of a conversation, as it was when shared."""

    __tablename__ = "shares"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The secret in the link: 32 random bytes, URL-safe (256 bits).
    token: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    include_system_prompt: Mapped[bool] = mapped_column(default=False)
    #: {"title", "system_prompt", "messages": [{"role", "content", "status", ...}]}
    snapshot: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="shares")



#: Message statuses. pending: saved, not started; streaming: being generated; the others final.
PENDING, STREAMING = "pending", "streaming"
COMPLETE, STOPPED, ERROR = "complete", "stopped", "error"
FINAL_STATUSES = (COMPLETE, STOPPED, ERROR)
RUNNING_STATUSES = (PENDING, STREAMING)


class Message(db.Model):
    """A user's message or an assistant's answer, with how and when it was generated.

    A conversation is a tree: each message has the one it follows as its ``parent`` (None for
    the first). Messages with the same parent are versions of each other (an answer
    regenerated, a message edited and sent again); among them the one ``selected`` is shown,
    so the conversation's current path runs from its selected first message down through
    selected children (``webapp.tree``).
    """

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_id", "conversation_id", "id"),
                      NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"))
    #: The message this one follows (its history is the path up from it); None for a first one.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    #: Whether this is the version shown among its siblings (the conversation's current path).
    selected: Mapped[bool] = mapped_column(default=True, server_default=true())
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    #: The answer's sanitized HTML, rendered once when it is finished (pages only print it).
    html: Mapped[str | None] = mapped_column(Text)
    # Indexed: each new message looks for the person's answers still being written.
    status: Mapped[str] = mapped_column(String(16), default=COMPLETE, index=True)
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    #: The exact sampling parameters (and system prompt) the answer was generated with.
    params: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    error: Mapped[str | None] = mapped_column(Text)
    #: Set by the Stop button; read by whichever process is generating.
    stop_requested: Mapped[bool] = mapped_column(default=False)
    #: Number of chunks received from the provider (about one per token).
    token_count: Mapped[int] = mapped_column(default=0)
    #: Why the provider ended the answer ('stop', 'length': cut at the token limit), if it said.
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    #: Earlier messages left out of what the model was sent (its context window, the bounds).
    history_skipped: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    first_token_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    #: Last time the generating process wrote this row (a heartbeat while streaming).
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: While a page served by another process follows this running answer, that process
    #: keeps this a few seconds ahead; the generating process then saves the text more often.
    followed_until: Mapped[datetime | None]

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    parent: Mapped[Message | None] = relationship(remote_side=[id])

    @property
    def is_final(self) -> bool:
        """Whether generation has ended (complete, stopped or error)."""
        return self.status in FINAL_STATUSES

    def seconds(self, start: str, end: str) -> float | None:
        """Seconds between two of the timing columns, or None."""
        a, b = getattr(self, start), getattr(self, end)
        return (b - a).total_seconds() if a and b else None



class ApiKey(db.Model):
    """A person's key to the served API (``Authorization: Bearer KEY``).

    Only a SHA-256 digest of the key is kept: the key is shown once, when it is made. A key is
    random (256 bits), so a fast digest is enough (there is nothing to guess, unlike a
    password). A revoked key keeps its row so the calls made with it still name it.
    """

    __tablename__ = "api_keys"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The key's first characters, shown in lists so a person can tell their keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class ApiCall(db.Model):
    """One call to the served API: who, with which key, what model, how it went."""

    __tablename__ = "api_calls"
    __table_args__ = (Index("ix_api_calls_user_started", "user_id", "started_at"),
                      Index("ix_api_calls_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"),
                                               index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    #: The model as asked for, and what it resolved to.
    model: Mapped[str] = mapped_column(String(200), default="")
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_model: Mapped[str | None] = mapped_column(String(128))
    stream: Mapped[bool] = mapped_column(default=False)
    #: ``running`` until the call ends, then ``complete``, ``stopped`` (the client left, or a
    #: shutdown) or ``error``.
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: The HTTP status the call was answered with (200 for a stream that failed later).
    http_status: Mapped[int] = mapped_column(default=200)
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_token_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    key: Mapped[ApiKey | None] = relationship()

    def seconds(self) -> float | None:
        """How long the call took, once it ended."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class SignInFailure(db.Model):
    """A failed sign-in (or one being checked), counted per account and per address.

    Kept in the database, not in the workers' memory, so that every worker and every server
    counts the same failures; rows older than the window are deleted as new ones come.
    """

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_account_created", "account", "created_at"),
                      Index("ix_sign_in_failures_address_created", "address", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The username as typed (known or not: unknown names are counted the same way).
    account: Mapped[str] = mapped_column(String(64))
    #: The client's address as the app sees it (behind TRUSTED_PROXIES, the forwarded one).
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
