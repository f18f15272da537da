"""Relaying an answer that another request (or process) is generating."""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Flask

from ..models import FINAL_STATUSES, Message
from .coalesce import KEEPALIVE, Event
from .overdue import mark_interrupted
from .sessions import short_session


def follow(app: Flask, message_id: int, poll: float = 0.5) -> Iterator[Event]:
    """For a message another request is generating: yield its text as it is saved, until it
    is final (or found interrupted). Yields like ``Generation``."""
    sent = 0
    while True:
        with short_session(app) as session:
            message = session.get(Message, message_id)
            if message is None:
                return
            mark_interrupted(message)
            content, status = message.content or "", message.status
        if status in FINAL_STATUSES and not sent:
            return  # nothing to relay: the caller sends the final HTML
        if len(content) > sent and content[sent:].strip():
            yield "text", content[sent:]
            sent = len(content)
        else:
            yield KEEPALIVE
        if status in FINAL_STATUSES:
            return
        time.sleep(poll)
