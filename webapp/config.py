"""Configuration: defaults here, overridden by ``FLASK_*`` environment variables.

``create_app`` loads ``Config``, then ``app.config.from_prefixed_env()`` (so
``FLASK_EQUING_URL=...`` sets ``EQUING_URL``), then ``DATABASE_URL``. Every key is documented in
``docs/self-hosting.md``; a test keeps the two in step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask


class Config:
    """Safe defaults for a single-machine install."""

    # Accounts
    SIGNUP_OPEN = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    LOGIN_RATE_LIMIT = "10 per minute"
    # Failed sign-ins allowed per account and per address in the window, counted in the
    # database (shared by every worker, unlike LOGIN_RATE_LIMIT's memory:// counters).
    SIGN_IN_FAILURE_LIMIT = 10
    SIGN_IN_FAILURE_WINDOW_SECONDS = 900

    # Database: SQLite in the instance folder unless DATABASE_URL is set.
    SQLALCHEMY_DATABASE_URI = ""
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SQLITE_BUSY_TIMEOUT_MS = 15000

    # Shared links: readable by anyone with the link unless this is set.
    SHARE_REQUIRES_LOGIN = False

    # Behind a reverse proxy: how many proxies to trust for X-Forwarded-* (0: none).
    TRUSTED_PROXIES = 0
    STREAMS_PER_USER = 3
    MESSAGE_RATE_LIMIT = "20 per minute"

    # Limits
    MAX_CONTENT_LENGTH = 1024 * 1024
    # Imports alone may be larger: a full export must import back (a long history is MBs;
    # importing 8 MiB takes about 15 s, mostly rendering the answers' markdown).
    MAX_IMPORT_BYTES = 8 * 1024 * 1024
    MAX_MESSAGE_CHARS = 32000
    MAX_HISTORY_MESSAGES = 40
    MAX_HISTORY_CHARS = 24000
    CONVERSATIONS_PER_PAGE = 50
    # Set explicitly: Flask-Limiter otherwise keeps the value of the last app it served.
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_HEADERS_ENABLED = True

    # Streaming
    # Each event costs the browser a frame (layout, paint); 45 ms (about 22 a second) keeps a
    # fast answer under a tenth of the page's main thread. See docs/benchmarks.md.
    STREAM_COALESCE_MS = 45
    STREAM_KEEPALIVE_SECONDS = 1.0
    STREAM_SAVE_SECONDS = 1.0
    STREAM_STALE_SECONDS = 20
    # An answer waits this long for a page (or the server) to start writing it; after that it
    # ends as stopped, so an answer nobody started never holds a STREAMS_PER_USER slot.
    STREAM_PENDING_SECONDS = 60

    # Providers (read by webapp.providers.registry; see SETTINGS there)
    PROVIDERS = ""
    DEFAULT_PROVIDER = ""
    PROVIDER_TIMEOUT = "5,120"
    EQUING_URL = ""
    OPENAI_BASE_URL = ""
    OPENAI_API_KEY = ""
    OPENAI_MODELS = ""
    LOCAL_MODEL_PATH = ""
    LOCAL_N_CTX = 2048
    LOCAL_THREADS = 0
    LOCAL_MAX_TOKENS = 1024

    # Security headers (Flask-Talisman): HTTPS redirects are the proxy's job.
    FORCE_HTTPS = False


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
