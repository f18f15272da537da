"""The provider interface every model backend implements, and its errors.

This module is the seed's ``AbstractProvider`` contract (see ``shared/seed/EQUING-SPEC.md``):
class attributes that describe what a provider can do, and ``create_completion`` which turns a
list of chat messages into a generator of text. Nothing here knows about Flask.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

#: What ``create_completion`` returns: a generator of text. With ``stream=True`` it yields
#: tokens as they arrive; with ``stream=False`` it yields the whole answer once.
CreateResult = Generator[str, None, None]

#: Seconds to wait for the connection, then for each read, when a caller names no timeout.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 120.0)


class ProviderError(requests.exceptions.RequestException):
    """Any failure of a provider.

    It subclasses ``requests.exceptions.RequestException`` so that the seed's promise
    (``create_completion`` raises ``RequestException`` when the request fails) holds for every
    provider, including the local one that makes no HTTP request at all.

    ``status`` is the upstream's HTTP status when there was one, ``message`` the upstream's own
    words (or ours when it said nothing useful), ``provider`` the provider's name.
    """

    def __init__(self, message: str, *, status: int | None = None, provider: str | None = None,
                 body: str | None = None):
        # Named explicitly: with MalformedResponse's second base, super() would reach
        # json.JSONDecodeError.__init__, which takes other arguments.
        requests.exceptions.RequestException.__init__(self, message)
        self.message = message
        self.status = status
        self.provider = provider
        self.body = body

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        status = f"HTTP {self.status}: " if self.status else ""
        return f"{where}{status}{self.message}"


class ModelNotSupported(ProviderError, ValueError):
    """The provider does not serve the model that was asked for (raised before any I/O)."""


class UpstreamHTTPError(ProviderError):
    """The upstream answered with an HTTP error status (4xx/5xx)."""


class UpstreamStreamError(ProviderError):
    """The upstream sent an error object, or ended the stream before finishing."""


class UpstreamTimeout(ProviderError, requests.exceptions.Timeout):
    """The upstream did not connect, or did not send anything, within the timeout."""


class UpstreamConnectionError(ProviderError, requests.exceptions.ConnectionError):
    """The connection to the upstream failed or was reset."""


class MalformedResponse(ProviderError, requests.exceptions.JSONDecodeError):
    """The upstream sent something that is not the JSON it should be.

    It is also a ``json.JSONDecodeError`` (through requests' own subclass), which keeps the
    seed's second promise: invalid JSON raises ``JSONDecodeError``.
    """

    def __init__(self, message: str, *, doc: str = "", pos: int = 0, **kwargs: Any):
        json.JSONDecodeError.__init__(self, message, doc, pos)
        ProviderError.__init__(self, message, **kwargs)
        # JSONDecodeError.__init__ builds args from msg/lineno; keep ours readable.
        self.args = (message,)


class Cancellation:
    """A thread-safe signal that a generation should stop.

    The caller passes one to ``create_completion(cancel=...)`` and calls ``cancel()`` from any
    thread. Providers check ``is_set()`` between tokens and register callbacks that unblock
    whatever they are waiting on (an HTTP provider shuts its socket down, so a read that is
    blocked on a silent upstream returns at once instead of at the read timeout).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        #: Why it was cancelled, when the canceller said (shown to the person).
        self.reason: str | None = None

    def is_set(self) -> bool:
        """Whether ``cancel()`` has been called."""
        return self._event.is_set()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when cancelled (at once if that already happened)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def discard(self, callback: Callable[[], None]) -> None:
        """Forget ``callback`` (registered with ``on_cancel``) if it has not run."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def cancel(self, reason: str | None = None) -> None:
        """Set the signal and run the registered callbacks once."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: S112 - cancelling must never fail the canceller
                continue


@dataclass(frozen=True)
class Param:
    """One sampling parameter a provider accepts: its type, default and allowed range."""

    name: str
    type: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def describe(self) -> str:
        """A one-line description such as ``temperature: float = 0.5 (0..2)``."""
        bounds = ""
        if self.minimum is not None or self.maximum is not None:
            bounds = f" ({'' if self.minimum is None else self.minimum}.."
            bounds += f"{'' if self.maximum is None else self.maximum})"
        default = "unset" if self.default is None else repr(self.default)
        return f"{self.name}: {self.type.__name__} = {default}{bounds}"


#: The sampling parameters of the seed, with NextChat's defaults, plus ``max_tokens``.
SAMPLING_PARAMS: tuple[Param, ...] = (
    Param("temperature", float, 0.5, 0.0, 2.0, "randomness of sampling"),
    Param("top_p", float, 1.0, 0.0, 1.0, "nucleus sampling mass"),
    Param("presence_penalty", float, 0.0, -2.0, 2.0, "penalise tokens already present"),
    Param("frequency_penalty", float, 0.0, -2.0, 2.0, "penalise tokens by their frequency"),
    Param("max_tokens", int, None, 1, 32768, "longest answer, in tokens"),
)


def sampling_kwargs(kwargs: dict[str, Any], params: tuple[Param, ...] = SAMPLING_PARAMS
                    ) -> dict[str, Any]:
    """Pick the known sampling parameters out of ``kwargs``, defaults filled in, checked.

    Unknown keys are ignored (the seed passes ``**kwargs`` through); a value of the wrong type
    or outside its range raises ``ValueError`` naming the parameter.
    """
    chosen: dict[str, Any] = {}
    for param in params:
        value = kwargs.get(param.name, param.default)
        if value is None:
            if param.default is not None:
                chosen[param.name] = param.default
            continue
        try:
            value = param.type(value)
        except (TypeError, ValueError):
            kind = param.type.__name__
            raise ValueError(f"{param.name} must be a {kind}, not {value!r}") from None
        if isinstance(value, float) and value != value:  # NaN compares unequal to itself
            raise ValueError(f"{param.name} must be a number")
        if param.minimum is not None and value < param.minimum:
            raise ValueError(f"{param.name} must be at least {param.minimum}")
        if param.maximum is not None and value > param.maximum:
            raise ValueError(f"{param.name} must be at most {param.maximum}")
        chosen[param.name] = value
    return chosen


#: The most stop sequences a call may name, and the longest one, in characters (OpenAI's
#: bounds, which the API checks too).
MOST_STOPS = 4
MOST_STOP_CHARS = 200


def stop_sequences(kwargs: dict[str, Any]) -> list[str]:
    """The ``stop`` sequences named in ``kwargs``, checked: a string, or a list of at most
    ``MOST_STOPS`` non-empty strings of at most ``MOST_STOP_CHARS`` characters; ``[]`` when
    there are none. Anything else raises ``ValueError`` naming ``stop``.

    It is not a ``Param``: ``SAMPLING_PARAMS`` also makes the settings form's fields, and stop
    sequences come only from API calls.
    """
    value = kwargs.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list | tuple) or len(stops) > MOST_STOPS or not all(
            isinstance(s, str) and 0 < len(s) <= MOST_STOP_CHARS for s in stops):
        raise ValueError(f"stop must be a string or a list of at most {MOST_STOPS} non-empty "
                         f"strings of at most {MOST_STOP_CHARS} characters, not {value!r:.80}")
    return list(stops)


def check_messages(messages: Any, provider: str) -> None:
    """Raise ``ProviderError`` unless ``messages`` is ``[{"role": str, "content": str}, ...]``."""
    if not isinstance(messages, list) or not messages:
        raise ProviderError("messages must be a non-empty list", provider=provider)
    for message in messages:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise ProviderError("each message needs a string role and content",
                                provider=provider)


def drop_oldest(messages: list[dict[str, str]], costs: list[int], budget: int
                ) -> tuple[list[dict[str, str]], int]:
    """``messages`` without their oldest turns, so that their ``costs`` add up to at most
    ``budget``; returns the messages kept and how many were dropped.

    The leading system prompt and the newest message are always kept (even if they alone are
    over the budget: the model then says the prompt is too long, which is the truth).
    """
    start = 1 if messages and messages[0].get("role") == "system" else 0
    total = sum(costs)
    first = start  # index of the oldest turn kept
    while total > budget and first < len(messages) - 1:
        total -= costs[first]
        first += 1
    return messages[:start] + messages[first:], first - start


class AbstractProvider(ABC):
    """The abstract base of every provider (the seed's interface).

    Subclasses set the class attributes and implement ``create_completion``. Providers are
    used as classes, never instantiated, as in the seed: ``Equing.create_completion(...)``.
    A configured variant (another URL, timeout or model list) is a subclass made with
    ``configured(...)``.
    """

    #: Short name used in configuration, the database and the UI.
    name: ClassVar[str] = "abstract"
    #: Human-readable label.
    label: ClassVar[str] = "Abstract provider"
    #: Base URL of the service ('' for providers that make no HTTP requests).
    url: ClassVar[str] = ""
    #: Whether the provider works right now; the registry's health probe sets it.
    working: ClassVar[bool] = False
    supports_stream: ClassVar[bool] = False
    supports_gpt_35_turbo: ClassVar[bool] = False
    supports_gpt_4: ClassVar[bool] = False
    #: Model ids this provider serves; the first is its default.
    models: ClassVar[tuple[str, ...]] = ()
    #: The sampling parameters it accepts.
    params: ClassVar[tuple[Param, ...]] = SAMPLING_PARAMS
    #: (connect, read) seconds, or one number for both, as requests takes it.
    timeout: ClassVar[float | tuple[float, float]] = DEFAULT_TIMEOUT

    @classmethod
    @abstractmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        """Answer ``messages`` with ``model``: a generator of text.

        ``kwargs`` carries sampling parameters (``temperature``, ``top_p``,
        ``presence_penalty``, ``frequency_penalty``, ``max_tokens``), ``stop`` (stop
        sequences: the answer ends before the first of them, which is not part of it), and
        optionally ``timeout`` (as requests takes it) and ``cancel`` (a ``Cancellation``).
        ``read_params`` reads and checks all but the last two.
        Raises ``ProviderError`` (a ``requests.exceptions.RequestException``) on failure.
        """

    @classmethod
    def read_params(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The parameters of ``kwargs`` to pass on: the sampling ones (``sampling_kwargs``,
        defaults filled in) and ``stop`` when there are stop sequences. A bad value raises
        ``ProviderError`` naming the parameter, before any I/O."""
        try:
            params = sampling_kwargs(kwargs, cls.params)
            stops = stop_sequences(kwargs)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=cls.name) from None
        if stops:
            params["stop"] = stops
        return params

    @classmethod
    def fit_history(cls, messages: list[dict[str, str]], params: dict[str, Any]
                    ) -> tuple[list[dict[str, str]], int]:
        """``messages`` cut to what the model can read with room for its answer, oldest turns
        first, and how many were dropped. A provider that does not know its model's context
        window sends them as they are (the app's history bounds still apply)."""
        return messages, 0

    @classmethod
    def default_model(cls) -> str:
        """The model used when none is named."""
        return cls.models[0] if cls.models else ""

    @classmethod
    def supports_model(cls, model: str) -> bool:
        """Whether ``model`` may be asked of this provider, honouring the seed's flags."""
        if model.startswith("gpt-4") and not cls.supports_gpt_4:
            return False
        if model.startswith("gpt-3.5-turbo") and not cls.supports_gpt_35_turbo:
            return False
        return not cls.models or model in cls.models

    @classmethod
    def check_model(cls, model: str) -> None:
        """Raise ``ModelNotSupported`` unless ``supports_model(model)``."""
        if not cls.supports_model(model):
            offered = ", ".join(cls.models) or "none"
            raise ModelNotSupported(f"model {model!r} is not supported (offered: {offered})",
                                    provider=cls.name)

    @classmethod
    def describe_params(cls) -> str:
        """What the provider accepts, one parameter a line."""
        return "\n".join(p.describe() for p in cls.params)

    @classmethod
    def configured(cls, **attrs: Any) -> type[AbstractProvider]:
        """A subclass with some class attributes replaced (``url``, ``timeout``, ``models``...).

        Unknown attribute names raise ``AttributeError`` so a typo in configuration is loud.
        """
        for key in attrs:
            if not hasattr(cls, key):
                raise AttributeError(f"{cls.__name__} has no setting {key!r}")
        return type(cls.__name__, (cls,), dict(attrs))

    @classmethod
    def info(cls) -> dict[str, Any]:
        """A plain description for listings: flags, models, URL, whether it works."""
        return {
            "name": cls.name,
            "label": cls.label,
            "url": cls.url,
            "working": cls.working,
            "supports_stream": cls.supports_stream,
            "supports_gpt_35_turbo": cls.supports_gpt_35_turbo,
            "supports_gpt_4": cls.supports_gpt_4,
            "models": list(cls.models),
        }
