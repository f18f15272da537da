"""Generation settings as plain values: a person's defaults, a conversation's override, and
what a new answer will use."""

from __future__ import annotations

from typing import Any

from ..models import Conversation, User, UserSettings
from .schema import MODEL_CHARS, NUMBERS, PROVIDER_CHARS, Invalid, check_system_prompt, check_text

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


_CHECKS = {
    "provider": lambda value: check_text(value, "Provider", PROVIDER_CHARS),
    "model": lambda value: check_text(value, "Model", MODEL_CHARS),
    "system_prompt": check_system_prompt,
    **{name: number.check for name, number in NUMBERS.items()},
}


def _usable(name: str, value: Any) -> bool:
    """Whether a stored value has the schema's type and bounds (a provider no longer offered
    is still usable: a new answer falls back to the default one)."""
    try:
        _CHECKS[name](value)
    except Invalid:
        return False
    return True


def effective(user: User, conversation: Conversation | None) -> dict[str, Any]:
    """The settings a new answer in ``conversation`` uses: its own, else the person's.

    A stored value the schema refuses (kept by an older import or share copy, which did not
    check) counts as not set, so such a conversation still answers."""
    if conversation is not None and isinstance(conversation.settings, dict) \
            and conversation.settings:
        return {**DEFAULTS, **{k: v for k, v in conversation.settings.items()
                               if k in FIELDS and _usable(k, v)}}
    return from_user(user.settings)


def sampling(values: dict[str, Any]) -> dict[str, Any]:
    """The sampling parameters to send: the seed's four, and ``max_tokens`` when set."""
    params = {name: float(values[name] if values.get(name) is not None else DEFAULTS[name])
              for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty")}
    if values.get("max_tokens"):
        params["max_tokens"] = int(values["max_tokens"])
    return params
