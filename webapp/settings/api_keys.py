"""A person's side of the served API: how to call it, their keys (made, shown once, revoked)
and their latest calls, for the page ``/settings/api-keys``.

A new key is shown on the answer to the request that made it and nowhere else: not flashed
(that would put it in the session cookie), not behind a redirect, and the answer is
``Cache-Control: no-store`` so the browser keeps no copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, make_response, render_template, url_for

from ..api.catalog import listed, parse_aliases, resolve
from ..api.keys import MOST_NAME_CHARS, KeyRefused, create_key, revoke_key
from ..api.wire import ApiError
from ..extensions import db, providers
from ..htmx import fragment, is_htmx, macro
from ..models import ApiKey, User
from ..queries import api as queries
from ..queries import owned_or_404

PAGE = "settings/api_keys.html"
MACROS = "settings/_macros.html"
#: How many of a person's latest calls the page lists.
CALLS_SHOWN = 50


@dataclass
class Made:
    """What became of a request to make a key: the key (shown once), or why not."""

    name: str = ""
    secret: str | None = None
    key: ApiKey | None = None
    error: str | None = None

    @property
    def status(self) -> int:
        return 422 if self.error else 200


@dataclass
class Usage:
    """How to call the API from here: its addresses, the model ids and aliases it takes."""

    site: str
    bases: list[str]
    models: list[str]
    #: Providers that take any model name (they list none): ``PROVIDER/NAME`` reaches them.
    open_providers: list[str]
    #: (alias, the ``PROVIDER/MODEL`` it stands for now)
    aliases: list[tuple[str, str]]
    example_model: str
    #: Whether the API answers at all, and whether its turns are kept as conversations.
    enabled: bool
    keep: bool


def usage() -> Usage:
    """The API as this server offers it now (its providers and aliases as configured)."""
    registry = providers()
    config = current_app.config
    site = url_for("chat.index", _external=True)
    aliases = []
    for alias in parse_aliases(config["API_MODEL_ALIASES"]):
        try:
            aliases.append((alias, resolve(registry, config, alias).id))
        except ApiError:
            continue  # an alias of a provider that is not enabled here: not offered
    models = [choice.id for choice in listed(registry)]
    example = aliases[0][0] if aliases else (models[0] if models else "PROVIDER/MODEL")
    return Usage(site=site, bases=[site + "v1", site + "api/openai/v1"], models=models,
                 open_providers=[n for n in registry.names() if not registry.models(n)],
                 aliases=aliases, example_model=example, enabled=bool(config["API_ENABLED"]),
                 keep=bool(config["API_KEEP_CONVERSATIONS"]))


def keys(user: User) -> list[ApiKey]:
    """A person's keys, the usable ones first."""
    return list(db.session.scalars(queries.keys_of(user.id)))


def context(user: User, made: Made | None = None) -> dict[str, Any]:
    """Everything the page shows."""
    calls = list(db.session.scalars(queries.calls_of(user.id, CALLS_SHOWN)))
    return {"usage": usage(), "keys": keys(user), "calls": calls, "made": made or Made(),
            "calls_shown": CALLS_SHOWN, "most_name_chars": MOST_NAME_CHARS}


def create(user: User, name: str | None) -> Made:
    """Make a key named ``name`` for ``user``; ``Made`` says which, or why not."""
    try:
        key, secret = create_key(user, name)
    except KeyRefused as refused:
        return Made(name=name or "", error=str(refused))
    return Made(name="", secret=secret, key=key)


def created(user: User, made: Made) -> Response:
    """The answer to a request to make a key: for htmx the form with the key (or the error)
    and the list of keys out of band, else the whole page; never stored by the browser."""
    if is_htmx():
        html = macro(MACROS, "new_key_form")(made, MOST_NAME_CHARS)
        if made.secret:
            html += macro(MACROS, "key_list")(keys(user), oob=True)
        response = fragment(html, made.status)
    else:
        response = make_response(render_template(PAGE, **context(user, made)), made.status)
    response.headers["Cache-Control"] = "no-store"
    return response


def revoke(key_id: int) -> tuple[ApiKey, bool]:
    """Revoke the signed-in person's key ``key_id`` (404 for anyone else's); whether it was
    usable until now (revoking twice changes nothing)."""
    key = owned_or_404(ApiKey, key_id)
    return key, revoke_key(key)


def revoked_words(key: ApiKey, now: bool) -> str:
    """What the page says after a revocation."""
    if now:
        return f"Key “{key.name}” revoked: calls that send it are refused from now on."
    return f"Key “{key.name}” was revoked already."


def key_list_fragment(user: User, words: str) -> Response:
    """The list of keys alone (for htmx), with ``words`` above it."""
    return fragment(macro(MACROS, "key_list")(keys(user), status=words))
