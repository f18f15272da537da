"""Managing conversations: rename, delete, pin, per-chat settings, search, export, import."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import error_fragment
from ..extensions import csrf, db, providers
from ..htmx import is_htmx
from ..models import COMPLETE, Conversation, utcnow
from ..queries import conversations, owned_or_404
from ..search import search as run_search
from ..settings import conversation_settings_fragment, save_conversation_settings
from .imports import EXPORT_FORMAT, EXPORT_VERSION, Invalid, check_export, parse, store

bp = Blueprint("manage", __name__)


def back(conversation: Conversation, anchor: str | None = None):
    return redirect(url_for("chat.conversation", conversation_id=conversation.id,
                            _anchor=anchor), code=303)


@bp.post("/c/<int:conversation_id>/rename")
@login_required
def rename(conversation_id: int):
    """Give a conversation a new title."""
    conversation = owned_or_404(Conversation, conversation_id)
    title = " ".join(request.form.get("title", "").split())
    if "\x00" in title:  # PostgreSQL cannot store it: refused in words, not a 500
        message = "A title cannot hold a NUL character; it was not changed."
        if is_htmx():
            return error_fragment(message, 400)
        return render_template("error.html", status=400, message=message), 400
    if not title or len(title) > 200:
        flash("A title needs 1 to 200 characters; it was not changed.", "error")
        return back(conversation)
    conversation.title = title
    db.session.commit()
    return back(conversation)


@bp.post("/c/<int:conversation_id>/pin")
@login_required
def pin(conversation_id: int):
    """Pin a conversation to the top of the sidebar, or unpin it."""
    conversation = owned_or_404(Conversation, conversation_id)
    conversation.pinned = not conversation.pinned
    db.session.commit()
    return back(conversation)


@bp.route("/c/<int:conversation_id>/delete", methods=["GET", "POST"])
@login_required
def delete(conversation_id: int):
    """Ask, then delete a conversation with its messages and shared links."""
    conversation = owned_or_404(Conversation, conversation_id)
    if request.method == "GET":
        return render_template("manage/delete.html", conversation=conversation)
    db.session.delete(conversation)
    db.session.commit()
    flash(f"Deleted “{conversation.title}”.", "ok")
    return redirect(url_for("chat.index"), code=303)


@bp.post("/c/<int:conversation_id>/settings")
@login_required
def conversation_settings(conversation_id: int):
    """Give a conversation its own generation settings (from its next answer on)."""
    conversation = owned_or_404(Conversation, conversation_id)
    form, saved = save_conversation_settings(conversation)
    if is_htmx():  # the form, and the "Chat settings •" mark out of band
        return conversation_settings_fragment(conversation, form, saved), 200 if saved else 422
    if saved:
        flash("This chat's settings are saved; the next answer uses them.", "ok")
        return back(conversation, "chat-settings")
    from ..chat.pages import render_page  # the conversation page, with this form's errors

    return render_page(conversation, settings_form=form, status=422)


@bp.post("/c/<int:conversation_id>/settings/reset")
@login_required
def reset_settings(conversation_id: int):
    """Go back to the person's default settings for this conversation."""
    conversation = owned_or_404(Conversation, conversation_id)
    conversation.settings = None
    db.session.commit()
    if is_htmx():  # a fresh form, and the "Chat settings •" mark out of band
        return conversation_settings_fragment(conversation)
    flash("This chat uses your default settings again.", "ok")
    return back(conversation, "chat-settings")


@bp.get("/search")
@login_required
def search():
    """Conversations whose title or messages match the query."""
    q = request.args.get("q", "")
    hits = run_search(current_user.id, q)
    if is_htmx():
        return render_template("manage/_search_results.html", hits=hits, q=q)
    return render_template("manage/search.html", hits=hits, q=q)


# -- export and import -------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def export_conversation(conversation: Conversation) -> dict[str, Any]:
    """One conversation as plain data (the JSON export's element)."""
    return {
        "title": conversation.title,
        "pinned": conversation.pinned,
        "settings": conversation.settings,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "messages": [{
            "role": m.role, "content": m.content, "status": m.status, "provider": m.provider,
            "model": m.model, "params": m.params, "error": m.error,
            "created_at": _iso(m.created_at), "finished_at": _iso(m.finished_at),
        } for m in conversation.messages],
    }


def _envelope(conversations: list[Conversation]) -> dict[str, Any]:
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
            "exported_at": _iso(utcnow()),
            "conversations": [export_conversation(c) for c in conversations]}


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:50] or "conversation"


def _download(body: str, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def to_markdown(conversation: Conversation) -> str:
    """A conversation as a Markdown document."""
    lines = [f"# {conversation.title}", ""]
    for m in conversation.messages:
        if m.role == "user":
            lines += ["## You", "", m.content, ""]
        else:
            lines += [f"## Assistant ({m.provider or '?'} · {m.model or '?'})", "",
                      m.content or "", ""]
            if m.status != COMPLETE:
                lines += [f"*{m.error or m.status}*", ""]
    return "\n".join(lines)


@bp.get("/c/<int:conversation_id>/export.md")
@login_required
def export_markdown(conversation_id: int):
    """Download one conversation as Markdown."""
    conversation = owned_or_404(Conversation, conversation_id)
    return _download(to_markdown(conversation), "text/markdown",
                     f"{_slug(conversation.title)}.md")


@bp.get("/c/<int:conversation_id>/export.json")
@login_required
def export_json(conversation_id: int):
    """Download one conversation as JSON (importable)."""
    conversation = owned_or_404(Conversation, conversation_id)
    return _download(json.dumps(_envelope([conversation]), ensure_ascii=False, indent=1),
                     "application/json", f"{_slug(conversation.title)}.json")


@bp.get("/export.json")
@login_required
def export_all():
    """Download all of a person's conversations as JSON (importable)."""
    # All messages in one query: a full export of thousands of conversations otherwise costs
    # a query per conversation.
    everything = db.session.scalars(conversations.for_user(current_user.id).options(
        selectinload(Conversation.messages))).all()
    return _download(json.dumps(_envelope(everything), ensure_ascii=False, indent=1),
                     "application/json", "conversations.json")


@bp.get("/data")
@login_required
def data():
    """The export and import page."""
    return _data_page()


def import_limit() -> int:
    """Largest import file in bytes (MAX_IMPORT_BYTES): bigger than other requests' limit,
    so that everything a person can export imports back."""
    return int(current_app.config["MAX_IMPORT_BYTES"])


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


def _data_page(status: int = 200):
    return render_template("manage/data.html", import_limit=_megabytes(import_limit())), status


def _refused(message: str, status: int):
    """An import refused: the data page with the message, or for htmx the message alone."""
    if is_htmx():
        return error_fragment(message, status)
    flash(message, "error")
    return _data_page(status)


@bp.post("/import")
@csrf.exempt  # checked in the view, once the import's own size limit applies
@login_required
def import_json():
    """Import conversations from a JSON export (added as new conversations), all or nothing."""
    limit = import_limit()
    # The form is parsed by the CSRF check: raise the limit for this request first.
    request.max_content_length = limit
    try:
        csrf.protect()
        upload = request.files.get("file")
    except RequestEntityTooLarge:
        return _refused(f"Nothing was imported: the file is larger than the import limit of "
                        f"{_megabytes(limit)}.", 413)
    if upload is None or not upload.filename:
        return _refused("Choose a JSON export file to import.", 422)
    try:
        records = check_export(parse(upload.read(limit + 1)),
                               providers())
        count = store(records, current_user.id)
    except Invalid as exc:
        return _refused(f"Nothing was imported: {exc}.", exc.status)
    flash(f"Imported {count} conversation{'s' if count != 1 else ''}.", "ok")
    return redirect(url_for("chat.index"), code=303)
