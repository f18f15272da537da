"""Managing conversations: rename, delete, pin, per-chat settings, search, export, import.

The blueprint; ``views`` holds its routes and ``exports`` the export and import.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("manage", __name__)

# Last, once ``bp`` exists: the views module registers its routes on it.
from . import views  # noqa: E402, F401
