"""Saving generation settings (a person's defaults, a conversation's own), and the settings
form and htmx fragment of a conversation."""

from __future__ import annotations

from flask import request, url_for
from flask_login import current_user

from ..extensions import db, providers
from ..htmx import macro
from ..models import Conversation, UserSettings
from .forms import GenerationForm
from .values import FIELDS, effective

#: The settings form's macro (``settings/_macros.html``), as pages and fragments render it.
FORM_MACROS = "settings/_macros.html"


def build_form(values: dict | None = None) -> GenerationForm:
    """The form, filled from ``values`` on GET or from the posted data on POST."""
    registry = providers()
    form = GenerationForm(data=values) if request.method == "GET" else GenerationForm()
    if request.method == "GET" and values is not None and values.get("provider") not in registry:
        form.provider.data = registry.default
    form.set_choices(registry)
    return form


def save_defaults(form: GenerationForm) -> None:
    """Store the (validated) form as the signed-in person's defaults."""
    settings = current_user.settings or UserSettings(user_id=current_user.id)
    for name, value in form.values().items():
        setattr(settings, name, value)
    current_user.settings = settings
    db.session.commit()


def conversation_form(conversation: Conversation) -> GenerationForm:
    """The settings form of a conversation (its own values, else the person's)."""
    return build_form(effective(current_user, conversation))


def save_conversation_settings(conversation: Conversation) -> tuple[GenerationForm, bool]:
    """Validate the posted form and store it as the conversation's own settings."""
    form = build_form(None)
    if not form.validate():
        return form, False
    conversation.settings = {name: value for name, value in form.values().items()
                             if name in FIELDS}
    db.session.commit()
    return form, True


def conversation_settings_fragment(conversation: Conversation,
                                   form: GenerationForm | None = None,
                                   saved: bool = False) -> str:
    """For htmx: the conversation's settings form (``form``, or a fresh one from what it now
    uses) plus, out of band, the "Chat settings •" mark and the hint with its reset button, so
    the page agrees with the database after a save or a reset without a reload."""
    if form is None:
        form = GenerationForm(formdata=None, data=effective(current_user, conversation))
        form.set_choices(providers())
    html = macro(FORM_MACROS, "generation_form")(
        form, url_for("manage.conversation_settings", conversation_id=conversation.id),
        saved=saved, form_id="chat-settings-form")
    mark = macro("chat/_settings_state.html", "mark")
    state = macro("chat/_settings_state.html", "state")
    return str(html) + str(mark(conversation, oob=True)) + str(state(conversation, oob=True))
