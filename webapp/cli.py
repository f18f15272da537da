"""``flask`` commands for operators: users, providers, a chat from the terminal."""

from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import factory
from .api.keys import KeyRefused, create_key, revoke_key
from .auth.accounts import create_user
from .checks import ConfigurationError, config_problems, live_checks
from .config import ROOT, load
from .copy import copy_database
from .extensions import db
from .extensions import providers as enabled_providers
from .models import ApiKey
from .providers import ProviderError
from .queries import api as api_queries
from .queries import people


def init_app(app: Flask) -> None:
    """Register the commands on ``app``."""
    app.cli.add_command(users)
    app.cli.add_command(providers)
    app.cli.add_command(chat)
    app.cli.add_command(copy_data)
    app.cli.add_command(api_keys)


users = AppGroup("users", help="Manage accounts.")


@users.command("create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (asked for when not given).")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
def users_create(username: str, password: str, admin: bool):
    """Create an account."""
    if db.session.scalar(people.by_username(username)) is not None:
        raise click.ClickException(f"the username {username!r} is taken")
    if len(password) < 8:
        raise click.ClickException("the password needs at least 8 characters")
    create_user(username, password, is_admin=admin)
    click.echo(f"created {'administrator ' if admin else ''}{username}")


api_keys = AppGroup("api-keys", help="Manage people's keys to the API.")


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


@api_keys.command("create")
@click.argument("username")
@click.option("--name", "label", default="made by an operator", show_default=True,
              help="What the key is for (shown in the person's list of keys).")
def api_keys_create(username: str, label: str):
    """Make a key for USERNAME; the key alone is printed on the last line (shown once)."""
    user = db.session.scalar(people.by_username(username))
    if user is None:
        raise click.ClickException(f"no account is called {username!r}")
    try:
        key, secret = create_key(user, label)
    except KeyRefused as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created key {key.id} ({key.name!r}) for {username}; it is shown only now:")
    click.echo(secret)


@api_keys.command("list")
@click.argument("username", required=False)
def api_keys_list(username: str | None):
    """List the keys (of USERNAME, or everyone's): id, owner, name, start, made, last used."""
    user_id = None
    if username is not None:
        user = db.session.scalar(people.by_username(username))
        if user is None:
            raise click.ClickException(f"no account is called {username!r}")
        user_id = user.id
    for key in db.session.scalars(api_queries.all_keys(user_id)):
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
        click.echo(f"{key.id}\t{key.user.username}\t{key.name}\t{key.prefix}…\t"
                   f"made {_when(key.created_at)}\tlast used {_when(key.last_used_at)}\t{state}")


@api_keys.command("revoke")
@click.argument("key_id", type=int)
def api_keys_revoke(key_id: int):
    """Revoke key KEY_ID (its id, as `list` shows it): refused from the next request on."""
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise click.ClickException(f"there is no key {key_id}")
    if not revoke_key(key):
        raise click.ClickException(f"key {key_id} was already revoked")
    click.echo(f"revoked key {key_id} ({key.name!r}) of {key.user.username}")


@click.command()
@with_appcontext
@click.option("--probe/--no-probe", default=True, help="Send each provider a real request.")
def providers(probe: bool):
    """List the enabled providers with their flags, models, URL and whether they work."""
    registry = enabled_providers()
    for provider in registry:
        working = provider.working
        detail = ""
        if probe:
            result = registry.probe(provider.name)
            working, detail = result.working, f" ({result.detail}, {result.seconds:.2f}s)"
        default = " [default]" if provider.name == registry.default else ""
        click.echo(f"{provider.name}{default}: {provider.label}")
        click.echo(f"  url: {provider.url or '(in-process)'}")
        click.echo(f"  models: {', '.join(provider.models) or '(any)'}")
        click.echo(f"  supports_stream={provider.supports_stream} "
                   f"supports_gpt_35_turbo={provider.supports_gpt_35_turbo} "
                   f"supports_gpt_4={provider.supports_gpt_4}")
        click.echo(f"  working: {'yes' if working else 'no'}{detail}")


@click.command()
@with_appcontext
@click.argument("prompt")
@click.option("--provider", "name", default=None, help="Provider name (default: the default).")
@click.option("--model", default=None, help="Model id (default: the provider's first).")
@click.option("--temperature", type=float, default=None)
@click.option("--max-tokens", type=int, default=None)
@click.option("--system", default="", help="A system prompt.")
@click.option("--no-stream", is_flag=True, help="Ask for the whole answer at once.")
def chat(prompt: str, name: str | None, model: str | None, temperature: float | None,
         max_tokens: int | None, system: str, no_stream: bool):
    """Stream one answer to PROMPT to the terminal."""
    registry = enabled_providers()
    name = name or registry.default
    if name not in registry:
        raise click.ClickException(f"no enabled provider {name!r} "
                                   f"(enabled: {', '.join(registry.names())})")
    provider = registry.get(name)
    messages = ([{"role": "system", "content": system}] if system else [])
    messages.append({"role": "user", "content": prompt})
    kwargs = {k: v for k, v in {"temperature": temperature, "max_tokens": max_tokens}.items()
              if v is not None}
    try:
        for text in provider.create_completion(model or provider.default_model(), messages,
                                               not no_stream, **kwargs):
            click.echo(text, nl=False)
            sys.stdout.flush()
    except ProviderError as exc:
        click.echo()
        raise click.ClickException(str(exc)) from None
    click.echo()


@click.command("check")
def check():
    """Check the configuration and the services it names; say what is wrong in words.

    Registered as a plugin command (pyproject's ``flask.commands``) so that it runs even when
    the configuration is too broken for the app to start.
    """
    shell = Flask("webapp", root_path=str(ROOT / "webapp"), instance_relative_config=True,
                  instance_path=_instance_path())
    load(shell)
    problems = config_problems(shell.config)
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        raise SystemExit(1)
    click.echo("ok: the settings are valid")
    try:
        app = factory.create_app()
    except ConfigurationError as exc:  # pragma: no cover - caught above
        raise click.ClickException(str(exc)) from None
    failed = False
    for ok, what in live_checks(app):
        click.echo(f"{'note' if ok is None else 'ok' if ok else 'problem'}: {what}")
        failed = failed or ok is False
    if failed:
        raise SystemExit(1)


def _instance_path() -> str | None:
    return os.environ.get("FLASK_INSTANCE_PATH") or None


@click.command("copy-data")
@with_appcontext
@click.option("--to", "target", required=True,
              help="SQLAlchemy URL of the new, empty database, "
                   "e.g. postgresql+psycopg://chat@127.0.0.1/chat")
@click.option("--batch", default=1000, show_default=True, help="Rows per insert.")
def copy_data(target: str, batch: int):
    """Copy every row from this app's database to another (e.g. SQLite to PostgreSQL).

    The target is migrated to the current schema first and must hold no rows yet.
    """
    try:
        counts = copy_database(current_app, target, batch=batch)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for table, count in counts.items():
        click.echo(f"{table}: {count} rows")
    click.echo("done: point DATABASE_URL at the new database and restart")
