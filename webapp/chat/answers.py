"""What a route does to one answer: start generating it, stop it, bring it up to date."""

from __future__ import annotations

from flask import current_app

from ..extensions import db
from ..models import FINAL_STATUSES, PENDING, STOPPED, Message, utcnow
from ..streaming import (
    STOPPED_BY_USER,
    claim,
    job_for,
    mark_interrupted,
    start_generation,
    stops,
)


def begin(answer: Message, *, going_on: bool = False) -> None:
    """Start generating ``answer``, which its turn saved as streaming (claimed by this
    request): it runs to its end on the server whether or not a page watches it. An answer
    ``going_on`` (Continue) keeps its text and the provider is asked to go on from it."""
    app = current_app._get_current_object()
    job = job_for(answer.id, answer.conversation_id, answer.provider, answer.model,
                  answer.params, app.config, prefix=answer.content if going_on else "",
                  prefix_tokens=answer.token_count if going_on else 0)
    db.session.commit()  # the history read above holds nothing open while it runs
    start_generation(app, job)


def begin_if_pending(message: Message) -> None:
    """Start an answer still pending (saved by an earlier version, which left it to the
    first page asking for its stream), unless another request claimed it first."""
    if message.status != PENDING:
        return
    app = current_app._get_current_object()
    job = claim(app, message.id)
    if job is not None:
        start_generation(app, job)


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
