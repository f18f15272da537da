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


class _Forms:
    """What every control of one request shares, made once: the CSRF field, and each route's
    address with a slot for the id (``url_for`` per control was most of the cost)."""

    def __init__(self) -> None:
        self.csrf = (f'<input type="hidden" name="csrf_token" '
                     f'value="{escape(generate_csrf())}">')
        self._patterns: dict[str, str] = {}

    def address(self, endpoint: str, value: int, key: str = "message_id") -> str:
        """``url_for(endpoint, **{key: value})`` at the cost of a string replace."""
        pattern = self._patterns.get(endpoint)
        if pattern is None:
            pattern = self._patterns[endpoint] = url_for(endpoint, **{key: _SLOT})
        return pattern.replace(str(_SLOT), str(value))

    def post(self, endpoint: str, message_id: int, label: str, *, target: str = "#messages",
             swap: str = "innerHTML", attrs: str = "") -> str:
        """One control as a form posting to a message's route."""
        address = self.address(endpoint, message_id)
        return (f'<form class="msg-action" method="post" action="{address}" '
                f'hx-post="{address}" hx-target="{target}" hx-swap="{swap}" {_ERRORS}>'
                f'{self.csrf}<button type="submit"{attrs}>{label}</button></form>')

    def edit(self, m) -> str:
        """Edit: in place with htmx; without JavaScript, the page with the message as a
        form."""
        page = self.address("chat.conversation", m.conversation_id, "conversation_id")
        return (f'<form class="msg-action" method="get" action="{page}#m-{m.id}" '
                f'hx-get="{self.address("chat.edit", m.id)}" hx-target="#m-{m.id}" '
                f'hx-swap="outerHTML"><input type="hidden" name="edit" value="{m.id}">'
                f'<button type="submit" class="edit">Edit</button></form>')

    def versions(self, message_id: int, versions: Versions | None) -> str:
        """Previous / Next version and "n / total", for a message with siblings ('' without)."""
        if versions is None or versions.total < 2:
            return ""
        previous = self._version("Previous version", "‹", versions.previous, message_id)
        following = self._version("Next version", "›", versions.next, message_id)
        return (f'<nav class="versions" aria-label="Versions of this message">{previous}'
                f'<span class="version-count">{versions.number} / {versions.total}</span>'
                f'{following}</nav>')

    def _version(self, label: str, sign: str, target: int | None, message_id: int) -> str:
        disabled = "" if target else " disabled"
        return self.post("chat.choose", target or message_id, sign,
                         attrs=f' class="icon" aria-label="{label}" title="{label}"{disabled}')


def _forms() -> _Forms:
    """This request's ``_Forms``."""
    forms = g.get("_message_forms")
    if forms is None:
        forms = g._message_forms = _Forms()
    return forms


def can_continue(m, last: bool) -> bool:
    """Whether an answer can be continued: nothing follows it and it was stopped, or cut at
    its length, with some text."""
    return bool(last and m.content and (
        m.status == "stopped" or (m.status == "complete" and m.finish_reason == "length")))


def message_tools(m, versions: Versions | None, last: bool) -> Markup:
    """The controls under message ``m`` (``versions``: where it stands among its siblings;
    ``last``: nothing follows it)."""
    forms = _forms()
    parts = [forms.versions(m.id, versions)]
    if m.role == "user":
        parts.append(forms.edit(m))
    elif m.status not in ("pending", "streaming"):
        parts.append(forms.post("chat.regenerate", m.id, "Regenerate"))
        if can_continue(m, last):
            parts.append(forms.post("chat.continue_", m.id, "Continue", target=f"#m-{m.id}",
                                    swap="outerHTML"))
    inside = "".join(parts)
    # Safe: labels are constants, ids are integers, addresses come from url_for and the CSRF
    # token is escaped.
    return Markup(f'<div class="msg-tools">{inside}</div>' if inside else "")  # noqa: S704
