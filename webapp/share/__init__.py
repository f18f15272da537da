"""Shared links: read-only snapshots of a conversation, revocable, readable without an account."""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from ..errors import error_fragment
from ..extensions import db
from ..htmx import is_htmx
from ..manage.imports import CONTENT_CHARS, MODEL_CHARS, PROVIDER_CHARS, TITLE_CHARS
from ..models import COMPLETE, FINAL_STATUSES, Conversation, Message, Share, utcnow
from ..queries import owned_or_404, shares
from ..rendering import message_html
from ..settings.schema import Invalid, check_params, check_system_prompt, check_text, kind
from ..settings.values import from_user

bp = Blueprint("share", __name__)

#: Fields of a message that a share shows (never the error text or the system prompt).
_MESSAGE_FIELDS = ("role", "content", "status", "provider", "model")


#: What ``new_token`` makes: URL-safe base64, at most the column's 64 characters.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_token() -> str:
    """32 random bytes, URL-safe: 256 bits, so links cannot be guessed."""
    return secrets.token_urlsafe(32)


#: Longest rendered answer a snapshot holds: its HTML is ours (sanitized when rendered), so
#: this only bounds what a damaged row could make a page print.
HTML_CHARS = 10_000_000


def system_prompt_of(conversation: Conversation) -> str:
    """The system prompt the conversation's latest answer was generated with (a value stored
    by an older import that is not a valid prompt is passed over)."""
    for message in reversed(conversation.messages):
        prompt = message.params.get("system_prompt") if isinstance(message.params, dict) \
            else None
        if message.role == "assistant" and prompt:
            try:
                return check_system_prompt(prompt)
            except Invalid:
                continue
    return ""


def _shown_params(params) -> dict[str, Any]:
    """An answer's parameters as a share shows them: never the system prompt, and nothing a
    schema check refuses (rows stored by an older import may hold anything)."""
    try:
        checked = check_params(params) or {}
    except Invalid:
        return {}
    checked.pop("system_prompt", None)
    return checked


def _optional(item: dict, key: str, limit: int) -> str | None:
    value = item.get(key)
    return None if value is None else check_text(value, f"“{key}”", limit)


def check_snapshot(snapshot: Any) -> dict[str, Any]:
    """``snapshot`` if it is one a page can show and a copy can continue, else ``Invalid``
    saying what is wrong. Checked when a link is made, shown and copied: a snapshot stored
    before these checks may hold anything."""
    if not isinstance(snapshot, dict):
        raise Invalid(f"the snapshot is {kind(snapshot)}, not an object")
    check_text(snapshot.get("title"), "its title", TITLE_CHARS)
    if snapshot.get("system_prompt") is not None:
        check_system_prompt(snapshot["system_prompt"])
    messages = snapshot.get("messages")
    if not isinstance(messages, list):
        raise Invalid(f"its messages are {kind(messages)}, not a list")
    for number, item in enumerate(messages, 1):
        try:
            if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
                raise Invalid("it needs a role of “user” or “assistant”")
            check_text(item.get("content"), "“content”", CONTENT_CHARS)
            if item.get("status") not in (None, *FINAL_STATUSES):
                raise Invalid("“status” must be one of " + ", ".join(FINAL_STATUSES))
            _optional(item, "html", HTML_CHARS)
            _optional(item, "provider", PROVIDER_CHARS)
            _optional(item, "model", MODEL_CHARS)
            try:
                check_params(item.get("params"))
            except Invalid as exc:
                raise type(exc)(f"“params”: {exc}") from None
        except Invalid as exc:
            raise type(exc)(f"message {number}: {exc}") from None
    return snapshot


def take_snapshot(conversation: Conversation, include_system_prompt: bool) -> dict[str, Any]:
    """The conversation as it is now: finished messages only, system prompt only if asked."""
    messages = []
    for message in conversation.messages:
        if message.status not in FINAL_STATUSES or (message.role == "assistant"
                                                     and not message.content):
            continue
        item = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
        item["params"] = _shown_params(message.params)
        if message.role == "assistant":
            item["html"] = str(message_html(message))
        item["created_at"] = message.created_at.isoformat(timespec="seconds")
        messages.append(item)
    return check_snapshot({
        "title": conversation.title,
        "system_prompt": system_prompt_of(conversation) if include_system_prompt else None,
        "messages": messages,
        "taken_at": utcnow().isoformat(timespec="seconds"),
    })


def live_share(token: str) -> Share:
    """The share behind a link, or 404 (revoked, mistyped, or never existed)."""
    # Only a token's own alphabet reaches the database (PostgreSQL refuses a NUL in text).
    if not _TOKEN.fullmatch(token):
        abort(404)
    share = db.session.scalar(shares.by_token(token))
    if share is None:
        abort(404)
    return share


def _refused(message: str, status: int, conversation: Conversation | None = None):
    """A snapshot that cannot be made, shown or copied: the message, on the conversation's
    page when there is one, else on an error page; for htmx the message alone."""
    if is_htmx():
        return error_fragment(message, status)
    if conversation is not None:
        from ..chat.pages import render_page  # the conversation page, with this message

        flash(message, "error")
        return render_page(conversation, status=status)
    return render_template("error.html", status=status, message=message), status


@bp.get("/shares")
@login_required
def index():
    """All of a person's shared links."""
    links = db.session.scalars(shares.for_user(current_user.id)).all()
    return render_template("share/index.html", shares=links)


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
    share = db.session.scalar(shares.of_conversation(conversation.id))
    now = utcnow()
    if share is None:
        share = Share(token=new_token(), conversation_id=conversation.id,
                      user_id=current_user.id, created_at=now, snapshot=snapshot)
        db.session.add(share)
        flash("Link created: anyone with it can read this conversation as it is now.", "ok")
    else:
        flash("Link updated: it now shows the conversation as it is now.", "ok")
    share.include_system_prompt = include
    share.snapshot = snapshot
    share.updated_at = now
    db.session.commit()
    return redirect(url_for("chat.conversation", conversation_id=conversation.id,
                            _anchor="share"), code=303)


@bp.post("/shares/<int:share_id>/revoke")
@login_required
def revoke(share_id: int):
    """Revoke a link: from now on it answers 404."""
    share = owned_or_404(Share, share_id)
    conversation_id = share.conversation_id
    db.session.delete(share)
    db.session.commit()
    flash("Link revoked.", "ok")
    if request.form.get("next") == "conversation":
        return redirect(url_for("chat.conversation", conversation_id=conversation_id), code=303)
    return redirect(url_for("share.index"), code=303)


@bp.get("/s/<token>")
def view(token: str):
    """The shared snapshot, read-only, for anyone with the link (unless sign-in is required)."""
    if current_app.config["SHARE_REQUIRES_LOGIN"] and not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    share = live_share(token)
    try:
        snapshot = check_snapshot(share.snapshot)
    except Invalid as exc:
        return _refused(f"This shared conversation cannot be shown: {exc}.", exc.status)
    response = current_app.make_response(render_template("share/view.html", share=share,
                                                          snapshot=snapshot))
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/s/<token>/copy")
@login_required
def copy(token: str):
    """Continue a shared conversation as a copy of one's own."""
    share = live_share(token)
    try:
        snapshot = check_snapshot(share.snapshot)
    except Invalid as exc:
        return _refused(f"This shared conversation cannot be copied: {exc}. Nothing was "
                        "copied.", exc.status)
    now = utcnow()
    conversation = Conversation(user_id=current_user.id, title=snapshot["title"][:200],
                                created_at=now, updated_at=now)
    if snapshot.get("system_prompt"):
        conversation.settings = {**from_user(current_user.settings),
                                 "system_prompt": snapshot["system_prompt"]}
    db.session.add(conversation)
    for item in snapshot["messages"]:
        db.session.add(Message(conversation=conversation, role=item["role"],
                               content=item["content"], html=item.get("html"),
                               status=item.get("status") or COMPLETE,
                               provider=item.get("provider"), model=item.get("model"),
                               params=item.get("params"), created_at=now, updated_at=now))
    db.session.commit()
    flash("This is your own copy: carry on.", "ok")
    return redirect(url_for("chat.conversation", conversation_id=conversation.id), code=303)
