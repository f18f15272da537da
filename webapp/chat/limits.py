"""The rate limit on requests that start an answer (``MESSAGE_RATE_LIMIT``)."""

from __future__ import annotations

from flask import current_app, request
from flask_login import current_user


def person_key() -> str:
    """Rate-limit key: the signed-in person (not their address, which a team may share)."""
    return f"person:{current_user.id}" if current_user.is_authenticated else \
        f"address:{request.remote_addr}"


def message_limit() -> str:
    """The limit, read per request so the configuration decides it."""
    return current_app.config["MESSAGE_RATE_LIMIT"]
