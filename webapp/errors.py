"""Error pages: a full page for browsers, a short fragment for htmx."""

from __future__ import annotations

from flask import Flask, Response, render_template
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from .api.wire import ApiError, is_api_request
from .htmx import fragment, is_htmx

MESSAGES = {
    400: "The request was not understood.",
    403: "You may not do that.",
    404: "There is nothing here (or it is not yours).",
    405: "That action is not allowed here.",
    409: "That conflicts with something in progress.",
    413: "That is too large.",
    429: "Too many requests: wait a moment and try again.",
    500: "Something went wrong on our side.",
}


def error_fragment(message: str, status: int) -> Response:
    """``message`` alone, for htmx: the words go where the form says errors go (the composer's
    ``#composer-error``, through its ``hx-status`` attributes)."""
    return fragment(escape(message), status)


def render_error(status: int, message: str):
    """The error page with ``message`` (a fragment for htmx; OpenAI's JSON error under the
    API's addresses), as a response and its status."""
    if is_api_request():
        return ApiError(status, message).response()
    if is_htmx():
        return error_fragment(message, status)
    return render_template("error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    """Register the handlers."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_error(400, "The form expired or came from elsewhere: reload the page and "
                                 "try again (your text is still in the box).")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        return render_error(status, MESSAGES.get(status, error.description or "Error."))
