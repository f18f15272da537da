"""The row of controls under a message: its versions ("Previous version", "2 / 3", "Next
version"), Regenerate and Continue on an answer, Edit on the person's message.

Every control is a form, so it works without JavaScript; with htmx its answer replaces the
conversation's messages (or the message). Built in Python rather than as template macros, as
``rendering.message_info`` is: a page prints it for every message, and for a conversation of
1,000 messages in three versions the macros (a ``url_for`` and a CSRF field per form) were
most of the page's server time.
"""

from __future__ import annotations

from html import escape

from flask import g, url_for
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from ..tree import Versions

#: An id no message has, built into each route's address once per request and replaced.
_SLOT = 1999999999

_ERRORS = 'hx-status:4xx="target:#composer-error, swap:innerHTML"'


def _address(endpoint: str, message_id: int) -> str:
    """``url_for(endpoint, message_id=…)`` at the cost of a string replace."""
    cache = g.setdefault("_message_addresses", {})
    pattern = cache.get(endpoint)
    if pattern is None:
        pattern = cache[endpoint] = url_for(endpoint, message_id=_SLOT)
    return pattern.replace(str(_SLOT), str(message_id))


def _csrf() -> str:
    return f'<input type="hidden" name="csrf_token" value="{escape(generate_csrf())}">'


def _post(endpoint: str, message_id: int, label: str, *, target: str = "#messages",
          swap: str = "innerHTML", attrs: str = "") -> str:
    """One control as a form posting to a message's route."""
    address = _address(endpoint, message_id)
    return (f'<form class="msg-action" method="post" action="{address}" hx-post="{address}" '
            f'hx-target="{target}" hx-swap="{swap}" {_ERRORS}>{_csrf()}'
            f'<button type="submit"{attrs}>{label}</button></form>')


def version_nav(message_id: int, versions: Versions | None) -> str:
    """Previous / Next version and "n / total", for a message with siblings ('' without)."""
    if versions is None or versions.total < 2:
        return ""
    parts = ['<nav class="versions" aria-label="Versions of this message">']
    for label, target, sign in (("Previous version", versions.previous, "‹"),
                                ("Next version", versions.next, "›")):
        if label == "Next version":
            parts.append(f'<span class="version-count">{versions.number} / '
                         f'{versions.total}</span>')
        disabled = "" if target else " disabled"
        parts.append(_post("chat.choose", target or message_id, sign,
                           attrs=f' class="icon" aria-label="{label}" title="{label}"'
                                 f'{disabled}'))
    parts.append("</nav>")
    return "".join(parts)


def _edit(m) -> str:
    """Edit: in place with htmx; without JavaScript, the page with the message as a form."""
    page = url_for("chat.conversation", conversation_id=m.conversation_id)
    return (f'<form class="msg-action" method="get" action="{page}#m-{m.id}" '
            f'hx-get="{_address("chat.edit", m.id)}" hx-target="#m-{m.id}" '
            f'hx-swap="outerHTML"><input type="hidden" name="edit" value="{m.id}">'
            f'<button type="submit" class="edit">Edit</button></form>')


def can_continue(m, last: bool) -> bool:
    """Whether an answer can be continued: nothing follows it and it was stopped, or cut at
    its length, with some text."""
    return bool(last and m.content and (
        m.status == "stopped" or (m.status == "complete" and m.finish_reason == "length")))


def message_tools(m, versions: Versions | None, last: bool) -> Markup:
    """The controls under message ``m`` (``versions``: where it stands among its siblings;
    ``last``: nothing follows it)."""
    parts = [version_nav(m.id, versions)]
    if m.role == "user":
        parts.append(_edit(m))
    elif m.status not in ("pending", "streaming"):
        parts.append(_post("chat.regenerate", m.id, "Regenerate"))
        if can_continue(m, last):
            parts.append(_post("chat.continue_", m.id, "Continue", target=f"#m-{m.id}",
                               swap="outerHTML"))
    inside = "".join(parts)
    # Safe: labels are constants, ids are integers, addresses come from url_for and the CSRF
    # token is escaped.
    return Markup(f'<div class="msg-tools">{inside}</div>' if inside else "")  # noqa: S704
