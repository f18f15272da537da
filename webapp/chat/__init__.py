"""The chat blueprint: the page, conversations, posting a message, an answer's stream, Stop.

The routes are in ``views``; what they do is in the modules beside it: ``pages`` (the page),
``replies`` (how a request that starts an answer is answered), ``turns`` (a turn's rows and
limits), ``answers`` (generate, stop, bring up to date), ``events`` (the answer as
Server-Sent Events), ``sidebar`` and ``fragments`` (pieces of the page rendered alone).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("chat", __name__)

# Imported for its effect, after ``bp`` exists: the routes register on it.
from . import views  # noqa: E402, F401
