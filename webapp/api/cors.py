"""Cross-origin calls to the API, off unless ``API_CORS_ORIGINS`` names the pages allowed.

Only Bearer-key requests are served here and no cookie is read, so allowing an origin lets
its pages use keys they hold, not anyone's session.
"""

from __future__ import annotations

from flask import Response, current_app, request

#: How long a browser may keep a preflight's answer, in seconds.
PREFLIGHT_SECONDS = 600


def allowed_origin(origin: str | None) -> str | None:
    """The value of ``Access-Control-Allow-Origin`` for ``origin``, or None (not allowed)."""
    if not origin:
        return None
    allowed = [o.strip().rstrip("/") for o in
               str(current_app.config["API_CORS_ORIGINS"] or "").split(",") if o.strip()]
    if "*" in allowed:
        return "*"
    return origin if origin.rstrip("/") in allowed else None


def add_cors_headers(response: Response) -> Response:
    """``response`` with the CORS headers its request's origin may have."""
    response.vary.add("Origin")
    origin = allowed_origin(request.headers.get("Origin"))
    if origin is None:
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_SECONDS)
    else:
        response.headers["Access-Control-Expose-Headers"] = (
            "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After")
    return response
