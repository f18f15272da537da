"""How an answer ended, decided here and nowhere else: its final status and the words shown.

A generation ends complete (the provider ended by itself; ``finish_reason`` says why, e.g.
``'length'``: cut at the token limit), stopped (Stop, its time limit, shutdown) or error (the
provider failed). A page that closes does not end it. A running answer that outlives its
deadline ends too: pending and never started -> stopped, streaming but no longer saved -> error
(``INTERRUPTED``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..models import COMPLETE, ERROR, PENDING, STOPPED, STREAMING, utcnow
from ..providers import Cancellation, ProviderError

INTERRUPTED = "Interrupted: the server stopped while answering."
SHUTTING_DOWN = "Stopped: the server restarted while answering. Send the message again."
STOPPED_BY_USER = "Stopped."

#: The longest ``finish_reason`` kept (the column's width).
_FINISH_REASON_CHARS = 32


def not_started(config: dict[str, Any]) -> str:
    """The reason given to an answer that no one started in time."""
    return (f"Stopped: the answer did not start within {float(config['STREAM_PENDING_SECONDS']):g}"
            " seconds (the page that asked for it was closed or lost its connection). "
            "Retry to write it now.")


def over_time(seconds: float) -> str:
    """The reason given to an answer stopped at its time limit (``STREAM_MAX_SECONDS``)."""
    return f"Stopped: the answer reached its time limit ({seconds:g} seconds)."


def describe(exc: BaseException) -> str:
    """The words a person sees for a generation that failed with ``exc``: a provider's own
    message, else only the kind of error (its details go to the log)."""
    if isinstance(exc, ProviderError):
        return str(exc)
    return f"Internal error: {type(exc).__name__}"


def finish_reason(returned: Any) -> str | None:
    """The finish reason in what a provider's generator returned, if it gave one."""
    return returned[:_FINISH_REASON_CHARS] if isinstance(returned, str) else None


@dataclass
class Outcome:
    """How a generation ended."""

    status: str = STREAMING
    error: str | None = None
    text: str = ""
    tokens: int = 0
    first_token_seconds: float | None = None
    seconds: float = 0.0
    #: The provider's word for why the answer ended ('length': cut at the token limit).
    finish_reason: str | None = None
    #: Earlier messages left out of what the model was sent (bounds and context window).
    skipped: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def end(self, failure: BaseException | None, cancel: Cancellation) -> None:
        """Set the final status and reason: error if the provider failed (``failure``),
        else stopped if someone or something cancelled it (with the canceller's reason: Stop,
        the time limit, shutdown), else complete. Called before the generation cancels its
        own reader."""
        if failure is not None:
            self.status, self.error = ERROR, describe(failure)
        elif cancel.is_set():
            self.status, self.error = STOPPED, cancel.reason or STOPPED_BY_USER
        else:
            self.status = COMPLETE

    @property
    def stored_finish_reason(self) -> str | None:
        """The finish reason to store: why it ended matters only for an answer that did end
        by itself."""
        return self.finish_reason if self.status == COMPLETE else None


def deadlines(config: dict[str, Any]) -> dict[str, Any]:
    """The two moments before which a running answer is over: a pending one asked for before
    ``pending`` was never started (``STREAM_PENDING_SECONDS``), a streaming one not saved since
    ``stale`` lost its process (``STREAM_STALE_SECONDS``)."""
    now = utcnow()
    return {"pending": now - timedelta(seconds=float(config["STREAM_PENDING_SECONDS"])),
            "stale": now - timedelta(seconds=float(config["STREAM_STALE_SECONDS"]))}


def overdue_ending(status: str, config: dict[str, Any]) -> tuple[datetime, str, str] | None:
    """For an answer in ``status``: the moment a last write before which makes it overdue,
    and the status and reason it then ends with; None for an answer that is not running."""
    if status == PENDING:
        return deadlines(config)["pending"], STOPPED, not_started(config)
    if status == STREAMING:
        return deadlines(config)["stale"], ERROR, INTERRUPTED
    return None
