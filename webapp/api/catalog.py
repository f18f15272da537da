"""The models the API offers: ``PROVIDER/MODEL`` ids, aliases, and what a request's name means.

A request names a model as ``PROVIDER/MODEL`` (what ``/v1/models`` lists), as an alias from
``API_MODEL_ALIASES`` (``gpt-3.5-turbo``, which Equing clients always send, is one by default),
or as a bare model name that exactly one enabled provider offers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..providers import ProviderRegistry
from .wire import ApiError

#: In ``API_MODEL_ALIASES``, the word for the default provider's default model.
DEFAULT = "default"


class Choice(NamedTuple):
    """A provider and one of its models."""

    provider: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"


def listed(registry: ProviderRegistry) -> list[Choice]:
    """Every model of every enabled provider, in configuration order. (A provider that takes
    any model, an ``openai`` server without ``OPENAI_MODELS``, lists none but is still asked
    for ``openai/NAME``.)"""
    return [Choice(name, model) for name in registry.names() for model in registry.models(name)]


def parse_aliases(text: str) -> dict[str, str]:
    """``API_MODEL_ALIASES`` as a mapping; ``ValueError`` saying what is wrong."""
    aliases: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in str(text or "").split(","))):
        alias, equals, target = (part.strip() for part in pair.partition("="))
        if not equals or not alias or not target:
            raise ValueError(f"API_MODEL_ALIASES: {pair!r} is not ALIAS=PROVIDER/MODEL")
        aliases[alias] = target
    return aliases


def _provider_model(registry: ProviderRegistry, provider: str, model: str) -> Choice | None:
    if provider not in registry:
        return None
    offered = registry.get(provider)
    model = model or offered.default_model()
    return Choice(provider, model) if model and offered.supports_model(model) else None


def _alias(registry: ProviderRegistry, target: str) -> Choice | None:
    if target == DEFAULT:
        default = registry.default_provider()
        return _provider_model(registry, registry.default, default.default_model())
    provider, _, model = target.partition("/")
    return _provider_model(registry, provider, model)


def resolve(registry: ProviderRegistry, config: Any, name: str) -> Choice:
    """The provider and model ``name`` stands for; ``ApiError`` 404 if none, 400 if several
    providers offer that bare name."""
    provider, slash, model = name.partition("/")
    if slash and provider in registry:
        found = _provider_model(registry, provider, model)
        if found is not None:
            return found
    target = parse_aliases(config.get("API_MODEL_ALIASES", "")).get(name)
    if target is not None:
        found = _alias(registry, target)
        if found is not None:
            return found
    offering = [choice for choice in listed(registry) if choice.model == name]
    if len(offering) == 1:
        return offering[0]
    if len(offering) > 1:
        ids = ", ".join(choice.id for choice in offering)
        raise ApiError(400, f"The model {name!r} is offered by several providers: name one of "
                            f"{ids}.", code="model_ambiguous", param="model")
    raise ApiError(404, f"The model {name!r} does not exist or is not enabled here; "
                        "GET /v1/models lists those that are.", code="model_not_found",
                   param="model")


def model_object(choice: Choice) -> dict[str, Any]:
    """A model as ``/v1/models`` lists it."""
    return {"id": choice.id, "object": "model", "created": 0, "owned_by": choice.provider}
