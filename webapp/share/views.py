"""The shared-link routes: make or update a link, list and revoke them, view and copy one."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..chat.pages import render_page
from ..errors import render_error
from ..extensions import db
from ..htmx import is_htmx
from ..models import Conversation, Share
from ..queries import owned_or_404, shares
from ..settings.schema import Invalid
from . import bp, links
from .snapshots import check_snapshot, shown_messages, take_snapshot


def _refused(message: str, status: int, conversation: Conversation | None = None):
    """A snapshot that cannot be made, shown or copied: the message, on the conversation's
    page when there is one, else on an error page; for htmx the message alone."""
    if is_htmx() or conversation is None:
        return render_error(status, message)
    flash(message, "error")
    return render_page(conversation, status=status)


@bp.get("/shares")
@login_required
def index():
    """All of a person's shared links."""
    return render_template("share/index.html",
                           shares=db.session.scalars(shares.for_user(current_user.id)).all())


@bp.post("/c/<int:conversation_id>/share")
@login_required
def create(conversation_id: int):
    """Share a conversation, or update its link's snapshot to the conversation as it is now."""
    conversation = owned_or_404(Conversation, conversation_id)
    include = request.form.get("include_system_prompt") in ("1", "on", "true", "y")
    try:
        snapshot = take_snapshot(conversation, include)
    except Invalid as exc:
        return _refused(f"This conversation cannot be shared: {exc}.", exc.status,
                        conversation)
    if links.publish(conversation, snapshot, include):
        flash("Link created: anyone with it can read this conversation as it is now.", "ok")
    else:
        flash("Link updated: it now shows the conversation as it is now.", "ok")
    return redirect(url_for("chat.conversation", conversation_id=conversation.id,
                            _anchor="share"), code=303)


@bp.post("/shares/<int:share_id>/revoke")
@login_required
def revoke(share_id: int):
    """Revoke a link: from now on it answers 404."""
    share = owned_or_404(Share, share_id)
    conversation_id = share.conversation_id
    links.revoke(share)
    flash("Link revoked.", "ok")
    if request.form.get("next") == "conversation":
        return redirect(url_for("chat.conversation", conversation_id=conversation_id), code=303)
    return redirect(url_for("share.index"), code=303)


@bp.get("/s/<token>")
def view(token: str):
    """The shared snapshot, read-only, for anyone with the link (unless sign-in is required)."""
    if current_app.config["SHARE_REQUIRES_LOGIN"] and not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    share = links.live_share(token)
    try:
        snapshot = check_snapshot(share.snapshot)
    except Invalid as exc:
        return _refused(f"This shared conversation cannot be shown: {exc}.", exc.status)
    response = current_app.make_response(render_template(
        "share/view.html", share=share, snapshot=snapshot, messages=shown_messages(snapshot)))
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/s/<token>/copy")
@login_required
def copy(token: str):
    """Continue a shared conversation as a copy of one's own."""
    share = links.live_share(token)
    try:
        snapshot = check_snapshot(share.snapshot)
    except Invalid as exc:
        return _refused(f"This shared conversation cannot be copied: {exc}. Nothing was "
                        "copied.", exc.status)
    conversation = links.copy_for(current_user, snapshot)
    flash("This is your own copy: carry on.", "ok")
    return redirect(url_for("chat.conversation", conversation_id=conversation.id), code=303)
