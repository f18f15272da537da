"""The settings routes: a person's defaults, the model field for a chosen provider, and the
person's API keys and calls."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import providers
from ..htmx import fragment, is_htmx, macro
from . import api_keys, bp
from .forms import GenerationForm
from .storage import FORM_MACROS, build_form, save_defaults
from .values import from_user


def _form_fragment(form: GenerationForm, status: int = 200, saved: bool = False):
    """The defaults form alone, for htmx."""
    return fragment(macro(FORM_MACROS, "generation_form")(
        form, url_for("settings.defaults"), saved=saved), status)


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def defaults():
    """A person's defaults for new answers."""
    form = build_form(from_user(current_user.settings))
    if request.method == "GET":
        return render_template("settings/page.html", form=form)
    if not form.validate():
        if is_htmx():
            return _form_fragment(form, 422)
        return render_template("settings/page.html", form=form), 422
    save_defaults(form)
    if is_htmx():
        return _form_fragment(form, saved=True)
    flash("Settings saved. New answers use them.", "ok")
    return redirect(url_for("settings.defaults"), code=303)


@bp.get("/settings/models")
@login_required
def models():
    """The model field for one provider (htmx swaps it in when the provider changes)."""
    form = GenerationForm(formdata=None)
    form.set_choices(providers(), request.args.get("provider"))
    form.model.data = request.args.get("model")
    return fragment(macro(FORM_MACROS, "model_field")(form))


@bp.get("/settings/api-keys")
@login_required
def api_keys_page():
    """How to call the API, the person's keys and their latest calls."""
    return render_template(api_keys.PAGE, **api_keys.context(current_user))


@bp.post("/settings/api-keys")
@login_required
def create_api_key():
    """Make a named key and show it, once, on this answer (422 and the form as it was sent
    when the name or the number of keys is refused)."""
    made = api_keys.create(current_user, request.form.get("name"))
    return api_keys.created(current_user, made)


@bp.post("/settings/api-keys/<int:key_id>/revoke")
@login_required
def revoke_api_key(key_id: int):
    """Revoke one of the person's keys (again: nothing changes)."""
    key, now = api_keys.revoke(key_id)
    words = api_keys.revoked_words(key, now)
    if is_htmx():
        return api_keys.key_list_fragment(current_user, words)
    flash(words, "ok")
    return redirect(url_for("settings.api_keys_page"), code=303)
