"""Queries of failed sign-ins (``auth.failures`` counts them per account and per address)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Delete, Select, delete, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from ..models import SignInFailure


def expire(since: datetime) -> Delete:
    """Forget the failures older than ``since`` (out of every window)."""
    return delete(SignInFailure).where(SignInFailure.created_at < since)


def counted(column: InstrumentedAttribute, value: str, since: datetime,
            besides: int) -> Select:
    """How many failures since ``since`` have ``value`` in ``column`` (the account or the
    address), and the oldest one's time; the attempt ``besides`` is left out."""
    return select(func.count(), func.min(SignInFailure.created_at)).where(
        column == value, SignInFailure.id != besides, SignInFailure.created_at >= since)


def forgive(attempt: SignInFailure) -> Delete:
    """Remove ``attempt`` and every failure of its account."""
    return delete(SignInFailure).where(
        or_(SignInFailure.id == attempt.id, SignInFailure.account == attempt.account))
