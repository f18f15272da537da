"""A short title for a conversation, asked of its provider after its first answer.

When a conversation's first answer completes, its generation (after it has told the pages, so
no page waits for this) asks the same provider and model for a title: one non-streamed request
for a few tokens, bounded by ``TITLE_TIMEOUT_SECONDS`` (a ``Cancellation`` fired by a timer,
which interrupts an HTTP request however the upstream trickles; the local model is bounded by
its few tokens and by its wait for the model). The answer is cleaned (``clean``) and written
only if the person has not renamed the conversation meanwhile: the condition is in the UPDATE
(``queries.conversations.SET_GENERATED_TITLE``). Nothing is written when ``TITLES`` is off, the
person renamed it, the answer is not the conversation's first complete one or continues one,
or the request fails, times out or brings nothing usable: the first line of the first message
(``chat.turns.title_from``) stays the title.

Pages learn the new title from the sidebar: an item whose conversation may still get one
(``may_get_title``: answered once, not renamed, answer ended within ``window``) keeps asking
for itself, as an item with a running answer does, and the item of the open conversation
brings the page's ``<title>`` and heading with it (``chat.sidebar.item``). That is read from
the database, so it holds whichever worker or server generated the answer.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import timedelta
from typing import Any

from flask import Flask

from ..extensions import providers
from ..models import COMPLETE, Conversation, utcnow
from ..providers import Cancellation, ProviderError
from ..queries import conversations
from .jobs import Job
from .sessions import short_session

log = logging.getLogger(__name__)

#: The longest title kept, in characters (cut at a word).
MOST_CHARS = 60
#: Tokens asked for: a title of about six words, with room for a model's "Title:" preamble.
MAX_TOKENS = 24
#: Characters of the message and of the answer shown to the model: enough to name the
#: subject, few enough that a small local model reads them quickly.
_SHOWN_CHARS = 600
#: Seconds an item keeps asking for itself beyond ``TITLE_TIMEOUT_SECONDS`` after the answer
#: ended (the title's request starts a moment after the answer's end is saved).
_WINDOW_MARGIN = 3.0

_PREFIX = re.compile(r"^(?:.{0,40}?\btitle\b\s*(?:is)?\s*[:\-–—]\s*)", re.I)
#: Markdown a model may wrap a title in: emphasis, code, a heading's hashes (not ``_``, which
#: names such as snake_case keep).
_MARKUP = re.compile(r"\*+|`+|^#+")
_QUOTES = "\"'“”‘’«»„`"
_TRAILING = ".,;:!?-–— " + _QUOTES
_LEADING = "-–—•·> "


def prompt(message: str, answer: str) -> list[dict[str, str]]:
    """The request for a title of a conversation that began with ``message`` and ``answer``
    (one user message: small models follow an instruction there better than in a system
    prompt)."""
    return [{"role": "user", "content": (
        f"User: {message[:_SHOWN_CHARS]}\nAssistant: {answer[:_SHOWN_CHARS]}\n\n"
        "Give this conversation a title of at most 6 words. Reply with the title only.")}]


def clean(text: str) -> str | None:
    """A model's reply as a title: its first non-empty line without a "Title:" preamble,
    markdown marks, quotes and trailing punctuation, cut to ``MOST_CHARS`` at a word; None
    when nothing worth showing is left (empty, or no letter or digit)."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = _MARKUP.sub("", line)
    line = _PREFIX.sub("", line, count=1)
    line = " ".join(line.split()).lstrip(_LEADING).strip(_QUOTES + " ").rstrip(_TRAILING)
    if len(line) > MOST_CHARS:
        # One more character: a space right after the limit ends a whole word there.
        head = line[:MOST_CHARS + 1]
        cut = head.rsplit(" ", 1)[0] if " " in head else ""
        line = (cut if len(cut) > MOST_CHARS // 2 else line[:MOST_CHARS]).rstrip(_TRAILING)
    if not any(ch.isalnum() for ch in line):
        return None
    return line


def window(config: Any) -> timedelta:
    """How long after a first answer ended its conversation may still get a title."""
    return timedelta(seconds=float(config["TITLE_TIMEOUT_SECONDS"]) + _WINDOW_MARGIN)


def may_get_title(rows: list[Conversation], config: Any) -> list[Conversation]:
    """Those of ``rows`` that are recent enough to be getting a title now (active within the
    ``window``, not renamed); the caller asks the database which of them have had only one
    complete answer (``queries.conversations.first_answered_among``)."""
    if not config["TITLES"]:
        return []
    since = utcnow() - window(config)
    return [c for c in rows if not c.title_renamed and c.updated_at and c.updated_at >= since]


def _wanted(app: Flask, job: Job, status: str) -> bool:
    """Whether the answer that just ended (``status``) should title its conversation."""
    if not app.config["TITLES"] or status != COMPLETE or job.prefix:
        return False
    with short_session(app) as session:
        row = session.execute(conversations.title_state(job.conversation_id)).first()
    return row is not None and not row[0] and row[1] == 1


def _last_user_message(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def ask(app: Flask, job: Job, answer: str) -> str | None:
    """The title ``job``'s provider and model give the conversation, cleaned; None if the
    request failed, took longer than ``TITLE_TIMEOUT_SECONDS`` or brought nothing usable."""
    seconds = float(app.config["TITLE_TIMEOUT_SECONDS"])
    cancel = Cancellation()
    timer = threading.Timer(seconds, cancel.cancel, args=("title timeout",))
    timer.daemon = True
    timer.start()
    try:
        provider = providers(app).get(job.provider)
        parts = provider.create_completion(
            job.model, prompt(_last_user_message(job.messages), answer), False,
            max_tokens=MAX_TOKENS, temperature=0.0, timeout=(min(seconds, 5.0), seconds),
            cancel=cancel)
        text = "".join(parts)
    except ProviderError as exc:
        log.info("no title for conversation %s: %s", job.conversation_id, exc)
        return None
    finally:
        timer.cancel()
    if cancel.is_set():
        log.info("no title for conversation %s: no answer within %.1fs",
                 job.conversation_id, seconds)
        return None
    title = clean(text)
    if title is None:
        log.info("no title for conversation %s: the reply %r is not one",
                 job.conversation_id, text[:80])
    return title


def title_after(app: Flask, job: Job, status: str, answer: str) -> None:
    """After ``job``'s answer ended with ``status`` and text ``answer``: give its conversation
    a generated title if this was its first complete answer (see the module's docstring).
    Never raises: a title is a nicety, its failure is logged."""
    try:
        if not _wanted(app, job, status):
            return
        title = ask(app, job, answer)
        if title is None:
            return
        with short_session(app) as session:
            session.execute(conversations.SET_GENERATED_TITLE,
                            {"conversation_id": job.conversation_id, "title": title})
    except Exception:  # noqa: BLE001 - the answer is saved already; a title must not fail it
        log.exception("titling conversation %s failed", job.conversation_id)
