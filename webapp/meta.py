"""Service routes: liveness, readiness and generated assets."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from .checks import database_revision, head_revision
from .extensions import app_state, db
from .rendering import pygments_css

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """The database answers and its migrations are current (else 503, with the reason)."""
    state = app_state()
    if state.head_revision is None:
        state.head_revision = head_revision()
    head = state.head_revision
    try:
        current = database_revision(db.engine)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        current_app.logger.warning("readyz: database does not answer: %s", exc)
        return {"status": "unavailable", "reason": "the database does not answer"}, 503
    if current != head:
        return {"status": "unavailable",
                "reason": f"migrations are at {current}, the code needs {head}: "
                          "run `flask db upgrade`"}, 503
    return {"status": "ready", "migration": current}


@bp.get("/assets/highlight.css")
def highlight_css():
    """Stylesheet for highlighted code (generated from Pygments, cached by browsers)."""
    response = Response(pygments_css(), mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response
