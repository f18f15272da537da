"""Queries of people (accounts)."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, select, update

from ..models import User

_users = User.__table__


def by_username(username: str) -> Select:
    """The account with that name."""
    return select(User).where(User.username == username)


def count() -> Select:
    """How many accounts there are."""
    return select(func.count()).select_from(User)


# The person's row is the lock that serialises their turns (see chat.turns.lock_person); run
# at every turn, so built once.
#: PostgreSQL: lock the row until the transaction ends.
LOCK_ROW = select(_users.c.id).where(_users.c.id == bindparam("user_id")).with_for_update()
#: SQLite: a no-op write that takes the database's write lock. (A column no foreign key refers
#: to: rewriting the id would make SQLite check every child.)
WRITE_ROW = (update(_users).where(_users.c.id == bindparam("user_id"))
             .values(username=_users.c.username))
