"""Configuration: the table's defaults, overridden by ``FLASK_*`` environment variables.

``create_app`` loads ``Config`` (the defaults of ``webapp/settings_table.py``), then
``app.config.from_prefixed_env()`` (so ``FLASK_EQUING_URL=...`` sets ``EQUING_URL``), then
``DATABASE_URL``. The settings table of ``docs/self-hosting.md`` is rendered from the same table.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

from .settings_table import defaults

#: The project's folder: templates, static files, migrations and gunicorn.conf.py live there.
ROOT = Path(__file__).resolve().parent.parent

#: Every Flask setting's default, from the table (``app.config.from_object(Config)``; scripts
#: read ``Config.NAME``).
Config = type("Config", (), {"__doc__": "Safe defaults for a single-machine install.",
                             **defaults()})


def load(app: Flask, overrides: dict | None = None) -> bool:
    """Defaults, then ``FLASK_*`` variables, then ``overrides``, then derived values.
    Returns whether the configuration gave a SECRET_KEY (see ``finalize``)."""
    app.config.from_object(Config)
    app.config.from_prefixed_env()
    if overrides:
        app.config.update(overrides)
    return finalize(app)


def finalize(app: Flask) -> bool:
    """Fill in what depends on the environment: database URL, secret key, instance folder.
    Returns whether the configuration gave a SECRET_KEY (else one is kept in the instance
    folder)."""
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if os.environ.get("DATABASE_URL") and not app.config.get("TESTING"):
        app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'chat.sqlite'}"
    secret_key_given = bool(app.config.get("SECRET_KEY"))
    if not secret_key_given:
        app.config["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    if app.config["FORCE_HTTPS"]:
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    return secret_key_given


def _instance_secret(path: Path) -> str:
    """A secret key generated once and kept (mode 0600) in the instance folder, so sessions
    survive restarts and every worker of one install agrees on it."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    # O_EXCL: when several workers start at once, the first writer wins and the rest read it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
