"""Settings pages: a person's generation defaults and a conversation's own settings."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from ..extensions import db, providers
from ..htmx import is_htmx
from ..models import UserSettings
from .forms import GenerationForm
from .values import FIELDS, effective, from_user

bp = Blueprint("settings", __name__)


def build_form(values: dict | None = None) -> GenerationForm:
    """The form, filled from ``values`` on GET or from the posted data on POST."""
    registry = providers()
    form = GenerationForm(data=values) if request.method == "GET" else GenerationForm()
    if request.method == "GET" and values is not None and values.get("provider") not in registry:
        form.provider.data = registry.default
    form.set_choices(registry)
    return form


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def defaults():
    """A person's defaults for new answers."""
    form = build_form(from_user(current_user.settings))
    if request.method == "POST":
        if form.validate():
            settings = current_user.settings or UserSettings(user_id=current_user.id)
            for name, value in form.values().items():
                setattr(settings, name, value)
            current_user.settings = settings
            db.session.commit()
            if is_htmx():
                return render_template("settings/_form.html", form=form, saved=True,
                                       action=url_for("settings.defaults"))
            flash("Settings saved. New answers use them.", "ok")
            return redirect(url_for("settings.defaults"), code=303)
        if is_htmx():
            return render_template("settings/_form.html", form=form,
                                   action=url_for("settings.defaults")), 422
        return render_template("settings/page.html", form=form), 422
    return render_template("settings/page.html", form=form)


@bp.get("/settings/models")
@login_required
def models():
    """The model field for one provider (htmx swaps it in when the provider changes)."""
    form = GenerationForm(formdata=None)
    form.set_choices(providers(), request.args.get("provider"))
    form.model.data = request.args.get("model")
    return render_template("settings/_model_field.html", form=form)


def conversation_form(conversation) -> GenerationForm:
    """The settings form of a conversation (its own values, else the person's)."""
    return build_form(effective(current_user, conversation))


def save_conversation_settings(conversation) -> tuple[GenerationForm, bool]:
    """Validate the posted form and store it as the conversation's own settings."""
    form = build_form(None)
    if not form.validate():
        return form, False
    conversation.settings = {name: value for name, value in form.values().items()
                             if name in FIELDS}
    db.session.commit()
    return form, True


def conversation_settings_fragment(conversation, form: GenerationForm | None = None,
                                   saved: bool = False) -> str:
    """For htmx: the conversation's settings form (``form``, or a fresh one from what it now
    uses) plus, out of band, the "Chat settings •" mark and the hint with its reset button, so
    the page agrees with the database after a save or a reset without a reload."""
    if form is None:
        form = GenerationForm(formdata=None, data=effective(current_user, conversation))
        form.set_choices(providers())
    html = render_template("settings/_form.html", form=form, saved=saved,
                           action=url_for("manage.conversation_settings",
                                          conversation_id=conversation.id),
                           form_id="chat-settings-form")
    mark = get_template_attribute("chat/_settings_state.html", "mark")
    state = get_template_attribute("chat/_settings_state.html", "state")
    return html + str(mark(conversation, oob=True)) + str(state(conversation, oob=True))
