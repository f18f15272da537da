"""How the chat answers a request that starts an answer: as one event stream (htmx with SSE:
the turn, then its answer), as the turn's HTML (htmx; the answer opens its own stream), as a
new conversation's address (htmx), or, without JavaScript, by generating the whole answer in
the request and then showing the page."""

from __future__ import annotations

from flask import Response, current_app, flash, redirect, request, url_for
from flask_login import current_user

from ..errors import error_fragment
from ..htmx import fragment, is_htmx
from ..models import Conversation, Message
from ..streaming import job_for
from . import fragments
from .answers import generate_now
from .events import answer_stream
from .pages import render_page
from .sidebar import conversation_list_oob
from .turns import TurnError, retry_answer, start_turn


def wants_stream() -> bool:
    """Whether this htmx request takes an event stream as its answer (htmx's SSE extension
    says so in ``Accept``): then a turn is one request, the message and its answer's stream."""
    return is_htmx() and "text/event-stream" in request.headers.get("Accept", "")


def back_to(message: Message) -> Response:
    """To the message on its conversation's page (after a form posted without JavaScript)."""
    return redirect(url_for("chat.conversation", conversation_id=message.conversation_id,
                            _anchor=f"m-{message.id}"), code=303)


def answered_now(answer: Message) -> Response:
    """Without JavaScript: generate the whole answer in this request, then show the page."""
    generate_now(answer)
    return back_to(answer)


def refused(exc: TurnError, conversation: Conversation | None, draft: str):
    """A turn that could not start: the reason for htmx, else the page with the reason and
    the person's text still in the composer."""
    if is_htmx():
        return error_fragment(exc.message, exc.status)
    return render_page(conversation, error=exc.message, draft=draft, status=exc.status)


def new_conversation(content: str):
    """Start a conversation with ``content`` as its first message."""
    try:
        conversation, _, answer = start_turn(None, current_user, content)
    except TurnError as exc:
        return refused(exc, None, content)
    if not is_htmx():
        return answered_now(answer)
    # A new conversation gets its own page (and address); the stream starts there.
    response = Response(status=200)
    response.headers["HX-Redirect"] = url_for("chat.conversation",
                                              conversation_id=conversation.id)
    return response


def new_message(conversation: Conversation, content: str):
    """Add ``content`` and its answer to ``conversation``: with SSE the turn and the answer's
    stream in one response, else the turn's HTML (or, without JavaScript, the page)."""
    live = wants_stream()
    try:
        conversation, user_message, answer = start_turn(conversation, current_user, content,
                                                        claimed=live)
    except TurnError as exc:
        return refused(exc, conversation, content)
    if not is_htmx():
        return answered_now(answer)
    # The conversation moved to the top of the sidebar: the list follows out of band.
    sidebar = conversation_list_oob(current_user.id, conversation.id)
    if live:
        app = current_app._get_current_object()
        job = job_for(answer.id, answer.conversation_id, answer.provider, answer.model,
                      answer.params, app.config)
        turn = fragments.turn(user_message, answer, live=True)
        return answer_stream(app, answer.id, job, first=turn + sidebar)
    response = fragment(fragments.turn(user_message, answer) + sidebar)
    # The same address answers with an event stream when Accept asks for one.
    response.headers["Vary"] = "HX-Request, Accept"
    return response


def retried(answer: Message):
    """Generate a failed or stopped answer again: its new state for htmx (it then opens its
    stream), else the page once it is generated (or with the reason it cannot be)."""
    try:
        retry_answer(answer, current_user)
    except TurnError as exc:
        if is_htmx():
            return error_fragment(exc.message, exc.status)
        flash(exc.message, "error")
        return redirect(url_for("chat.conversation", conversation_id=answer.conversation_id),
                        code=303)
    if not is_htmx():
        return answered_now(answer)
    return fragment(fragments.message(answer))
