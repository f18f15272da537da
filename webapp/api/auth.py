"""Who calls the API: the owner of the Bearer key the request carries, and nothing else.

The API never reads the session cookie: a signed-in browser without a key gets 401, so a page
on another site cannot use a person's session through it (and it needs no CSRF token).
"""

from __future__ import annotations

from flask import g, request

from ..extensions import db
from .keys import find_key
from .wire import ApiError


def bearer() -> tuple[int, int]:
    """The (key id, owner id) of the request's key; ``ApiError`` 401 without a usable one.
    Looked up once per request (the rate limit asks first, then the view)."""
    found = g.get("api_key")
    if found is not None:
        return found
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "No API key: send it as the header Authorization: Bearer KEY "
                            "(make one under Settings → API keys).", code="missing_api_key")
    found = find_key(db.session, secret)
    if found is None:
        raise ApiError(401, "The API key is wrong or was revoked.", code="invalid_api_key")
    g.api_key = found
    return found


def person_key() -> str:
    """Rate-limit key of an API call: its key's owner, whichever key (as the chat counts a
    person, not an address); the address when the key is missing or wrong."""
    try:
        return f"person:{bearer()[1]}"
    except ApiError:
        return f"address:{request.remote_addr}"
