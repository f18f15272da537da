"""Generation settings as plain values: a person's defaults, a conversation's override, and
what a new answer will use."""

from __future__ import annotations

from typing import Any

from ..models import Conversation, User, UserSettings

#: The fields of a generation setting, in form order.
FIELDS = ("provider", "model", "temperature", "top_p", "presence_penalty", "frequency_penalty",
          "max_tokens", "system_prompt")

#: Defaults for a new person: the seed's (NextChat's) sampling values.
DEFAULTS: dict[str, Any] = {"provider": "", "model": "", "temperature": 0.5, "top_p": 1.0,
                            "presence_penalty": 0.0, "frequency_penalty": 0.0,
                            "max_tokens": None, "system_prompt": ""}


def from_user(settings: UserSettings | None) -> dict[str, Any]:
    """A person's defaults as a dict (the seed's values where nothing is stored)."""
    if settings is None:
        return dict(DEFAULTS)
    values = {name: getattr(settings, name) for name in FIELDS}
    return {name: DEFAULTS[name] if values[name] is None and DEFAULTS[name] is not None
            else values[name] for name in FIELDS}


def effective(user: User, conversation: Conversation | None) -> dict[str, Any]:
    """The settings a new answer in ``conversation`` uses: its own, else the person's."""
    if conversation is not None and conversation.settings:
        return {**DEFAULTS, **{k: v for k, v in conversation.settings.items() if k in FIELDS}}
    return from_user(user.settings)


def sampling(values: dict[str, Any]) -> dict[str, Any]:
    """The sampling parameters to send: the seed's four, and ``max_tokens`` when set."""
    params = {name: float(values[name] if values.get(name) is not None else DEFAULTS[name])
              for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty")}
    if values.get("max_tokens"):
        params["max_tokens"] = int(values["max_tokens"])
    return params
