"""Managing conversations: rename, delete, pin, per-chat settings, search, export, import."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from ..extensions import db
from ..htmx import is_htmx
from ..models import (
    COMPLETE,
    FINAL_STATUSES,
    STOPPED,
    Conversation,
    Message,
    utcnow,
)
from ..rendering import render_markdown
from ..search import search as run_search
from ..settings import conversation_settings_fragment, save_conversation_settings

bp = Blueprint("manage", __name__)

EXPORT_FORMAT = "equing-chat"
EXPORT_VERSION = 1
#: Bounds on an import, so one upload cannot fill the database.
IMPORT_MAX_CONVERSATIONS = 5000
IMPORT_MAX_MESSAGES = 2000


def owned(conversation_id: int) -> Conversation:
    conversation = db.session.scalar(Conversation.owned(conversation_id, current_user.id))
    if conversation is None:
        abort(404)
    return conversation


def back(conversation: Conversation, anchor: str | None = None):
    return redirect(url_for("chat.conversation", conversation_id=conversation.id,
                            _anchor=anchor), code=303)


@bp.post("/c/<int:conversation_id>/rename")
@login_required
def rename(conversation_id: int):
    """Give a conversation a new title."""
    conversation = owned(conversation_id)
    title = " ".join(request.form.get("title", "").split())
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
    conversation = owned(conversation_id)
    conversation.pinned = not conversation.pinned
    db.session.commit()
    return back(conversation)


@bp.route("/c/<int:conversation_id>/delete", methods=["GET", "POST"])
@login_required
def delete(conversation_id: int):
    """Ask, then delete a conversation with its messages and shared links."""
    conversation = owned(conversation_id)
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
    conversation = owned(conversation_id)
    form, saved = save_conversation_settings(conversation)
    if is_htmx():  # the form, and the "Chat settings •" mark out of band
        return conversation_settings_fragment(conversation, form, saved), 200 if saved else 422
    if saved:
        flash("This chat's settings are saved; the next answer uses them.", "ok")
        return back(conversation, "chat-settings")
    from ..chat import render_page  # the conversation page, with this form's errors

    return render_page(conversation, settings_form=form, status=422)


@bp.post("/c/<int:conversation_id>/settings/reset")
@login_required
def reset_settings(conversation_id: int):
    """Go back to the person's default settings for this conversation."""
    conversation = owned(conversation_id)
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
    conversation = owned(conversation_id)
    return _download(to_markdown(conversation), "text/markdown",
                     f"{_slug(conversation.title)}.md")


@bp.get("/c/<int:conversation_id>/export.json")
@login_required
def export_json(conversation_id: int):
    """Download one conversation as JSON (importable)."""
    conversation = owned(conversation_id)
    return _download(json.dumps(_envelope([conversation]), ensure_ascii=False, indent=1),
                     "application/json", f"{_slug(conversation.title)}.json")


@bp.get("/export.json")
@login_required
def export_all():
    """Download all of a person's conversations as JSON (importable)."""
    conversations = db.session.scalars(Conversation.for_user(current_user.id)).all()
    return _download(json.dumps(_envelope(conversations), ensure_ascii=False, indent=1),
                     "application/json", "conversations.json")


@bp.get("/data")
@login_required
def data():
    """The export and import page."""
    return render_template("manage/data.html")


class ImportError_(ValueError):
    """An import file that cannot be used; the message says why."""


def _text(item: dict, key: str, limit: int, default: str = "") -> str:
    value = item.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ImportError_(f"“{key}” must be text")
    return value[:limit]


def _time(item: dict, key: str) -> datetime | None:
    value = item.get(key)
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=None)
    except ValueError:
        return None


def import_data(data: Any, user_id: int) -> int:
    """Create conversations from an export; returns how many. Never changes existing ones."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ImportError_("this is not an Equing Chat export (no \"format\": \"equing-chat\")")
    if data.get("version") != EXPORT_VERSION:
        raise ImportError_(f"unknown export version {data.get('version')!r}")
    conversations = data.get("conversations")
    if not isinstance(conversations, list):
        raise ImportError_("“conversations” must be a list")
    if len(conversations) > IMPORT_MAX_CONVERSATIONS:
        raise ImportError_(f"at most {IMPORT_MAX_CONVERSATIONS} conversations at once")
    now = utcnow()
    for number, item in enumerate(conversations, 1):
        try:
            if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
                raise ImportError_("each conversation needs a “messages” list")
            if len(item["messages"]) > IMPORT_MAX_MESSAGES:
                raise ImportError_(f"at most {IMPORT_MAX_MESSAGES} messages a conversation")
            settings = item.get("settings")
            conversation = Conversation(
                user_id=user_id, title=_text(item, "title", 200, "Imported chat") or "Imported",
                pinned=bool(item.get("pinned")),
                settings=settings if isinstance(settings, dict) else None,
                created_at=_time(item, "created_at") or now,
                updated_at=_time(item, "updated_at") or now)
            db.session.add(conversation)
            for m in item["messages"]:
                if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                    raise ImportError_("each message needs a role of “user” or “assistant”")
                status = m.get("status") if m.get("status") in FINAL_STATUSES else STOPPED
                params = m.get("params")
                content = _text(m, "content", 200_000)
                db.session.add(Message(
                    conversation=conversation, role=m["role"], content=content,
                    html=str(render_markdown(content)) if m["role"] == "assistant" else None,
                    status=status,
                    provider=_text(m, "provider", 32) or None,
                    model=_text(m, "model", 128) or None,
                    params=params if isinstance(params, dict) else None,
                    error=_text(m, "error", 2000) or None,
                    created_at=_time(m, "created_at") or now,
                    finished_at=_time(m, "finished_at"), updated_at=now))
        except ImportError_ as exc:
            db.session.rollback()
            raise ImportError_(f"conversation {number}: {exc}") from None
    db.session.commit()
    return len(conversations)


@bp.post("/import")
@login_required
def import_json():
    """Import conversations from a JSON export (added as new conversations)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a JSON export file to import.", "error")
        return render_template("manage/data.html"), 422
    try:
        data = json.loads(upload.read().decode("utf-8"))
        count = import_data(data, current_user.id)
    except (UnicodeDecodeError, json.JSONDecodeError):
        flash("That file is not JSON; nothing was imported.", "error")
        return render_template("manage/data.html"), 422
    except ImportError_ as exc:
        flash(f"Nothing was imported: {exc}.", "error")
        return render_template("manage/data.html"), 422
    flash(f"Imported {count} conversation{'s' if count != 1 else ''}.", "ok")
    return redirect(url_for("chat.index"), code=303)
