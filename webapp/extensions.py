"""Extension singletons, bound to the app in ``create_app`` with ``init_app``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_talisman import Talisman
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

# Named constraints keep Alembic's batch migrations on SQLite predictable.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Objects keep their values after a commit: a request that commits and then renders what it
# saved (a chat turn) would otherwise reload every row it touched, one query each.
db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING),
                session_options={"expire_on_commit": False})
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
talisman = Talisman()

if TYPE_CHECKING:
    from .providers import ProviderRegistry


@dataclass
class AppState:
    """What the app keeps for itself in ``app.extensions`` (under one key), typed."""

    #: The enabled providers (``ProviderRegistry.from_config``).
    providers: ProviderRegistry
    #: Whether SECRET_KEY came from the configuration (else it is kept in the instance folder).
    secret_key_given: bool = False
    #: Set once an account exists (accounts are not all deleted while the app runs).
    has_users: bool = False
    #: The newest migration shipped with the code, read once by ``/readyz``.
    head_revision: str | None = None
    #: The process's answer saver (``streaming``), made by the first answer.
    answer_saver: Any = None
    #: The process's follower of answers generated elsewhere (``streaming``).
    answer_follower: Any = None

    def once(self, name: str, make: Callable[[], Any]) -> Any:
        """The process's one ``name`` (an attribute above), made by ``make`` the first time
        it is asked for, by whichever thread asks first."""
        if getattr(self, name) is None:
            with _ONCE_LOCK:
                if getattr(self, name) is None:
                    setattr(self, name, make())
        return getattr(self, name)


_ONCE_LOCK = threading.Lock()


_STATE = "equing"


def init_state(app: Flask, providers: ProviderRegistry, secret_key_given: bool) -> AppState:
    """Give ``app`` its state; ``create_app`` calls it once."""
    state = app.extensions[_STATE] = AppState(providers, secret_key_given)
    return state


def app_state(app: Flask | None = None) -> AppState:
    """The state of ``app`` (by default the current one)."""
    return (app or current_app).extensions[_STATE]


def providers(app: Flask | None = None) -> ProviderRegistry:
    """The enabled providers of ``app`` (by default the current one)."""
    return app_state(app).providers


#: Milliseconds SQLite waits for a lock; set from SQLITE_BUSY_TIMEOUT_MS by create_app.
sqlite_busy_timeout_ms = 15000


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """WAL lets readers and one writer work at once; busy_timeout makes writers wait for the
    lock instead of failing with 'database is locked'."""
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
