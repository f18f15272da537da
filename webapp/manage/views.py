"""The routes that manage conversations: rename, pin, delete, a conversation's settings,
search, export and import."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

from ..chat.pages import render_page
from ..errors import render_error
from ..extensions import csrf, db, providers
from ..htmx import fragment, is_htmx, macro
from ..models import Conversation
from ..queries import owned_or_404
from ..queries.search import search as run_search
from ..settings.storage import conversation_settings_fragment, save_conversation_settings
from . import bp
from .exports import (
    ImportRejected,
    download,
    everything_of,
    import_limit,
    megabytes,
    read_export,
    slug,
    store,
    to_json,
    to_markdown,
)


def back(conversation: Conversation, anchor: str | None = None):
    """Back to the conversation's page (at ``anchor``)."""
    return redirect(url_for("chat.conversation", conversation_id=conversation.id,
                            _anchor=anchor), code=303)


@bp.post("/c/<int:conversation_id>/rename")
@login_required
def rename(conversation_id: int):
    """Give a conversation a new title."""
    conversation = owned_or_404(Conversation, conversation_id)
    title = " ".join(request.form.get("title", "").split())
    if "\x00" in title:  # PostgreSQL cannot store it: refused in words, not a 500
        return render_error(400, "A title cannot hold a NUL character; it was not changed.")
    if not title or len(title) > 200:
        flash("A title needs 1 to 200 characters; it was not changed.", "error")
        return back(conversation)
    conversation.title = title
    conversation.title_renamed = True  # no generated title replaces the person's own
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
        return fragment(conversation_settings_fragment(conversation, form, saved),
                        200 if saved else 422)
    if saved:
        flash("This chat's settings are saved; the next answer uses them.", "ok")
        return back(conversation, "chat-settings")
    return render_page(conversation, settings_form=form, status=422)


@bp.post("/c/<int:conversation_id>/settings/reset")
@login_required
def reset_settings(conversation_id: int):
    """Go back to the person's default settings for this conversation."""
    conversation = owned_or_404(Conversation, conversation_id)
    conversation.settings = None
    db.session.commit()
    if is_htmx():  # a fresh form, and the "Chat settings •" mark out of band
        return fragment(conversation_settings_fragment(conversation))
    flash("This chat uses your default settings again.", "ok")
    return back(conversation, "chat-settings")


@bp.get("/search")
@login_required
def search():
    """Conversations whose title or messages match the query."""
    q = request.args.get("q", "")
    hits = run_search(current_user.id, q)
    if is_htmx():
        return fragment(macro("manage/_macros.html", "search_results")(hits, q))
    return render_template("manage/search.html", hits=hits, q=q)


@bp.get("/c/<int:conversation_id>/export.md")
@login_required
def export_markdown(conversation_id: int):
    """Download one conversation as Markdown."""
    conversation = owned_or_404(Conversation, conversation_id)
    return download(to_markdown(conversation), "text/markdown",
                    f"{slug(conversation.title)}.md")


@bp.get("/c/<int:conversation_id>/export.json")
@login_required
def export_json(conversation_id: int):
    """Download one conversation as JSON (importable)."""
    conversation = owned_or_404(Conversation, conversation_id)
    return download(to_json([conversation]), "application/json",
                    f"{slug(conversation.title)}.json")


@bp.get("/export.json")
@login_required
def export_all():
    """Download all of a person's conversations as JSON (importable)."""
    return download(to_json(everything_of(current_user.id)), "application/json",
                    "conversations.json")


def _data_page(status: int = 200):
    return render_template("manage/data.html", import_limit=megabytes(import_limit())), status


@bp.get("/data")
@login_required
def data():
    """The export and import page."""
    return _data_page()


def _refused(message: str, status: int):
    """An import refused: the data page with the message, or for htmx the message alone."""
    if is_htmx():
        return render_error(status, message)
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
                        f"{megabytes(limit)}.", 413)
    if upload is None or not upload.filename:
        return _refused("Choose a JSON export file to import.", 422)
    try:
        count = store(read_export(upload.read(limit + 1), providers()), current_user.id)
    except ImportRejected as exc:
        return _refused(f"Nothing was imported: {exc}.", exc.status)
    flash(f"Imported {count} conversation{'s' if count != 1 else ''}.", "ok")
    return redirect(url_for("chat.index"), code=303)
