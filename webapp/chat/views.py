"""The chat's routes: the page, the sidebar list, posting a message, an answer's stream, Stop,
Retry, Regenerate, Edit, Continue, choosing a version, and one message as it stands. Each reads
the request and hands over to the modules beside it (``pages``, ``replies``, ``answers``,
``events``, ``sidebar``)."""

from __future__ import annotations

from flask import Response, abort, current_app, request
from flask_login import current_user, login_required

from ..extensions import limiter
from ..htmx import fragment, is_htmx
from ..models import FINAL_STATUSES, Conversation, Message
from ..queries import owned_or_404
from . import bp, fragments
from .answers import begin_if_pending, bring_up_to_date, stop_answer
from .events import answer_stream, resume_offset
from .limits import message_limit, person_key
from .pages import render_page
from .replies import (
    back_to,
    chosen,
    continued,
    edit_form,
    edited,
    new_conversation,
    new_message,
    regenerated,
    retried,
)
from .sidebar import item, sidebar_page


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
    items, more, busy = sidebar_page(current_user.id, page)
    current = request.args.get("current", 0, type=int)
    return fragment(fragments.sidebar_items(items, more, page, current, busy))


@bp.get("/conversations/<int:conversation_id>/item")
@login_required
def sidebar_item(conversation_id: int):
    """One conversation's item in the sidebar list, as it stands (an item marked as having an
    answer being written, or a title coming, asks for itself again until it is done); the
    open conversation's item carries the page's title and heading too (``sidebar.item``)."""
    conversation = owned_or_404(Conversation, conversation_id)
    return fragment(item(conversation, request.args.get("current", 0, type=int)))


@bp.get("/c/<int:conversation_id>")
@login_required
def conversation(conversation_id: int):
    """A conversation with its history and the composer. ``?show=N`` shows the version of the
    conversation that holds message N (a search hit; the version kept on the server changes
    only when the person acts there: a new message, a version chosen), ``?edit=N`` shows
    message N as its edit form (the way to edit without JavaScript)."""
    return render_page(owned_or_404(Conversation, conversation_id),
                       editing=request.args.get("edit", type=int),
                       show=request.args.get("show", type=int))


@bp.post("/c")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def create():
    """Start a new conversation with its first message."""
    return new_conversation(request.form.get("content", ""))


@bp.post("/c/<int:conversation_id>/messages")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def post_message(conversation_id: int):
    """Add the person's message and a pending answer to a conversation."""
    conversation = owned_or_404(Conversation, conversation_id)
    return new_message(conversation, request.form.get("content", ""),
                       request.form.get("shown", type=int))


@bp.get("/m/<int:message_id>/stream")
@login_required
def stream(message_id: int):
    """The answer as an event stream: escaped text as it comes, then the final HTML (at once
    for a finished answer). It starts after the page's ``Last-Event-ID`` when it reconnects
    (or ``?last=``, the same from a page restarting a silent stream), else after ``?after=``
    (the text its page was rendered with)."""
    message = owned_or_404(Message, message_id)
    if message.role != "assistant":
        abort(404)
    begin_if_pending(message)
    last_event_id = request.headers.get("Last-Event-ID", request.args.get("last"))
    after = resume_offset(last_event_id, request.args.get("after"))
    return answer_stream(current_app._get_current_object(), message_id, after,
                         resync=last_event_id is not None,
                         running=message.status not in FINAL_STATUSES)


@bp.post("/m/<int:message_id>/stop")
@login_required
def stop(message_id: int):
    """Ask for the answer to stop; the stream then ends with what was written so far."""
    message = owned_or_404(Message, message_id)
    stop_answer(message)
    if is_htmx():
        return Response(status=204)
    return back_to(message)


@bp.post("/m/<int:message_id>/retry")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def retry(message_id: int):
    """Generate a failed or stopped answer again (it must be the conversation's last)."""
    return retried(owned_or_404(Message, message_id))


@bp.post("/m/<int:message_id>/regenerate")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def regenerate(message_id: int):
    """A new version of an answer, generated with the current settings (the others stay)."""
    return regenerated(owned_or_404(Message, message_id))


@bp.post("/m/<int:message_id>/continue")
@login_required
@limiter.limit(message_limit, key_func=person_key)
def continue_(message_id: int):
    """Ask the provider to go on with an answer that was stopped or cut at its length."""
    return continued(owned_or_404(Message, message_id))


@bp.route("/m/<int:message_id>/edit", methods=["GET", "POST"])
@login_required
@limiter.limit(message_limit, key_func=person_key, exempt_when=lambda: request.method == "GET")
def edit(message_id: int):
    """The person's message as a form to edit it in place (GET); send the edited version
    (POST: a new version of the message, with its answer; the old branch stays). One rule for
    both, so an id past the database answers 404 to either method."""
    message = owned_or_404(Message, message_id)
    if request.method == "GET":
        return edit_form(message)
    return edited(message, request.form.get("content", ""))


@bp.post("/m/<int:message_id>/choose")
@login_required
def choose(message_id: int):
    """Show this version of a message (kept on the server: reloads, tabs and shares agree)."""
    return chosen(owned_or_404(Message, message_id))


@bp.get("/m/<int:message_id>")
@login_required
def message(message_id: int):
    """One message's HTML as it stands (a running answer past its deadline is ended first,
    so a page whose stream broke learns here how it ended)."""
    message = bring_up_to_date(owned_or_404(Message, message_id))
    return fragment(fragments.message(message))
