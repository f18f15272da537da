"""How the chat answers a request that starts an answer. The answer is started at once, on the
server, and generated to its end whoever watches; the request is answered with the turn's HTML
(htmx; the answer's element opens its stream), with a new conversation's address (htmx), or,
without JavaScript, with a redirect to the conversation, whose page shows the answer so far
and refreshes itself until it is done."""

from __future__ import annotations

from flask import Response, flash, redirect, url_for
from flask_login import current_user

from ..errors import error_fragment
from ..htmx import fragment, is_htmx
from ..models import Conversation, Message
from . import fragments
from .answers import begin
from .pages import render_page
from .sidebar import conversation_list_oob
from .turns import TurnError, retry_answer, start_turn


def back_to(message: Message) -> Response:
    """To the message on its conversation's page (after a form posted without JavaScript)."""
    return redirect(url_for("chat.conversation", conversation_id=message.conversation_id,
                            _anchor=f"m-{message.id}"), code=303)


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
    begin(answer)
    if not is_htmx():
        return back_to(answer)
    # A new conversation gets its own page (and address); the stream starts there.
    response = Response(status=200)
    response.headers["HX-Redirect"] = url_for("chat.conversation",
                                              conversation_id=conversation.id)
    return response


def new_message(conversation: Conversation, content: str):
    """Add ``content`` and its answer to ``conversation`` and start the answer: the turn's
    HTML for htmx (its answer then opens its stream), else back to the page."""
    try:
        conversation, user_message, answer = start_turn(conversation, current_user, content)
    except TurnError as exc:
        return refused(exc, conversation, content)
    begin(answer)
    if not is_htmx():
        return back_to(answer)
    # The conversation moved to the top of the sidebar: the list follows out of band.
    sidebar = conversation_list_oob(current_user.id, conversation.id)
    return fragment(fragments.turn(user_message, answer) + sidebar)


def retried(answer: Message):
    """Generate a failed or stopped answer again: its new state for htmx (it then opens its
    stream), else back to the page (with the reason when it cannot be)."""
    try:
        retry_answer(answer, current_user)
    except TurnError as exc:
        if is_htmx():
            return error_fragment(exc.message, exc.status)
        flash(exc.message, "error")
        return redirect(url_for("chat.conversation", conversation_id=answer.conversation_id),
                        code=303)
    begin(answer)
    if not is_htmx():
        return back_to(answer)
    return fragment(fragments.message(answer))
