"""Shared links: read-only snapshots of a conversation, revocable, readable without an account.

The blueprint; ``views`` holds its routes, ``snapshots`` taking and checking a snapshot and
``links`` making, finding and copying the links.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("share", __name__)

# Last, once ``bp`` exists: the views module registers its routes on it.
from . import views  # noqa: E402, F401
