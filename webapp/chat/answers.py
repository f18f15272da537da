"""What a route does to one answer: generate it in the request, stop it, bring it up to date."""

from __future__ import annotations

from flask import current_app

from ..extensions import db
from ..models import FINAL_STATUSES, PENDING, STOPPED, Message, utcnow
from ..streaming import STOPPED_BY_USER, Generation, claim, mark_interrupted, stops


def generate_now(answer: Message) -> None:
    """Generate the whole answer in this request (without JavaScript nothing else would),
    unless another request claimed it first."""
    app = current_app._get_current_object()
    job = claim(app, answer.id)
    if job is not None:
        for _ in Generation(app, job):
            pass


def stop_answer(message: Message) -> None:
    """Ask a running answer to stop; its stream then ends with what was written so far.
    A finished one is left as it is."""
    if message.status in FINAL_STATUSES:
        return
    message.stop_requested = True
    if message.status == PENDING:
        # Not started yet: it ends here, and its stream will only send the final HTML.
        message.status, message.error, message.html = STOPPED, STOPPED_BY_USER, ""
        message.finished_at = message.updated_at = utcnow()
    db.session.commit()
    stops.cancel(message.id)


def bring_up_to_date(message: Message) -> Message:
    """``message`` as it stands: a running answer past its deadline is ended first, so a page
    whose stream broke learns how it ended."""
    if mark_interrupted(message):
        db.session.commit()
    return message
