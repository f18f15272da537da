"""The API's routes: models, chat completions, and the hooks every API answer goes through."""

from __future__ import annotations

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from ..chat.limits import message_limit
from ..extensions import csrf, limiter, providers
from . import bp
from .auth import bearer, person_key
from .body import check_sizes, read_request
from .catalog import listed, model_object, resolve
from .cors import add_cors_headers
from .relay import Relay, begin
from .wire import ApiError, json_response

# Bearer keys only, never the session cookie: a cross-site page cannot ride a session here.
csrf.exempt(bp)


@bp.before_request
def api_enabled():
    if not current_app.config["API_ENABLED"]:
        raise ApiError(404, "The API is turned off on this server.", code="api_disabled")


@bp.after_request
def cors(response: Response) -> Response:
    return add_cors_headers(response)


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    return error.response()


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    # A 413 from MAX_CONTENT_LENGTH, a 429 from the rate limit…: OpenAI's shape, not a page.
    if error.code == 413:
        most = current_app.config["MAX_CONTENT_LENGTH"]
        return ApiError(413, f"The request body is larger than the {most} bytes this server "
                             "takes.").response()
    return ApiError(error.code or 500, error.description or error.name).response()


@bp.get("/v1/models")
@bp.get("/api/openai/v1/models")
def models():
    bearer()
    data = [model_object(choice) for choice in listed(providers())]
    return json_response({"object": "list", "data": data})


@bp.get("/v1/models/<path:model>")
@bp.get("/api/openai/v1/models/<path:model>")
def model(model: str):
    bearer()
    return json_response(model_object(resolve(providers(), current_app.config, model)))


@bp.post("/v1/chat/completions")
@bp.post("/api/openai/v1/chat/completions")
@limiter.limit(message_limit, key_func=person_key, methods=["POST"])
def chat_completions():
    key_id, person_id = bearer()
    chat = read_request()
    check_sizes(chat, current_app.config)
    choice = resolve(providers(), current_app.config, chat.model)
    call = begin(key_id, person_id, chat, choice, request.path)
    relay = Relay(current_app._get_current_object(), call)
    first = relay.open(request.environ)
    if not chat.stream:
        return relay.whole(first)
    return Response(relay.stream(first), mimetype="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
