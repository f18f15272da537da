"""Settings: a person's generation defaults and a conversation's own settings.

The blueprint; ``views`` holds its routes, ``storage`` saving settings and the conversation's
settings form and fragment, ``forms`` the form, ``schema`` what a stored setting may hold and
``values`` the settings an answer uses.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("settings", __name__)

# Last, once ``bp`` exists: the views module registers its routes on it.
from . import views  # noqa: E402, F401
