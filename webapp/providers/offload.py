"""Running long blocking calls without stopping a gevent worker.

Under gunicorn's gevent workers every request of a process shares one OS thread; a call into C
that does not yield (llama.cpp computing a token, loading a model) would freeze every other
answer and page of that worker meanwhile. ``offload`` runs such a call in gevent's pool of real
threads (llama.cpp releases the GIL while it computes), and is a plain call everywhere else.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def cooperative() -> bool:
    """Whether gevent has patched this process's threads (a gevent worker)."""
    # Looked up, not imported: a process that never patched (tests, the CLI) does not load
    # gevent for this question, and patching goes through gevent.monkey, so it is loaded.
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def offload(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, in a real thread when the process is cooperative; exceptions propagate."""
    if not cooperative():
        return fn(*args)
    return sys.modules["gevent"].get_hub().threadpool.apply(fn, args)
