"""What is wrong with a configuration, in words; and whether the services it names answer.

``config_problems`` runs at every start (``create_app`` refuses to start with any problem) and
in ``flask check``, which adds ``live_checks``: the database, its migrations, the rate-limit
storage and the embedded model.
"""

from __future__ import annotations

import ast
import runpy
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import inspect, text

from .api.catalog import parse_aliases
from .config import ROOT
from .extensions import app_state, db, providers
from .providers import ConfigError, ProviderRegistry
from .settings_table import BY_NAME, SETTINGS


class ConfigurationError(ValueError):
    """The configuration has problems; ``problems`` lists each in words."""

    def __init__(self, problems: list[str]):
        super().__init__("the configuration has problems:\n- " + "\n- ".join(problems)
                         + "\n(run `flask check` to see every check)")
        self.problems = problems


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem with ``config`` that can be seen without connecting to anything."""
    # The provider registry checks its own settings as it builds, below.
    held = (setting for setting in SETTINGS if not (setting.env or setting.provider))
    problems = [p for p in (setting.problem(config.get(setting.name)) for setting in held) if p]
    url = str(config.get("SQLALCHEMY_DATABASE_URI") or "")
    if urlsplit(url).scheme not in BY_NAME["SQLALCHEMY_DATABASE_URI"].schemes:
        # Only the scheme is repeated: the rest of the URL may hold a password.
        problems.append(f"DATABASE_URL must start with sqlite:// or postgresql+psycopg://, "
                        f"not {url.split(':', 1)[0]!r}")
    storage = str(config.get("RATELIMIT_STORAGE_URI") or "")
    if urlsplit(storage).scheme not in BY_NAME["RATELIMIT_STORAGE_URI"].schemes:
        problems.append(f"RATELIMIT_STORAGE_URI must be memory:// or redis://host:port, "
                        f"not {storage!r}")
    try:
        ProviderRegistry.from_config(config)
    except ConfigError as exc:
        problems.append(str(exc))
    try:
        parse_aliases(str(config.get("API_MODEL_ALIASES") or ""))
    except ValueError as exc:
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
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def gunicorn_workers() -> int:
    """How many workers ``gunicorn -c gunicorn.conf.py`` starts with this environment
    (GUNICORN_WORKERS, else the shipped config's default), read by running the config file."""
    try:
        return int(runpy.run_path(str(ROOT / "gunicorn.conf.py")).get("workers", 1))
    except Exception:  # noqa: BLE001 - a broken config is gunicorn's to report; assume one
        return 1


def live_checks(app) -> list[tuple[bool | None, str]]:
    """Connect to what the configuration names; ``(ok, what)`` for each check, with ``ok``
    None for a note (worth knowing, not wrong)."""
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
                # Imported here alone: a serving process never pings Redis (Flask-Limiter's
                # storage imports it only for redis://), and redis costs each worker ~4.5 MB.
                import redis  # noqa: PLC0415

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
