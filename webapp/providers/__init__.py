"""Model providers: the seed's interface, Equing, OpenAI-compatible servers, the local model.

Nothing in this package imports Flask; the app reaches it through ``ProviderRegistry``.
"""

from .base import (
    AbstractProvider,
    Cancellation,
    CreateResult,
    MalformedResponse,
    ModelNotSupported,
    ProviderError,
    UpstreamConnectionError,
    UpstreamHTTPError,
    UpstreamStreamError,
    UpstreamTimeout,
)
from .equing import Equing
from .local import LocalModel
from .openai_compat import OpenAICompatible
from .registry import ConfigError, ProviderRegistry

__all__ = [
    "AbstractProvider", "Cancellation", "ConfigError", "CreateResult", "Equing", "LocalModel",
    "MalformedResponse", "ModelNotSupported", "OpenAICompatible", "ProviderError",
    "ProviderRegistry", "UpstreamConnectionError", "UpstreamHTTPError", "UpstreamStreamError",
    "UpstreamTimeout",
]
