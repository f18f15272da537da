"""People's keys to the served API: made, found by the key a request carries, revoked.

A key is ``eqk-`` and 43 URL-safe characters (256 random bits). Only its SHA-256 digest is
stored; it is shown once, when made. Looking a request's key up is one indexed read of the
digest; a revoked key is refused from the next request on (no cache).
"""

from __future__ import annotations

import hashlib
import secrets

from flask import current_app
from sqlalchemy.orm import Session

from ..chat.turns import lock_person
from ..extensions import db
from ..models import ApiKey, User, utcnow
from ..queries import api as queries

#: What every key starts with (tells a leaked key's kind at a glance, as other services do).
PREFIX = "eqk-"
#: How many characters of a key lists show.
SHOWN = len(PREFIX) + 6
#: The longest name a key may have.
MOST_NAME_CHARS = 100


class KeyRefused(ValueError):
    """A key cannot be made: the reason, in words for the person."""


def digest(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def clean_name(name: str | None) -> str:
    """A key's name as stored, or ``KeyRefused`` saying what is wrong with it."""
    name = " ".join((name or "").split())
    if not name:
        raise KeyRefused("Give the key a name (where it will be used, e.g. “laptop”).")
    if len(name) > MOST_NAME_CHARS:
        raise KeyRefused(f"A key's name has at most {MOST_NAME_CHARS} characters.")
    if "\x00" in name:
        raise KeyRefused("A key's name cannot hold a NUL character.")
    return name


def create_key(user: User, name: str | None) -> tuple[ApiKey, str]:
    """Make a key for ``user`` named ``name`` and commit it; returns the row and the key
    itself (shown once). ``KeyRefused`` for a bad name or too many keys."""
    name = clean_name(name)
    most = int(current_app.config["API_KEYS_PER_USER"])
    lock_person(user.id)  # two requests at once: counted and inserted one after the other
    if db.session.scalar(queries.active_count(user.id)) >= most:
        db.session.rollback()
        raise KeyRefused(f"You have {most} keys already (the most one may have): revoke one "
                         "you no longer use first.")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, name=name, prefix=secret[:SHOWN], digest=digest(secret))
    db.session.add(key)
    db.session.commit()
    return key, secret


def revoke_key(key: ApiKey) -> bool:
    """Revoke ``key`` and commit; False if it was revoked already."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    db.session.commit()
    return True


def find_key(session: Session, secret: str) -> tuple[int, int] | None:
    """The (key id, owner id) of the usable key ``secret``, or None."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    row = session.execute(queries.KEY_BY_DIGEST, {"digest": digest(secret)}).first()
    return (row[0], row[1]) if row is not None else None
