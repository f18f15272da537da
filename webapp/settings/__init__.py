"""Settings: a person's generation defaults, a conversation's own settings, and a person's
keys to the served API.

The blueprint; ``views`` holds its routes, ``storage`` saving settings and the conversation's
settings form and fragment, ``forms`` the form, ``schema`` what a stored setting may hold,
``values`` the settings an answer uses and ``api_keys`` the API keys page.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("settings", __name__)

# Last, once ``bp`` exists: the views module registers its routes on it.
from . import views  # noqa: E402, F401
