"""A provider that answers from a script: the app tests' stand-in for a model.

It records every call (model, messages, parameters) so tests can check what reached the
provider, and can pause between tokens, fail mid-answer, or run until cancelled. A request for
a whole answer (``stream=False``: a conversation's title) is recorded apart, in
``whole_calls``, and answered with ``whole`` only when a test scripted one (else it fails as an
upstream would, and the conversation keeps its first line as its title).
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

from webapp.providers.base import AbstractProvider, CreateResult, ProviderError, sampling_kwargs


class ScriptedProvider(AbstractProvider):
    name = "scripted"
    label = "Scripted test provider"
    working = True
    supports_stream = True
    models: ClassVar[tuple[str, ...]] = ("script-1", "script-2")
    tokens: ClassVar[list[str]] = ["Hello", " **world**", "!"]
    delay: ClassVar[float] = 0.0
    fail_with: ClassVar[Exception | None] = None
    endless: ClassVar[bool] = False
    #: What the answer's generator returns at its end, as a provider's finish reason.
    finish_reason: ClassVar[str | None] = None
    calls: ClassVar[list[dict[str, Any]]] = []
    #: When set, the answer waits (up to 30 s) for this event before its last token: a test
    #: acts while the answer is surely still being written.
    hold: ClassVar[threading.Event | None] = None
    #: The answer to a request with ``stream=False``, yielded at once; None: such a request
    #: fails. When ``whole_hold`` is given, it first waits (up to 30 s) for that event (a
    #: cancel, such as a timeout's, cuts the wait short), then raises ``whole_fails`` if set.
    whole: ClassVar[str | None] = None
    whole_hold: ClassVar[threading.Event | None] = None
    whole_fails: ClassVar[Exception | None] = None
    whole_calls: ClassVar[list[dict[str, Any]]] = []
    started: ClassVar[threading.Event]
    closed: ClassVar[threading.Event]

    @classmethod
    def make(cls, **attrs: Any) -> type[ScriptedProvider]:
        attrs.setdefault("calls", [])
        attrs.setdefault("whole_calls", [])
        attrs.setdefault("started", threading.Event())
        attrs.setdefault("closed", threading.Event())
        return type("ScriptedProvider", (cls,), attrs)

    @classmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        cls.check_model(model)
        cancel = kwargs.pop("cancel", None)
        if not stream:
            cls.whole_calls.append({"model": model, "messages": messages,
                                    "params": sampling_kwargs(kwargs), "kwargs": kwargs})
            return cls._whole(cancel)
        cls.calls.append({"model": model, "messages": messages, "stream": stream,
                          "params": sampling_kwargs(kwargs), "kwargs": kwargs})
        return cls._run(cancel)

    @classmethod
    def _whole(cls, cancel) -> CreateResult:
        deadline = time.monotonic() + 30
        while cls.whole_hold is not None and not cls.whole_hold.wait(0.01):
            if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                return None
        if cls.whole_fails is not None:
            raise cls.whole_fails
        if cls.whole is None:
            raise ProviderError("no whole answer scripted", provider="scripted")
        yield cls.whole
        return "stop"

    @classmethod
    def _run(cls, cancel) -> CreateResult:
        cls.started.set()
        try:
            i = 0
            while True:
                if cls.endless:
                    token = f"t{i} "
                elif i < len(cls.tokens):
                    token = cls.tokens[i]
                else:
                    break
                if cancel is not None and cancel.is_set():
                    return None
                if cls.delay:
                    time.sleep(cls.delay)
                if cls.hold is not None and i == len(cls.tokens) - 1:
                    cls.hold.wait(30)
                yield token
                i += 1
            if cls.fail_with is not None:
                raise cls.fail_with
            return cls.finish_reason
        finally:
            cls.closed.set()


def failing(message: str = "upstream exploded", status: int = 503) -> ProviderError:
    return ProviderError(message, status=status, provider="scripted")
