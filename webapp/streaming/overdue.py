"""Ending a running answer that outlived its deadline: no running state holds a person's
answers-at-once slot for ever."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from ..extensions import db
from ..models import Message, utcnow
from ..queries import messages as queries
from ..rendering import render_markdown
from .ending import overdue_ending


def mark_interrupted(message: Message) -> bool:
    """End ``message`` if it is running past its deadline (in the caller's session, which
    commits): pending and never started within ``STREAM_PENDING_SECONDS`` -> stopped with the
    reason; streaming but not saved by its generator for ``STREAM_STALE_SECONDS`` (it saves
    every second while alive, so its process died) -> interrupted. Returns whether it did.
    """
    ending = overdue_ending(message.status, current_app.config)
    if ending is None:
        return False
    deadline, status, error = ending
    if message.updated_at > deadline:
        return False
    html = str(render_markdown(message.content or ""))
    now = utcnow()
    # A conditional UPDATE, not attribute assignment: a stream may claim the pending answer
    # (or a live generator save it) between our read and this write; then it is not ours.
    ended = db.session.execute(queries.END_OVERDUE, {
        "message_id": message.id, "was": message.status, "deadline": deadline,
        "status": status, "error": error, "html": html, "now": now}).rowcount
    if not ended:
        db.session.refresh(message)
        return False
    for name, value in (("status", status), ("error", error), ("html", html),
                        ("finished_at", now), ("updated_at", now)):
        set_committed_value(message, name, value)
    return True
