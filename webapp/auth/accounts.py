"""Accounts: loading the signed-in person, creating accounts, checking passwords, signing in."""

from __future__ import annotations

import re
import secrets
from functools import cache

from flask import session, url_for
from flask_login import login_user
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import app_state, db, login_manager
from ..models import User, UserSettings
from ..queries import people


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Flask-Login's loader: the signed-in person, if the session's token is still theirs."""
    user_id, _, token = session_id.partition(":")
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    if user is None or not secrets.compare_digest(user.session_token or "", token):
        return None
    return user


def has_users() -> bool:
    """Whether any account exists; cached once true (accounts are not all deleted in use)."""
    if app_state().has_users:
        return True
    found = db.session.scalar(people.count()) > 0
    if found:
        app_state().has_users = True
    return found


def by_username(username: str) -> User | None:
    """The account with that name, if there is one."""
    return db.session.scalar(people.by_username(username))


def create_user(username: str, password: str, *, is_admin: bool = False) -> User:
    """Create an account with the seed's default generation settings."""
    user = User(username=username.strip(), is_admin=is_admin)
    user.set_password(password)
    user.settings = UserSettings()
    db.session.add(user)
    db.session.commit()
    return user


#: ASCII whitespace and control characters: browsers drop them from a URL before reading it, so
#: ``/<TAB>/evil.example`` is followed as ``//evil.example``, another site.
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: ``target`` if it is a path on this site (one leading ``/``,
    not ``//`` or ``/\\``, nothing a browser would drop), else the home page."""
    if (target and not _INVISIBLE.search(target) and target.startswith("/")
            and not target.startswith("//") and "\\" not in target):
        return target
    return url_for("chat.index")


@cache
def _dummy_hash() -> str:
    """A hash made the way ``User.set_password`` makes them, of a password nobody knows."""
    return generate_password_hash(secrets.token_hex(16))


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s; an unknown name costs the same hashing as a known one,
    so the time of an answer does not tell which names have accounts."""
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


def sign_in(user: User, remember: bool = False) -> None:
    """Sign ``user`` in, in a fresh session."""
    # A fresh session at sign-in: nothing set before it (by anyone) carries over.
    session.clear()
    login_user(user, remember=remember)
