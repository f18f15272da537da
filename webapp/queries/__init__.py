"""Every query the app runs, one module per concern, beside the models.

A query is a function that returns a statement (``select()``, ``update()``, ``insert()``) for
the caller to run in its session, as microblog's models do; nothing here commits. Statements
run for every chat turn or every saved token are built once, at import, with bound parameters,
and named in UPPER_CASE: SQLAlchemy spends about 0.3 ms building and keying a statement, several
times what SQLite takes to run it.

``owned_or_404`` is the one way a route reaches an object by the id in its address: the
object if the signed-in person owns it, else 404 (never 403: another person's ids are not
confirmed to exist).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from ..extensions import db
from ..models import ApiKey, Conversation, Message, Share
from . import api, conversations, messages, shares

T = TypeVar("T", ApiKey, Conversation, Message, Share)

#: For each kind of object a route may name, the query of one of them owned by a person.
_OWNED: dict[type, Callable[[int, int], Any]] = {
    Conversation: conversations.owned,
    Message: messages.owned,
    Share: shares.owned,
    ApiKey: api.owned_key,
}


def owned_or_404(kind: type[T], object_id: int) -> T:
    """The ``kind`` with id ``object_id`` if the signed-in person owns it; 404 otherwise."""
    found = db.session.scalar(_OWNED[kind](object_id, current_user.id))
    if found is None:
        abort(404)
    return found
