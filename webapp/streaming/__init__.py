"""One generation per assistant message, run to its end on the server; pages listen to it.

A chat turn's answer is generated exactly once, in the process that accepted it: ``claim``
(``jobs``) moves it from pending to streaming and ``start_generation`` (``generation``) runs it
on a thread of its own (a greenlet under gunicorn's gevent workers), whether or not a page is
watching, until it completes, fails, is stopped, reaches ``STREAM_MAX_SECONDS`` or the server
shuts down. The provider is read in another thread feeding a queue (``reader``); the
generation coalesces the tokens into one piece per ``STREAM_COALESCE_MS`` (``coalesce``) and
publishes them to the answer's ``Live`` (``live``). Pages are ``Listener``s (``listen``) of a
``Live``: the generation's own, or, in another process, one the process's ``Follower`` keeps
from the saved text (``follow``); each asks for the text after the offset it has, which is how
a page that reconnects resumes. One ``Saver`` per process writes the partial text of all its
running answers (every ``STREAM_SAVE_SECONDS``, or ``STREAM_FOLLOW_SECONDS`` while followed
from elsewhere) and notices a Stop from any process (``saver``); a Stop in this process acts at
once (``stops``). How an answer ended, and the words for it, are decided in ``ending``; an
answer past its deadline is ended by ``mark_interrupted`` (``overdue``). No database session is
held across a wait: every read and write is a short session of its own (``sessions``).
"""

from .coalesce import KEEPALIVE, Coalescer, Event
from .ending import (
    INTERRUPTED,
    SHUTTING_DOWN,
    STOPPED_BY_USER,
    Outcome,
    deadlines,
    not_started,
)
from .follow import Follower, follower_for
from .generation import Generation, start_generation
from .jobs import HISTORY_STEP, Job, align_history, claim, history_for, job_for
from .listen import Listener
from .live import Live, lives
from .overdue import mark_interrupted
from .saver import Saver, saver_for
from .sessions import short_session
from .stops import Stops, stops

__all__ = [
    "HISTORY_STEP", "INTERRUPTED", "KEEPALIVE", "SHUTTING_DOWN",
    "STOPPED_BY_USER", "Coalescer", "Event", "Generation", "Job", "Outcome", "Saver", "Stops",
    "Follower", "Listener", "Live", "align_history", "claim", "deadlines", "follower_for",
    "history_for", "job_for", "lives", "mark_interrupted", "not_started", "saver_for",
    "short_session", "start_generation", "stops",
]
