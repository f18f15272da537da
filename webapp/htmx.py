"""What the app needs to know about htmx requests."""

from __future__ import annotations

from flask import request


def is_htmx() -> bool:
    """Whether htmx made this request (it then gets a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"
