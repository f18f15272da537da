"""Accounts: first-run setup of the admin, sign in, sign out, optional sign-up.

The blueprint; ``views`` holds its routes, ``accounts`` what they do with accounts, ``forms``
the forms and ``failures`` the failed sign-ins counted in the database.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)

# Last, once ``bp`` exists: the views module registers its routes on it.
from . import views  # noqa: E402, F401
