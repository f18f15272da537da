"""Short database sessions: a generation holds none across a ``yield``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy.orm import Session

from ..extensions import db


@contextmanager
def short_session(app: Flask) -> Iterator[Session]:
    """A database session for one short unit of work, committed and released at the end."""
    with app.app_context():
        try:
            yield db.session
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
