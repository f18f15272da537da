"""How the chat answers a request that starts an answer. The answer is started at once, on the
server, and generated to its end whoever watches; the request is answered with the turn's HTML
(htmx; the answer's element opens its stream), with a new conversation's address (htmx), or,
without JavaScript, with a redirect to the conversation, whose page shows the answer so far
and refreshes itself until it is done."""

from __future__ import annotations

from flask import Response, flash, redirect, url_for
from flask_login import current_user

from .. import tree
from ..errors import error_fragment
from ..extensions import db
from ..htmx import fragment, is_htmx
from ..models import Conversation, Message
from . import fragments
from .answers import begin
from .pages import render_page
from .sidebar import conversation_list_oob
from .turns import (
    TurnError,
    continue_answer,
    edit_message,
    regenerate_answer,
    retry_answer,
    start_turn,
)


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


def new_message(conversation: Conversation, content: str, shown: int | None = None):
    """Add ``content`` and its answer to ``conversation`` (after ``shown``, the last message
    the page showed, see ``start_turn``) and start the answer: the turn's HTML for htmx (its
    answer then opens its stream), else back to the page."""
    try:
        conversation, user_message, answer = start_turn(conversation, current_user, content,
                                                        shown)
    except TurnError as exc:
        return refused(exc, conversation, content)
    begin(answer)
    if not is_htmx():
        return back_to(answer)
    # The conversation moved to the top of the sidebar: the list follows out of band.
    sidebar = conversation_list_oob(current_user.id, conversation.id)
    return fragment(fragments.turn(user_message, answer) + sidebar
                    + fragments.composer_shown(answer.id))


def _not_done(exc: TurnError, message: Message):
    """A request on a message that cannot be done: the reason for htmx (under the composer),
    else back to the page with the reason."""
    if is_htmx():
        return error_fragment(exc.message, exc.status)
    flash(exc.message, "error")
    return redirect(url_for("chat.conversation", conversation_id=message.conversation_id),
                    code=303)


def retried(answer: Message):
    """Generate a failed or stopped answer again: its new state for htmx (it then opens its
    stream), else back to the page (with the reason when it cannot be)."""
    try:
        retry_answer(answer, current_user)
    except TurnError as exc:
        return _not_done(exc, answer)
    begin(answer)
    if not is_htmx():
        return back_to(answer)
    return fragment(fragments.message(answer))


def continued(answer: Message):
    """Go on with a stopped or cut answer: its new state for htmx (the text so far, then its
    stream), else back to the page."""
    try:
        continue_answer(answer, current_user)
    except TurnError as exc:
        return _not_done(exc, answer)
    begin(answer, going_on=True)
    if not is_htmx():
        return back_to(answer)
    return fragment(fragments.message(answer))


def _path_changed(conversation: Conversation, shown: Message, moved: bool):
    """After the current path changed: for htmx the conversation's messages as they now
    stand (and the sidebar when the conversation ``moved`` to its top), else back to
    ``shown`` on the page."""
    if not is_htmx():
        return back_to(shown)
    messages, shape = tree.path_messages(conversation.id)
    html = fragments.messages(messages, shape)
    html += fragments.composer_shown(messages[-1].id if messages else None)
    if moved:
        html += conversation_list_oob(current_user.id, conversation.id)
    return fragment(html)


def regenerated(answer: Message):
    """A new version of ``answer``, started; the conversation shows it."""
    try:
        new = regenerate_answer(answer, current_user)
    except TurnError as exc:
        return _not_done(exc, answer)
    begin(new)
    return _path_changed(new.conversation, new, moved=True)


def edit_form(message: Message):
    """The person's message as an edit form: in place for htmx, else on its page."""
    if message.role != "user":
        return _not_done(TurnError("Only your own messages can be edited.", 409), message)
    if is_htmx():
        return fragment(fragments.edit_form(message))
    return redirect(url_for("chat.conversation", conversation_id=message.conversation_id,
                            edit=message.id, _anchor=f"m-{message.id}"), code=303)


def edited(message: Message, content: str):
    """Send a new version of the person's message with ``content``, and its answer."""
    try:
        new, answer = edit_message(message, current_user, content)
    except TurnError as exc:
        if is_htmx():
            return error_fragment(exc.message, exc.status)
        db.session.rollback()
        return render_page(message.conversation, error=exc.message, editing=message.id,
                           edit_draft=content, status=exc.status)
    begin(answer)
    return _path_changed(new.conversation, answer, moved=True)


def chosen(message: Message):
    """Show ``message``'s version (and the path through it)."""
    tree.choose(message.conversation_id, message.id)
    db.session.commit()
    return _path_changed(message.conversation, message, moved=False)
