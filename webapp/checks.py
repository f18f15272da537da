"""What is wrong with a configuration, in words; and whether the services it names answer.

``config_problems`` runs at every start (``create_app`` refuses to start with any problem) and
in ``flask check``, which adds ``live_checks``: the database, its migrations, the rate-limit
storage and the embedded model.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .providers import ConfigError, ProviderRegistry

ROOT = Path(__file__).resolve().parent.parent

#: Settings that must be whole numbers of at least the given value.
_INTEGERS = {"MAX_CONTENT_LENGTH": 1024, "MAX_MESSAGE_CHARS": 1, "MAX_HISTORY_MESSAGES": 1,
             "MAX_HISTORY_CHARS": 1, "CONVERSATIONS_PER_PAGE": 1, "SQLITE_BUSY_TIMEOUT_MS": 0,
             "TRUSTED_PROXIES": 0, "STREAMS_PER_USER": 1, "SIGN_IN_FAILURE_LIMIT": 1,
             "SIGN_IN_FAILURE_WINDOW_SECONDS": 1, "MAX_IMPORT_BYTES": 1024}
#: Settings that must be positive numbers of seconds or milliseconds.
_NUMBERS = ("STREAM_COALESCE_MS", "STREAM_KEEPALIVE_SECONDS", "STREAM_SAVE_SECONDS",
            "STREAM_STALE_SECONDS", "STREAM_PENDING_SECONDS")
_BOOLEANS = ("SIGNUP_OPEN", "SHARE_REQUIRES_LOGIN", "FORCE_HTTPS", "SESSION_COOKIE_SECURE")
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")


class ConfigurationError(ValueError):
    """The configuration has problems; ``problems`` lists each in words."""

    def __init__(self, problems: list[str]):
        super().__init__("the configuration has problems:\n- " + "\n- ".join(problems)
                         + "\n(run `flask check` to see every check)")
        self.problems = problems


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem with ``config`` that can be seen without connecting to anything."""
    problems = []
    for key, minimum in _INTEGERS.items():
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key} must be a whole number, not {value!r}")
        elif value < minimum:
            problems.append(f"{key} must be at least {minimum}, not {value}")
    for key in _NUMBERS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(f"{key} must be a positive number, not {value!r}")
    for key in _BOOLEANS:
        if not isinstance(config.get(key), bool):
            problems.append(f"{key} must be true or false, not {config.get(key)!r}")
    url = str(config.get("SQLALCHEMY_DATABASE_URI") or "")
    if urlsplit(url).scheme not in _DATABASE_SCHEMES:
        problems.append(f"DATABASE_URL must start with sqlite:// or postgresql+psycopg://, "
                        f"not {url.split(':', 1)[0]!r}")
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "")
    if urlsplit(storage).scheme not in ("memory", "redis", "rediss"):
        problems.append(f"RATELIMIT_STORAGE_URI must be memory:// or redis://host:port, "
                        f"not {storage!r}")
    try:
        ProviderRegistry.from_config(config)
    except ConfigError as exc:
        problems.append(str(exc))
    return problems


def head_revision() -> str:
    """The newest migration shipped with the code (several, comma-separated, if the history
    has more than one head; no database can be at that).

    Read from the migration files' ``revision`` and ``down_revision`` assignments without
    importing them or Alembic, which would cost every serving process about 10 MB for one
    readiness answer.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                continue
            name = node.targets[0].id
            if name not in ("revision", "down_revision"):
                continue
            value = ast.literal_eval(node.value)
            if name == "revision":
                revisions.add(value)
            elif value is not None:  # a merge names several parents
                parents.update([value] if isinstance(value, str) else value)
    return ",".join(sorted(revisions - parents))


def database_revision(engine) -> str | None:
    """The migration the database is at (None before the first)."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def gunicorn_workers() -> int:
    """How many workers ``gunicorn -c gunicorn.conf.py`` starts with this environment
    (GUNICORN_WORKERS, else the shipped config's default), read by running the config file."""
    import runpy

    try:
        return int(runpy.run_path(str(ROOT / "gunicorn.conf.py")).get("workers", 1))
    except Exception:  # noqa: BLE001 - a broken config is gunicorn's to report; assume one
        return 1


def live_checks(app) -> list[tuple[bool | None, str]]:
    """Connect to what the configuration names; ``(ok, what)`` for each check, with ``ok``
    None for a note (worth knowing, not wrong)."""
    from .extensions import app_state, db, providers

    results: list[tuple[bool, str]] = []
    with app.app_context():
        try:
            current = database_revision(db.engine)
            head = head_revision()
            results.append((True, f"database answers ({db.engine.url.render_as_string()})"))
            results.append((current == head, f"migrations: database at {current}, code at "
                            f"{head}" + ("" if current == head else
                                         " — run `flask db upgrade`")))
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            results.append((False, f"database does not answer: {exc}"))
        storage = app.config["RATELIMIT_STORAGE_URI"]
        if storage.startswith("redis"):
            try:
                import redis

                redis.Redis.from_url(storage, socket_timeout=3).ping()
                results.append((True, f"rate-limit storage answers ({storage})"))
            except Exception as exc:  # noqa: BLE001
                results.append((False, f"rate-limit storage {storage} does not answer: {exc}"))
        workers = gunicorn_workers()
        if storage.startswith("memory") and app.config.get("RATELIMIT_ENABLED", True) \
                and workers > 1:
            results.append((None, f"RATELIMIT_STORAGE_URI={storage} counts in each of the "
                                  f"{workers} gunicorn workers alone: LOGIN_RATE_LIMIT and "
                                  f"MESSAGE_RATE_LIMIT let up to {workers} times their number "
                                  f"through (failed sign-ins, SIGN_IN_FAILURE_LIMIT, are counted "
                                  f"in the database and hold); use redis://host:port for "
                                  f"limits every worker shares"))
        registry = providers(app)
        if "local" in registry:
            try:
                registry.get("local").resolved_path()
                results.append((True, "the embedded model's file is installed"))
            except Exception as exc:  # noqa: BLE001
                results.append((False, f"the embedded model cannot load: {exc}"))
        if not app_state(app).secret_key_given:
            results.append((True, "SECRET_KEY is kept in the instance folder; set "
                                  "FLASK_SECRET_KEY when several machines serve one site"))
    return results
