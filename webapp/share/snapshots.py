"""Snapshots: a conversation as a shared link shows it, taken when the link is made or
updated, and checked whenever it is made, shown or copied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import tree
from ..manage.exports import CONTENT_CHARS, MODEL_CHARS, PROVIDER_CHARS, TITLE_CHARS
from ..models import COMPLETE, FINAL_STATUSES, Conversation, Message, utcnow
from ..rendering import message_html
from ..settings.schema import Invalid, check_params, check_system_prompt, check_text, kind

#: Fields of a message that a share shows (never the error text or the system prompt).
_MESSAGE_FIELDS = ("role", "content", "status", "provider", "model")


#: Longest rendered answer a snapshot holds: its HTML is ours (sanitized when rendered), so
#: this only bounds what a damaged row could make a page print.
HTML_CHARS = 10_000_000


def system_prompt_of(messages: list[Message]) -> str:
    """The system prompt the latest answer of ``messages`` (a conversation's current path)
    was generated with (a value stored by an older import that is not a valid prompt is
    passed over)."""
    for message in reversed(messages):
        prompt = message.params.get("system_prompt") if isinstance(message.params, dict) \
            else None
        if message.role == "assistant" and prompt:
            try:
                return check_system_prompt(prompt)
            except Invalid:
                continue
    return ""


def _shown_params(params) -> dict[str, Any]:
    """An answer's parameters as a share shows them: never the system prompt, and nothing a
    schema check refuses (rows stored by an older import may hold anything)."""
    try:
        checked = check_params(params) or {}
    except Invalid:
        return {}
    checked.pop("system_prompt", None)
    return checked


def _optional(item: dict, key: str, limit: int) -> str | None:
    value = item.get(key)
    return None if value is None else check_text(value, f"“{key}”", limit)


def check_snapshot(snapshot: Any) -> dict[str, Any]:
    """``snapshot`` if it is one a page can show and a copy can continue, else ``Invalid``
    saying what is wrong. Checked when a link is made, shown and copied: a snapshot stored
    before these checks may hold anything."""
    if not isinstance(snapshot, dict):
        raise Invalid(f"the snapshot is {kind(snapshot)}, not an object")
    check_text(snapshot.get("title"), "its title", TITLE_CHARS)
    if snapshot.get("system_prompt") is not None:
        check_system_prompt(snapshot["system_prompt"])
    messages = snapshot.get("messages")
    if not isinstance(messages, list):
        raise Invalid(f"its messages are {kind(messages)}, not a list")
    for number, item in enumerate(messages, 1):
        try:
            if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
                raise Invalid("it needs a role of “user” or “assistant”")
            check_text(item.get("content"), "“content”", CONTENT_CHARS)
            if item.get("status") not in (None, *FINAL_STATUSES):
                raise Invalid("“status” must be one of " + ", ".join(FINAL_STATUSES))
            _optional(item, "html", HTML_CHARS)
            _optional(item, "provider", PROVIDER_CHARS)
            _optional(item, "model", MODEL_CHARS)
            try:
                check_params(item.get("params"))
            except Invalid as exc:
                raise type(exc)(f"“params”: {exc}") from None
        except Invalid as exc:
            raise type(exc)(f"message {number}: {exc}") from None
    return snapshot


def take_snapshot(conversation: Conversation, include_system_prompt: bool) -> dict[str, Any]:
    """The conversation as its page shows it now: the versions shown (its current path, not
    the other branches), finished messages only, system prompt only if asked."""
    path, _ = tree.path_messages(conversation.id)
    messages = []
    for message in path:
        if message.status not in FINAL_STATUSES or (message.role == "assistant"
                                                     and not message.content):
            continue
        item = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
        item["params"] = _shown_params(message.params)
        if message.role == "assistant":
            item["html"] = str(message_html(message))
        item["created_at"] = message.created_at.isoformat(timespec="seconds")
        messages.append(item)
    return check_snapshot({
        "title": conversation.title,
        "system_prompt": system_prompt_of(path) if include_system_prompt else None,
        "messages": messages,
        "taken_at": utcnow().isoformat(timespec="seconds"),
    })


@dataclass
class SharedMessage:
    """A snapshot's message in the shape the chat's ``message`` macro (``read_only``) and
    ``message_html`` read: a finished message with no id and no error text (a snapshot keeps
    neither)."""

    role: str
    content: str
    status: str = COMPLETE
    html: str | None = None
    provider: str | None = None
    model: str | None = None
    error: None = None
    finish_reason: None = None


def shown_messages(snapshot: dict[str, Any]) -> list[SharedMessage]:
    """The messages of a checked snapshot, as the share page shows them."""
    return [SharedMessage(role=item["role"], content=item["content"],
                          status=item.get("status") or COMPLETE, html=item.get("html"),
                          provider=item.get("provider"), model=item.get("model"))
            for item in snapshot["messages"]]
