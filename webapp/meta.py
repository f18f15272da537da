"""Service routes: liveness and generated assets."""

from __future__ import annotations

from flask import Blueprint, Response

from .rendering import pygments_css

bp = Blueprint("meta", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/assets/highlight.css")
def highlight_css():
    """Stylesheet for highlighted code (generated from Pygments, cached by browsers)."""
    response = Response(pygments_css(), mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response
