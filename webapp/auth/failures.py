"""Failed sign-ins counted per account and per address, in the database every worker shares.

Flask-Limiter's default ``memory://`` storage counts in each worker alone, so two gunicorn
workers let twice the limit through (and several servers more). These counts live in the
``sign_in_failures`` table instead, which every worker and server reads.

Each attempt is written *before* its password is checked and counts against the others at once:
two attempts racing each other both see each other, so no interleaving lets more than the limit
through (at worst a racing attempt is refused that could have been allowed). An attempt that
succeeds is removed again, so only failures are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, request

from ..extensions import db
from ..models import SignInFailure, utcnow
from ..queries import sign_ins


@dataclass
class Refusal:
    """Why an attempt is refused, and in how many seconds it may be tried again."""

    message: str
    retry_after: int


def _enabled() -> bool:
    # The same switch as every other rate limit (tests about other things turn limits off).
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def address() -> str:
    """The client's address as the app sees it (after ProxyFix when TRUSTED_PROXIES is set)."""
    return (request.remote_addr or "")[:64]


def begin(account: str) -> SignInFailure | Refusal | None:
    """Record an attempt for ``account`` from this request's address before its password is
    checked: the recorded attempt, or a ``Refusal`` when the account or the address has
    reached the limit of failures in the window (None when limits are off)."""
    if not _enabled():
        return None
    limit = int(current_app.config["SIGN_IN_FAILURE_LIMIT"])
    window = timedelta(seconds=int(current_app.config["SIGN_IN_FAILURE_WINDOW_SECONDS"]))
    now = utcnow()
    since = now - window
    db.session.execute(sign_ins.expire(since))
    attempt = SignInFailure(account=account[:64], address=address(), created_at=now)
    db.session.add(attempt)
    db.session.commit()

    for column, value in ((SignInFailure.account, attempt.account),
                          (SignInFailure.address, attempt.address)):
        count, oldest = db.session.execute(
            sign_ins.counted(column, value, since, besides=attempt.id)).one()
        if count >= limit:
            # A refused attempt is not a failure: the lock ends a window after the failures
            # that caused it, however often someone knocks meanwhile.
            db.session.delete(attempt)
            db.session.commit()
            retry = max(1, math.ceil(((oldest or now) + window - now).total_seconds()))
            return Refusal(
                f"Too many failed sign-ins for this account or from this address: try again "
                f"in {_in_words(retry)}.", retry)
    return attempt


def succeeded(attempt: SignInFailure | None) -> None:
    """The password was right: this attempt and the account's earlier failures no longer
    count (the person has shown they know it)."""
    if attempt is None:
        return
    db.session.execute(sign_ins.forgive(attempt))
    db.session.commit()


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"
