"""Queries of the served API: people's keys and the record of their calls."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.orm import joinedload

from ..models import ApiCall, ApiKey, Conversation, Message

_keys = ApiKey.__table__
_calls = ApiCall.__table__


def keys_of(user_id: int) -> Select:
    """A person's keys, the usable ones first, newest first."""
    return (select(ApiKey).where(ApiKey.user_id == user_id)
            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc()))


def all_keys(user_id: int | None = None) -> Select:
    """Every key with its owner's name (of one person when ``user_id`` is given), by id."""
    query = select(ApiKey).order_by(ApiKey.id)
    return query if user_id is None else query.where(ApiKey.user_id == user_id)


def active_count(user_id: int) -> Select:
    """How many keys a person has that are not revoked."""
    return (select(func.count()).select_from(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)))


def owned_key(key_id: int, user_id: int) -> Select:
    """Key ``key_id`` if ``user_id`` owns it."""
    return select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)


def calls_of(user_id: int, most: int) -> Select:
    """A person's latest ``most`` calls, newest first, with their keys (loaded in the same
    query: the page names each call's key)."""
    return (select(ApiCall).where(ApiCall.user_id == user_id)
            .options(joinedload(ApiCall.key))
            .order_by(ApiCall.id.desc()).limit(most))


# Run for every API call: built once (see the package's docstring).
#: The usable key with a digest, and its owner's id.
KEY_BY_DIGEST = (select(_keys.c.id, _keys.c.user_id)
                 .where(_keys.c.digest == bindparam("digest"), _keys.c.revoked_at.is_(None)))
#: A key was used now.
KEY_USED = (update(_keys).where(_keys.c.id == bindparam("key_id"))
            .values(last_used_at=bindparam("now")))
#: How many of a person's API calls are still running (started after ``since``: a call whose
#: worker was killed stops counting once no call could still be running).
RUNNING_CALLS = (select(func.count()).select_from(_calls)
                 .where(_calls.c.user_id == bindparam("user_id"),
                        _calls.c.status == "running",
                        _calls.c.started_at > bindparam("since")))
#: A call begins (returns its id).
START_CALL = insert(_calls).returning(_calls.c.id)
#: A call ends: how, with how many tokens, and the conversation that keeps it.
END_CALL = (update(_calls).where(_calls.c.id == bindparam("call_id"))
            .values(status=bindparam("status"), http_status=bindparam("http_status"),
                    error=bindparam("error"), prompt_tokens=bindparam("prompt_tokens"),
                    completion_tokens=bindparam("completion_tokens"),
                    conversation_id=bindparam("conversation_id"),
                    first_token_at=bindparam("first_token_at"),
                    finished_at=bindparam("finished_at")))

# Keeping an API call's turn as a conversation (once per call, at its end).
_conversations = Conversation.__table__
#: The id of the person's newest API conversation whose messages so far have a digest.
API_CONVERSATION = (select(_conversations.c.id)
                    .where(_conversations.c.user_id == bindparam("user_id"),
                           _conversations.c.api_digest == bindparam("digest"))
                    .order_by(_conversations.c.id.desc()).limit(1))
#: A new API conversation (returns its id).
NEW_CONVERSATION = insert(_conversations).returning(_conversations.c.id)
#: A kept message (returns its id).
KEEP_MESSAGE = insert(Message.__table__).returning(Message.__table__.c.id)
#: An API conversation after a call: the digest its next call continues from, and now.
CONVERSATION_KEPT = (update(_conversations)
                     .where(_conversations.c.id == bindparam("conversation_id"))
                     .values(api_digest=bindparam("digest"), updated_at=bindparam("now")))
