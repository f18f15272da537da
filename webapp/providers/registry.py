"""Which providers this installation offers, how they are configured, and whether they work.

The registry is built from a plain mapping (the Flask config, or a dict in a script), so it
knows nothing of Flask. The keys it reads are the ``provider`` rows of the settings table
(``webapp/settings_table.py``), which gives their defaults and bounds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..settings_table import BY_NAME
from . import local
from .base import AbstractProvider, ProviderError
from .equing import Equing
from .local import LocalModel
from .openai_compat import OpenAICompatible

#: Every provider class the app knows, by name.
PROVIDER_CLASSES: dict[str, type[AbstractProvider]] = {
    LocalModel.name: LocalModel,
    Equing.name: Equing,
    OpenAICompatible.name: OpenAICompatible,
}

class ConfigError(ValueError):
    """A provider setting is wrong; the message says which and why."""


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]


def parse_timeout(value: Any) -> float | tuple[float, float]:
    """``'5,120'`` or ``(5, 120)`` -> ``(5.0, 120.0)``; ``'30'`` or ``30`` -> ``30.0``."""
    parts = _split(value) if isinstance(value, str) else value
    try:
        if isinstance(parts, list | tuple):
            numbers = tuple(float(p) for p in parts)
        else:
            numbers = (float(parts),)
    except (TypeError, ValueError):
        raise ConfigError(f"PROVIDER_TIMEOUT must be seconds like '5,120', not {value!r}") from None
    if len(numbers) not in (1, 2) or any(n <= 0 for n in numbers):
        raise ConfigError(f"PROVIDER_TIMEOUT must be one or two positive numbers, not {value!r}")
    return numbers[0] if len(numbers) == 1 else (numbers[0], numbers[1])


def check_url(key: str, value: str) -> str:
    """An http(s) URL with a host, else ``ConfigError``; returned with a trailing slash."""
    schemes = BY_NAME[key].schemes
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        allowed = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ConfigError(f"{key} must be an {allowed} URL, not {value!r}")
    return value if value.endswith("/") else value + "/"


def _text(config: Mapping[str, Any], key: str) -> Any:
    """The value of ``key``, or the table's default when it is unset or empty."""
    return config.get(key) or BY_NAME[key].default


def _whole_number(config: Mapping[str, Any], key: str) -> int:
    """``key`` as a whole number within the table's bounds; its default when unset, empty or
    0. Text is taken too (a script's plain dict)."""
    setting = BY_NAME[key]
    value = config.get(key)
    if value in (None, ""):
        return setting.default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a whole number, not {value!r}") from None
    problem = setting.problem(number)
    if problem:
        raise ConfigError(problem)
    return number or setting.default


@dataclass
class ProbeResult:
    """What a health probe found: whether it works, why not, and how long it took."""

    name: str
    working: bool
    detail: str
    seconds: float


class ProviderRegistry:
    """The enabled, configured provider classes of one installation."""

    def __init__(self, providers: Mapping[str, type[AbstractProvider]], default: str):
        if default not in providers:
            raise ConfigError(f"DEFAULT_PROVIDER {default!r} is not enabled "
                              f"(enabled: {', '.join(providers) or 'none'})")
        self._providers = dict(providers)
        self.default = default

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ProviderRegistry:
        """Build the registry from the configuration's provider settings."""
        timeout = parse_timeout(_text(config, "PROVIDER_TIMEOUT"))
        local_ok = local.available() or bool(config.get("LOCAL_MODEL_PATH"))
        openai_url = _text(config, "OPENAI_BASE_URL")
        names = _split(config.get("PROVIDERS"))
        if not names:
            names = (["local"] if local_ok else []) + ["equing"] + (["openai"] if openai_url
                                                                      else [])
        unknown = [n for n in names if n not in PROVIDER_CLASSES]
        if unknown:
            raise ConfigError(f"PROVIDERS names unknown providers: {', '.join(unknown)} "
                              f"(known: {', '.join(PROVIDER_CLASSES)})")
        configured: dict[str, type[AbstractProvider]] = {}
        for name in names:
            if name == "local":
                configured[name] = LocalModel.configured(
                    model_path=_text(config, "LOCAL_MODEL_PATH"),
                    n_ctx=_whole_number(config, "LOCAL_N_CTX"),
                    n_threads=_whole_number(config, "LOCAL_THREADS"),
                    default_max_tokens=_whole_number(config, "LOCAL_MAX_TOKENS"),
                    working=local_ok,
                )
            elif name == "equing":
                url = check_url("EQUING_URL", _text(config, "EQUING_URL") or Equing.url)
                configured[name] = Equing.configured(
                    url=url, timeout=timeout, api_key=_text(config, "EQUING_API_KEY"))
            elif name == "openai":
                if not openai_url:
                    raise ConfigError("the openai provider needs OPENAI_BASE_URL")
                configured[name] = OpenAICompatible.configured(
                    url=check_url("OPENAI_BASE_URL", openai_url),
                    api_key=_text(config, "OPENAI_API_KEY"),
                    models=tuple(_split(config.get("OPENAI_MODELS"))),
                    timeout=timeout,
                )
        default = config.get("DEFAULT_PROVIDER") or ("local" if "local" in configured
                                                     else names[0] if names else "")
        return cls(configured, default)

    def register(self, provider: type[AbstractProvider]) -> None:
        """Enable one more provider class under its ``name`` (plugins, tests)."""
        self._providers[provider.name] = provider

    def names(self) -> list[str]:
        """Enabled provider names, in configuration order."""
        return list(self._providers)

    def get(self, name: str) -> type[AbstractProvider]:
        """The configured provider called ``name``; ``KeyError`` if it is not enabled."""
        return self._providers[name]

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self):
        return iter(self._providers.values())

    def default_provider(self) -> type[AbstractProvider]:
        """The provider used when nobody chose one."""
        return self._providers[self.default]

    def models(self, name: str) -> list[str]:
        """The models a person may pick for provider ``name``."""
        provider = self.get(name)
        return [m for m in provider.models if provider.supports_model(m)]

    def probe(self, name: str, timeout: float | tuple[float, float] = (3.0, 30.0)
              ) -> ProbeResult:
        """Ask provider ``name`` for a one-token answer and set its ``working`` flag from it."""
        provider = self.get(name)
        started = time.perf_counter()
        model = provider.default_model() or "gpt-3.5-turbo"
        try:
            text = "".join(provider.create_completion(
                model, [{"role": "user", "content": "Say OK."}], stream=False,
                max_tokens=1, temperature=0, timeout=timeout))
            working, detail = True, f"answered {text[:20]!r}"
        except ProviderError as exc:
            working, detail = False, str(exc)
        provider.working = working
        return ProbeResult(name, working, detail, time.perf_counter() - started)
