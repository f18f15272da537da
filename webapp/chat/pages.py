"""The chat page: the sidebar, the conversation (if any) with its tools, and the composer."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_login import current_user

from .. import tree
from ..extensions import db, providers
from ..models import Conversation
from ..settings.forms import GenerationForm
from ..settings.storage import conversation_form
from ..streaming import mark_interrupted
from .sidebar import sidebar_page


def conversation_context(conversation: Conversation,
                         settings_form: GenerationForm | None = None,
                         show: int | None = None) -> dict[str, Any]:
    """What the page shows of a conversation: the messages of its current path, or of the
    path through message ``show`` (running answers past their deadline ended first), its
    shared link, and its settings form (``settings_form`` when the page shows one refused,
    else a fresh one)."""
    messages, shape = tree.path_messages(conversation.id, through=show)
    if any(mark_interrupted(m) for m in messages):
        db.session.commit()
    share = conversation.shares[0] if conversation.shares else None
    return {"messages": messages, "tree": shape, "share": share,
            "settings_form": settings_form or conversation_form(conversation)}


def render_page(conversation: Conversation | None, *, error: str | None = None,
                draft: str = "", settings_form: GenerationForm | None = None,
                editing: int | None = None, edit_draft: str | None = None,
                show: int | None = None, status: int = 200) -> tuple[str, int]:
    """The chat page of ``conversation`` (a new chat when None), with ``error`` and ``draft``
    in the composer when a message was refused, and message ``editing`` shown as its edit
    form (with ``edit_draft`` when an edit was refused), the path through message ``show``
    instead of the current one; as a response and its status."""
    conversations, more, running = sidebar_page(current_user.id, 1)
    shown = ({"messages": [], "tree": None, "share": None, "settings_form": settings_form}
             if conversation is None else conversation_context(conversation, settings_form, show))
    page = render_template("chat/page.html", conversation=conversation,
                           conversations=conversations, more=more, running=running,
                           error=error, draft=draft, editing=editing, edit_draft=edit_draft,
                           default_label=providers().default_provider().label, **shown)
    return page, status
