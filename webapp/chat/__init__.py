"""Chat pages: the sidebar, conversations, posting a message, the answer's stream, Stop."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from ..extensions import db, limiter, providers
from ..htmx import is_htmx
from ..models import FINAL_STATUSES, PENDING, STOPPED, Conversation, Message, utcnow
from ..queries import owned_or_404
from ..queries.conversations import for_user as conversations_of
from ..streaming import (
    STOPPED_BY_USER,
    Generation,
    claim,
    job_for,
    mark_interrupted,
    stops,
)
from .events import answer_stream
from .sidebar import conversation_list_oob
from .turns import TurnError, retry_answer, start_turn

bp = Blueprint("chat", __name__)


def sidebar_page(page: int) -> tuple[list[Conversation], bool]:
    """One page of the person's conversations and whether there are more."""
    size = current_app.config["CONVERSATIONS_PER_PAGE"]
    rows = db.session.scalars(conversations_of(current_user.id)
                              .offset((page - 1) * size).limit(size + 1)).all()
    return rows[:size], len(rows) > size


def render_page(conversation: Conversation | None, *, error: str | None = None,
                draft: str = "", settings_form=None, status: int = 200):
    """The chat page: sidebar, the conversation (if any) with its tools, and the composer."""
    from ..settings.storage import conversation_form

    conversations, more = sidebar_page(1)
    messages, share = [], None
    if conversation is not None:
        messages = list(conversation.messages)
        if any(mark_interrupted(m) for m in messages):
            db.session.commit()
        share = conversation.shares[0] if conversation.shares else None
        settings_form = settings_form or conversation_form(conversation)
    registry = providers()
    response = render_template("chat/page.html", conversation=conversation, messages=messages,
                               conversations=conversations, more=more, error=error,
                               draft=draft, share=share, settings_form=settings_form,
                               default_label=registry.default_provider().label)
    return response, status


@bp.get("/")
@login_required
def index():
    """A new, empty chat."""
    return render_page(None)


@bp.get("/conversations")
@login_required
def conversations():
    """The sidebar list, one page at a time (htmx loads the next page in place)."""
    page = max(request.args.get("page", 1, type=int), 1)
    items, more = sidebar_page(page)
    current = request.args.get("current", 0, type=int)
    return render_template("_sidebar_page.html", conversations=items, more=more, page=page,
                           current=current)


@bp.get("/c/<int:conversation_id>")
@login_required
def conversation(conversation_id: int):
    """A conversation with its history and the composer."""
    return render_page(owned_or_404(Conversation, conversation_id))


def answer_now(answer: Message):
    """Without JavaScript: generate the whole answer in this request, then show the page."""
    app = current_app._get_current_object()
    job = claim(app, answer.id)
    if job is not None:
        for _ in Generation(app, job):
            pass
    return redirect(url_for("chat.conversation", conversation_id=answer.conversation_id,
                            _anchor=f"m-{answer.id}"), code=303)


def wants_stream() -> bool:
    """Whether this htmx request takes an event stream as its answer (htmx's SSE extension
    says so in ``Accept``): then a turn is one request, the message and its answer's stream."""
    return is_htmx() and "text/event-stream" in request.headers.get("Accept", "")


def _turn_response(conversation: Conversation | None, content: str):
    """Start a turn and answer the way the request needs: the turn and its answer as one event
    stream (htmx with SSE), the turn's HTML (htmx; its answer opens its own stream), or a whole
    page (no JavaScript)."""
    live = request.endpoint == "chat.post_message" and wants_stream()
    try:
        conversation, user_message, answer = start_turn(conversation, current_user, content,
                                                        claimed=live)
    except TurnError as exc:
        if is_htmx():
            return render_template("_composer_error.html", error=exc.message), exc.status
        return render_page(conversation, error=exc.message, draft=content, status=exc.status)
    if not is_htmx():
        return answer_now(answer)
    if request.endpoint == "chat.create":
        # A new conversation gets its own page (and address); the stream starts there.
        response = Response(status=200)
        response.headers["HX-Redirect"] = url_for("chat.conversation",
                                                  conversation_id=conversation.id)
        return response
    # The conversation moved to the top of the sidebar: the list follows out of band.
    sidebar = conversation_list_oob(current_user.id, conversation.id)
    if live:
        app = current_app._get_current_object()
        job = job_for(answer.id, answer.conversation_id, answer.provider, answer.model,
                      answer.params, app.config)
        turn = render_template("_turn.html", messages=[user_message, answer], live=True)
        return answer_stream(app, answer.id, job, first=turn + sidebar)
    response = Response(render_template("_turn.html", messages=[user_message, answer]) + sidebar)
    response.headers["Vary"] = "HX-Request, Accept"
    return response


def person_key() -> str:
    """Rate-limit key: the signed-in person (not their address, which a team may share)."""
    return f"person:{current_user.id}" if current_user.is_authenticated else \
        f"address:{request.remote_addr}"


def message_limit() -> str:
    return current_app.config["MESSAGE_RATE_LIMIT"]


@bp.post("/c")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def create():
    """Start a new conversation with its first message."""
    return _turn_response(None, request.form.get("content", ""))


@bp.post("/c/<int:conversation_id>/messages")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def post_message(conversation_id: int):
    """Add the person's message and a pending answer to a conversation."""
    conversation = owned_or_404(Conversation, conversation_id)
    return _turn_response(conversation, request.form.get("content", ""))


@bp.get("/m/<int:message_id>/stream")
@login_required
def stream(message_id: int):
    """The answer as an event stream: escaped text as it comes, then the final HTML.

    The first request for a pending message generates it; any later request follows the
    saved text, or gets the final HTML at once when the answer is finished.
    """
    message = owned_or_404(Message, message_id)
    if message.role != "assistant":
        abort(404)
    return answer_stream(current_app._get_current_object(), message_id)


@bp.post("/m/<int:message_id>/stop")
@login_required
def stop(message_id: int):
    """Ask for the answer to stop; the stream then ends with what was written so far."""
    message = owned_or_404(Message, message_id)
    if message.status not in FINAL_STATUSES:
        message.stop_requested = True
        if message.status == PENDING:
            # Not started yet: it ends here, and its stream will only send the final HTML.
            message.status, message.error, message.html = STOPPED, STOPPED_BY_USER, ""
            message.finished_at = message.updated_at = utcnow()
        db.session.commit()
        stops.cancel(message_id)
    if is_htmx():
        return Response(status=204)
    return redirect(url_for("chat.conversation", conversation_id=message.conversation_id,
                            _anchor=f"m-{message_id}"), code=303)


@bp.post("/m/<int:message_id>/retry")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def retry(message_id: int):
    """Generate a failed or stopped answer again (it must be the conversation's last)."""
    answer = owned_or_404(Message, message_id)
    try:
        retry_answer(answer, current_user)
    except TurnError as exc:
        if is_htmx():
            return render_template("_composer_error.html", error=exc.message), exc.status
        flash(exc.message, "error")
        return redirect(url_for("chat.conversation", conversation_id=answer.conversation_id),
                        code=303)
    if not is_htmx():
        return answer_now(answer)
    return get_template_attribute("chat/_macros.html", "message")(answer)


@bp.get("/m/<int:message_id>")
@login_required
def message(message_id: int):
    """One message's HTML (its current state; a running answer past its deadline is ended
    first, so a page whose stream broke learns here how it ended)."""
    message = owned_or_404(Message, message_id)
    if mark_interrupted(message):
        db.session.commit()
    return get_template_attribute("chat/_macros.html", "message")(message)

