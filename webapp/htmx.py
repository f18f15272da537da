"""What the app needs to know about htmx requests, and the one way to answer them a fragment.

A URL that answers htmx with a fragment and a browser with a page must say so to caches:
``is_htmx`` notes that the response depends on the ``HX-Request`` header, and every such
response (fragment or page) gets ``Vary: HX-Request``, so a cache never serves one for the
other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Flask,
    Response,
    g,
    get_template_attribute,
    make_response,
    render_template,
    request,
)


def is_htmx() -> bool:
    """Whether htmx made this request (it then gets a fragment, not a whole page)."""
    g.varies_on_htmx = True
    return request.headers.get("HX-Request") == "true"


def macro(template: str, name: str) -> Callable[..., Any]:
    """The macro ``name`` of ``template`` (the same one its page uses), to render alone."""
    return get_template_attribute(template, name)


def fragment(html: str, status: int = 200) -> Response:
    """``html`` (already rendered) as a response to htmx, with ``Vary: HX-Request``."""
    g.varies_on_htmx = True
    return make_response(str(html), status)


def render_fragment(template: str, status: int = 200, **context: Any) -> Response:
    """``template`` rendered with ``context`` as a fragment (see ``fragment``)."""
    return fragment(render_template(template, **context), status)


def _vary(response: Response) -> Response:
    if g.get("varies_on_htmx"):
        response.vary.add("HX-Request")
    return response


def init_app(app: Flask) -> None:
    """Add ``Vary: HX-Request`` to every response that depended on it."""
    app.after_request(_vary)
