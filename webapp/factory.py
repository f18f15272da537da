"""The application factory: configuration, checks, extensions, blueprints, commands."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import (
    api,
    auth,
    chat,
    cli,
    config,
    errors,
    extensions,
    guards,
    htmx,
    manage,
    meta,
    settings,
    share,
)
from .chat.tools import message_tools
from .checks import ConfigurationError, config_problems
from .config import ROOT
from .extensions import csrf, db, limiter, login_manager, talisman
from .providers import ProviderRegistry
from .rendering import message_html, message_info, render_markdown, streaming_parts

#: The Content-Security-Policy: our own scripts and styles only, no inline script.
CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def create_app(test_config: dict[str, Any] | None = None, migrations: bool = True) -> Flask:
    """Build the application: configuration, extensions, providers, blueprints.

    ``migrations``: register Flask-Migrate for the ``flask db`` commands. A process that only
    serves requests never runs them and is spared Alembic (about 10 MB per worker).
    """
    app = Flask(__name__, instance_path=os.environ.get("FLASK_INSTANCE_PATH") or None,
                instance_relative_config=True, template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    secret_key_given = config.load(app, test_config)
    problems = config_problems(app.config)
    if problems:
        raise ConfigurationError(problems)
    if app.config["TRUSTED_PROXIES"]:
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                                x_port=hops, x_prefix=hops)
    logging.basicConfig(level=app.config.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    extensions.sqlite_busy_timeout_ms = int(app.config["SQLITE_BUSY_TIMEOUT_MS"])
    db.init_app(app)
    if migrations:
        # Importing Alembic logs seven INFO lines, printed before every `flask` command's own
        # output; only `flask db` should speak of migrations (migrations/env.py sets its logging).
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # Imported here, not at the top: Alembic costs each served worker 10 MB it never uses.
        from flask_migrate import Migrate  # noqa: PLC0415

        Migrate(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    csrf.init_app(app)
    limiter.init_app(app)
    talisman.init_app(
        app,
        force_https=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        content_security_policy=CSP,
        frame_options="DENY",
        referrer_policy="same-origin",
        strict_transport_security=app.config["FORCE_HTTPS"],
    )

    extensions.init_state(app, ProviderRegistry.from_config(app.config), secret_key_given)

    guards.init_app(app)  # before the blueprints: their rules take its bounded <int:...>
    for blueprint in (auth.bp, chat.bp, settings.bp, share.bp, manage.bp, meta.bp, api.bp):
        app.register_blueprint(blueprint)
    errors.init_app(app)
    htmx.init_app(app)
    cli.init_app(app)
    app.jinja_env.filters["markdown"] = render_markdown
    app.jinja_env.filters["message_html"] = message_html
    app.jinja_env.filters["message_info"] = message_info
    app.jinja_env.filters["streaming_parts"] = streaming_parts
    app.jinja_env.globals["message_tools"] = message_tools
    return app
