"""The database each test runs on: SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.

``make test`` runs the suite twice, the second time with
``TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test``. Each test then gets a
schema of its own (created here, dropped afterwards) so runs never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg

BASE = os.environ.get("TEST_DATABASE_URL", "")
#: The PostgreSQL server of the tests that need PostgreSQL even in the SQLite run.
POSTGRES = os.environ.get("TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def is_postgres() -> bool:
    return BASE.startswith("postgresql")


def _admin_url(base: str) -> str:
    return base.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def database(tmp: Path, name: str = "app") -> Iterator[str]:
    """A SQLAlchemy URL for a fresh, empty database; removed afterwards."""
    if not is_postgres():
        yield f"sqlite:///{tmp / (name + '.sqlite')}"
        return
    with postgres_schema(BASE) as url:
        yield url


@contextmanager
def postgres_schema(base: str = POSTGRES) -> Iterator[str]:
    """A SQLAlchemy URL for a fresh, empty schema of the PostgreSQL at ``base``; dropped
    afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(_admin_url(base), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(_admin_url(base), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
