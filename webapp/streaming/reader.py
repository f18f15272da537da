"""The worker side of a generation: the provider read into a queue; never the database.

The reader runs in a thread of its own (a greenlet under gevent) so the response side can wait
on the queue with a timeout: for keepalives, for the coalescing moment, for a Stop.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from ..providers import Cancellation, CreateResult, ProviderError, ProviderRegistry
from .ending import Outcome, finish_reason
from .jobs import Job, align_history

log = logging.getLogger(__name__)

#: Queued after the last token of an answer that ended by itself or was cancelled; an
#: answer that failed ends with its exception instead.
END = object()


def read(registry: ProviderRegistry, job: Job, cancel: Cancellation, outcome: Outcome,
         items: queue.SimpleQueue) -> None:
    """Put each token of ``job``'s answer on ``items``, then ``END`` or the exception that
    ended it. Sets ``outcome.skipped`` and ``outcome.finish_reason``."""
    if job.provider not in registry:
        items.put(ProviderError(f"the provider {job.provider!r} is not enabled here"))
        return
    try:
        provider = registry.get(job.provider)
        # Within the model's context window: oldest turns dropped first (the system prompt
        # and the newest message kept), counted with those the bounds left out.
        messages, dropped = provider.fit_history(job.messages, job.params)
        messages, outcome.skipped = align_history(messages, job.skipped + dropped)
        tokens = provider.create_completion(job.model, messages, True, cancel=cancel,
                                            **job.params)
        outcome.finish_reason = _relay(tokens, cancel, items)
        items.put(END)
    except Exception as exc:  # noqa: BLE001 - every failure must reach the person
        if not isinstance(exc, ProviderError):
            log.exception("generation %s failed", job.message_id)
        items.put(exc)


def _relay(tokens: CreateResult, cancel: Cancellation, items: queue.SimpleQueue) -> str | None:
    """Queue ``tokens`` until they end or ``cancel`` is set (closing them either way); the
    finish reason the provider's generator returned, if any."""
    try:
        while not cancel.is_set():
            try:
                token = next(tokens)
            except StopIteration as end:
                return finish_reason(end.value)
            items.put(token)
        return None
    finally:
        tokens.close()


def take(items: queue.SimpleQueue, wait: float | None, most: int = 4096) -> list[Any]:
    """What the reader has queued: wait up to ``wait`` seconds for one item (``None``: do not
    wait), then take every other item already there, so a burst of tokens costs one wake-up,
    not one per token."""
    try:
        batch = [items.get_nowait() if wait is None else items.get(timeout=wait)]
    except queue.Empty:
        return []
    try:
        while len(batch) < most:
            batch.append(items.get_nowait())
    except queue.Empty:
        pass
    return batch
