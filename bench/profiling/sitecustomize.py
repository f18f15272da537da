"""Profiling inside the app's gunicorn workers, for ``bench.api_profile`` (which puts this
directory first on the workers' ``PYTHONPATH``; nothing else loads it).

In a process started as ``gunicorn`` it arms two signals in every worker it forks:
``SIGRTMIN`` starts afresh and ``SIGRTMIN+1`` writes what was measured to
``$BENCH_PROFILE_DIR/worker-<pid>.json``. ``BENCH_PROFILE`` says what is measured:

- ``stages``: the wall and CPU time of each stage of an API call (``STAGES``), by wrapping the
  app's functions (looked up when the first signal comes, once the app is loaded);
- ``sample``: where the worker's one thread (every greenlet runs on it) is, sampled every
  millisecond from a real thread, the whole stack each time.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time

#: (module, attribute path, stage name, wraps a generator): what ``stages`` times. A stage
#: whose function is gone (the app changed) is left out and listed under ``missing``.
STAGES = (
    ("gunicorn.workers.base_async", "AsyncWorker.handle_request", "0 whole call (gunicorn)", 0),
    ("wsgi", "app.wsgi_app", "1 Flask, up to the Response", 0),
    ("flask_limiter", "Limiter._check_request_limit", "1a rate limits (with the key lookup)", 0),
    ("webapp.api.auth", "find_key", "1b key lookup", 0),
    ("webapp.api.views", "read_request", "1c body read", 0),
    ("webapp.api.views", "resolve", "1d model resolved", 0),
    ("webapp.api.views", "begin", "2 relay.begin (checks, records)", 0),
    ("webapp.api.relay", "check_running", "2a check_running", 0),
    ("webapp.api.keep", "store_request", "2b keep.store_request", 0),
    ("webapp.api.relay", "Relay.open", "3 Relay.open (to the first token)", 0),
    ("webapp.providers.openai_compat", "post", "3a upstream request (requests)", 0),
    ("webapp.providers.openai_compat", "_stream_tokens", "4 upstream read (every step)", 1),
    ("webapp.api.relay", "Relay.stream", "5 relay (every step; 4 and 6 in it)", 1),
    ("webapp.api.relay", "Relay.finish", "6 Relay.finish (the record)", 0),
    ("webapp.api.keep", "store_answer", "6a keep.store_answer", 0),
    ("webapp.api.keep", "render_markdown", "6b render_markdown", 0),
    ("gunicorn.http.wsgi", "Response.write", "7 gunicorn writes (every event)", 0),
)

_totals: dict[str, list[float]] = {}
_missing: list[str] = []
_samples: dict[str, dict] = {"leaf": {}, "inclusive": {}}
_state = {"wrapped": False, "sampling": False, "thread": None, "samples": 0, "running": 0,
          "dump_when_idle": False}


def _add(name: str, wall: float, cpu: float) -> None:
    total = _totals.setdefault(name, [0, 0.0, 0.0])
    total[0] += 1
    total[1] += wall
    total[2] += cpu


def _timed(name: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(name, time.perf_counter() - wall, time.thread_time() - cpu)
    return timed


def _timed_request(name: str, fn):
    """``_timed`` for the whole request: a dump asked for while requests run waits for them
    (gunicorn finishes a request after its client has the whole response)."""
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        _state["running"] += 1
        try:
            return _timed(name, fn)(*args, **kwargs)
        finally:
            _state["running"] -= 1
            if _state["dump_when_idle"] and not _state["running"]:
                _dump()
    return timed


def _timed_steps(name: str, fn):
    """A generator function whose every step is timed (the waits between steps are not)."""
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        steps = fn(*args, **kwargs)
        try:
            while True:
                wall, cpu = time.perf_counter(), time.thread_time()
                try:
                    item = next(steps)
                except StopIteration as end:
                    return end.value
                finally:
                    _add(name, time.perf_counter() - wall, time.thread_time() - cpu)
                yield item
        finally:
            steps.close()
    return timed


def _wrap(owner, attr: str, wrap) -> bool:
    """Replace ``owner.attr`` (a module's function, a class's method, an object's bound
    method) with ``wrap(it)``; False if there is none."""
    if isinstance(owner, type) or type(owner).__name__ == "module":
        raw = vars(owner).get(attr)
        if isinstance(raw, classmethod | staticmethod):
            setattr(owner, attr, type(raw)(wrap(raw.__func__)))
            return True
    else:  # an object: its bound method, replaced on the object alone
        raw = getattr(owner, attr, None)
    if not callable(raw):
        return False
    setattr(owner, attr, wrap(raw))
    return True


def _wrap_stages() -> None:
    for module_name, path, name, steps in STAGES:
        owner = sys.modules.get(module_name)
        *parents, attr = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        kind = _timed_steps if steps else _timed_request if name.startswith("0 ") else _timed
        if owner is None or not _wrap(owner, attr, functools.partial(kind, name)):
            _missing.append(f"{module_name}.{path}")


def _where(code) -> str:
    return f"{code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_name}"


def _sample(main_id: int) -> None:
    frame = sys._current_frames().get(main_id)
    names = []
    while frame is not None:
        names.append(_where(frame.f_code))
        frame = frame.f_back
    if not names:
        return
    _state["samples"] += 1
    leaf, inclusive = _samples["leaf"], _samples["inclusive"]
    leaf[names[0]] = leaf.get(names[0], 0) + 1
    for name in set(names):
        inclusive[name] = inclusive.get(name, 0) + 1


def _sampler(main_id: int, sleep) -> None:
    while True:
        sleep(0.001)
        if _state["sampling"]:
            _sample(main_id)


def _start_sampling() -> None:
    # The sampler needs the GIL: a short switch interval keeps its samples from favouring the
    # moments the worker releases it (system calls, SQLite).
    sys.setswitchinterval(0.0002)
    if _state["thread"] is None:
        monkey = sys.modules["gevent.monkey"]  # a gevent worker: threads are greenlets now
        main_id = monkey.get_original("_thread", "get_ident")()
        _state["thread"] = monkey.get_original("_thread", "start_new_thread")(
            _sampler, (main_id, monkey.get_original("time", "sleep")))
    _samples["leaf"], _samples["inclusive"] = {}, {}
    _state["samples"] = 0
    _state["sampling"] = True


def _start(*_) -> None:
    if os.environ.get("BENCH_PROFILE") == "sample":
        _start_sampling()
        return
    if not _state["wrapped"]:
        _state["wrapped"] = True
        _wrap_stages()
    _totals.clear()


def _dump(*_) -> None:
    if _state["running"] and not _state["sampling"]:
        _state["dump_when_idle"] = True
        return
    _state["sampling"] = _state["dump_when_idle"] = False
    out = {"stages": _totals, "missing": _missing, "samples": _state["samples"], **_samples}
    path = os.path.join(os.environ["BENCH_PROFILE_DIR"], f"worker-{os.getpid()}.json")
    with open(path + ".tmp", "w") as file:
        json.dump(out, file)
    os.replace(path + ".tmp", path)


def _arm() -> None:
    signal.signal(signal.SIGRTMIN, _start)
    signal.signal(signal.SIGRTMIN + 1, _dump)


if os.path.basename(sys.argv[0]) == "gunicorn" and os.environ.get("BENCH_PROFILE_DIR"):
    os.register_at_fork(after_in_child=_arm)
