"""Blueprint ``api``: the OpenAI-compatible chat-completions API, with people's Bearer keys.

``/api/openai/v1/…`` is the path Equing clients call (NextChat's), ``/v1/…`` the usual one.
"""

from flask import Blueprint

bp = Blueprint("api", __name__)

from . import views  # noqa: E402,F401 - registers the routes on bp
