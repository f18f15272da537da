"""What a stored generation setting may hold: one schema for the settings forms, the import
and shared links.

The forms build their validators from it (the same bounds, lengths and messages); the import
and the share copy check plain JSON values with ``check_settings`` and ``check_params``. Each
check returns the value as it is stored, or raises ``Invalid`` with the problem in words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Longest system prompt (the form's limit, and the import's).
SYSTEM_PROMPT_CHARS = 8000
#: Column sizes of ``provider`` and ``model`` (see models.py).
PROVIDER_CHARS = 32
MODEL_CHARS = 128
#: A message's ``params`` may carry keys this version does not know (a newer version's
#: record); they are kept if they are this small, so a record round-trips but cannot grow.
EXTRA_PARAMS = 20
EXTRA_PARAM_CHARS = 200


class Invalid(ValueError):
    """A value the schema refuses; ``str()`` is the problem in words. ``status`` is the HTTP
    status an import answers with: 400 for text no database can hold, else 422."""

    status = 422


class BadCharacters(Invalid):
    """Text with characters no column can hold: NUL (PostgreSQL refuses it) or a lone
    surrogate (not a character at all, so it has no UTF-8)."""

    status = 400


def kind(value: Any) -> str:
    """What a JSON value is, in words ("a list", "text", ...), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shown(value: str, limit: int = 40) -> str:
    """``value`` quoted for a message, cut short and with unprintable characters escaped."""
    text = value if len(value) <= limit else value[:limit] + "…"
    text = "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF
                   else f"\\u{ord(c):04x}" for c in text)
    return f"“{text}”"


def check_characters(value: str, label: str) -> str:
    """``value`` if every character of it can be stored, else ``BadCharacters``."""
    if "\x00" in value:
        raise BadCharacters(f"{label} contains a NUL character (\\u0000), which cannot be "
                            "stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadCharacters(f"{label} contains a lone surrogate "
                            f"(\\u{ord(value[exc.start]):04x}), which is not a character"
                            ) from None
    return value


def check_text(value: Any, label: str, limit: int) -> str:
    """Text of at most ``limit`` characters, all storable."""
    if not isinstance(value, str):
        raise Invalid(f"{label} must be text, not {kind(value)}")
    if len(value) > limit:
        raise Invalid(f"{label} is too long ({len(value):,} characters; at most {limit:,})")
    return check_characters(value, label)


@dataclass(frozen=True)
class Number:
    """A numeric setting: its label, its bounds, and whether it must be whole. (Whether a form
    must be given one is the form's business: a stored null means "the default".)"""

    label: str
    low: float
    high: float
    whole: bool = False

    @property
    def message(self) -> str:
        """The out-of-bounds message (the form shows this same sentence)."""
        return f"{self.label} must be between {self.low:g} and {self.high:g}."

    def check(self, value: Any) -> float | int | None:
        """A JSON value as stored: a finite number within bounds (whole if it must be), or
        None for "not set" (the default applies)."""
        if value is None:
            return None
        # bool is an int in Python, but true is not a temperature.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"{self.label} must be a number, not {kind(value)}")
        # A huge int has no float (and is out of bounds anyway): only floats can be NaN.
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"{self.label} must be a finite number")
        if not self.low <= value <= self.high:
            raise Invalid(self.message.rstrip("."))
        if self.whole:
            if value != int(value):
                raise Invalid(f"{self.label} must be a whole number")
            value = int(value)
        return value


#: The numeric settings, by field name.
NUMBERS: dict[str, Number] = {
    "temperature": Number("Temperature", 0, 2),
    "top_p": Number("Top P", 0, 1),
    "presence_penalty": Number("Presence penalty", -2, 2),
    "frequency_penalty": Number("Frequency penalty", -2, 2),
    "max_tokens": Number("Max tokens", 1, 32768, whole=True),
}

PROVIDER_MESSAGE = "Choose one of the providers in the list."


def check_provider(value: Any, registry, allow_default: bool = True) -> str:
    """The name of a provider this installation offers. Stored settings may hold "" for
    "the installation's default" (a person who never chose one); a form never does."""
    value = check_text(value, "Provider", PROVIDER_CHARS)
    if not value and not allow_default:
        raise Invalid(PROVIDER_MESSAGE)
    if value and value not in registry:
        raise Invalid(f"{shown(value)} is not a provider of this site "
                      f"({', '.join(registry.names())}). {PROVIDER_MESSAGE}")
    return value


def check_model(value: Any, provider: str, registry, allow_default: bool = True) -> str:
    """A model that ``provider`` (or, for "", the default provider) offers; "" stands for its
    default model in stored settings, where ``allow_default``."""
    value = check_text(value, "Model", MODEL_CHARS)
    name = provider or registry.default
    if (not value and allow_default) or name not in registry:
        return value
    provider = registry.get(name)
    if not provider.models:
        # A server that lists no models (OPENAI_MODELS empty) takes any model id it is given.
        if not value:
            raise Invalid(f"Type the id of a model {provider.label} offers.")
        return value
    offered = registry.models(name)
    if value not in offered:
        raise Invalid(f"{registry.get(name).label} does not offer {shown(value)}; "
                      f"choose one of: {', '.join(offered) or 'none'}.")
    return value


def check_system_prompt(value: Any) -> str:
    """A system prompt: text of at most ``SYSTEM_PROMPT_CHARS``."""
    if value is None:
        return ""
    return check_text(value, "System prompt", SYSTEM_PROMPT_CHARS)


def _named(name: str, check, *args) -> Any:
    """``check(*args)``, its problem prefixed with the field's name."""
    try:
        return check(*args)
    except Invalid as exc:
        raise type(exc)(f"“{name}”: {exc}") from None


def check_settings(value: Any, registry) -> dict[str, Any] | None:
    """A conversation's own settings as stored (None: the person's defaults apply).

    Keys this version does not use are left out (they would never be read); every known one
    is checked as the form checks it."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise Invalid(f"must be an object of settings, not {kind(value)}")
    settings: dict[str, Any] = {}
    if "provider" in value:
        settings["provider"] = _named("provider", check_provider, value["provider"], registry)
    if "model" in value:
        settings["model"] = _named("model", check_model, value["model"],
                                   settings.get("provider", ""), registry)
    for name, number in NUMBERS.items():
        if name in value:
            settings[name] = _named(name, number.check, value[name])
    if "system_prompt" in value:
        settings["system_prompt"] = _named("system_prompt", check_system_prompt,
                                           value["system_prompt"])
    return settings


def check_params(value: Any) -> dict[str, Any] | None:
    """The parameters an answer was generated with, as stored: the known ones checked like
    settings; a few unknown small scalars kept as they are (a newer version's record)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise Invalid(f"must be an object of parameters, not {kind(value)}")
    params: dict[str, Any] = {}
    extra = 0
    for key, item in value.items():
        try:
            if key in NUMBERS:
                checked = NUMBERS[key].check(item)
                if checked is not None:
                    params[key] = checked
            elif key == "system_prompt":
                params[key] = check_system_prompt(item)
            else:
                check_text(key, "The name", EXTRA_PARAM_CHARS)
                extra += 1
                if extra > EXTRA_PARAMS:
                    raise Invalid(f"more than {EXTRA_PARAMS} unknown parameters")
                params[key] = _unknown_param(item)
        except Invalid as exc:
            raise type(exc)(f"“{shown(key, 40)[1:-1]}”: {exc}") from None
    return params


def _unknown_param(item: Any) -> Any:
    """The value of a parameter this version does not know, if it is a small scalar."""
    if isinstance(item, str):
        check_text(item, "The value", EXTRA_PARAM_CHARS)
    elif isinstance(item, float) and not math.isfinite(item):
        raise Invalid("must be a finite number")
    elif item is not None and not isinstance(item, (bool, int, float)):
        raise Invalid(f"must be text, a number, true, false or null, not {kind(item)}")
    return item
