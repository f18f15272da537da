"""One generation per assistant message: claim it, read the provider, coalesce, save.

A chat turn's answer is generated exactly once: ``claim`` (``jobs``) moves it from pending to
streaming, and the request that claimed it runs its ``Generation`` (``generation``); any other
request ``follow``s the saved text (``follow``). The provider is read in a worker thread (a
greenlet under gunicorn's gevent workers) feeding a queue (``reader``); the response side
coalesces the tokens into one event per ``STREAM_COALESCE_MS`` (``coalesce``) and sends
keepalives while nothing comes. One ``Saver`` per process writes the partial text of all its
running answers every ``STREAM_SAVE_SECONDS`` in one transaction and notices a Stop from any
process (``saver``); a Stop in this process acts at once (``stops``). How an answer ended, and
the words for it, are decided in ``ending``; an answer past its deadline is ended by
``mark_interrupted`` (``overdue``). No database session is held across a ``yield``: every read
and write is a short session of its own (``sessions``).
"""

from .coalesce import KEEPALIVE, Coalescer, Event
from .ending import (
    CLIENT_LEFT,
    INTERRUPTED,
    SHUTTING_DOWN,
    STOPPED_BY_USER,
    Outcome,
    deadlines,
    not_started,
)
from .follow import follow
from .generation import Generation
from .jobs import HISTORY_STEP, Job, align_history, claim, history_for, job_for
from .overdue import mark_interrupted
from .saver import Saver, saver_for
from .sessions import short_session
from .stops import Stops, stops

__all__ = [
    "CLIENT_LEFT", "HISTORY_STEP", "INTERRUPTED", "KEEPALIVE", "SHUTTING_DOWN",
    "STOPPED_BY_USER", "Coalescer", "Event", "Generation", "Job", "Outcome", "Saver", "Stops",
    "align_history", "claim", "deadlines", "follow", "history_for", "job_for",
    "mark_interrupted", "not_started", "saver_for", "short_session", "stops",
]
