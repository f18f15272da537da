"""gunicorn settings fit for long-lived answer streams; each can be overridden by environment.

Every open answer is a request that lasts as long as the answer, and most of that time it waits
on the upstream. Workers are ``gevent``: each answer costs a greenlet of a few kilobytes instead
of an OS thread, and handing a token from the upstream reader to the response is a switch, not
a trip through the GIL between threads (with ``gthread`` one instance delivered in real time
only up to about 64 answers at once; see docs/benchmarks.md). The timeout is the worker
heartbeat, not a per-request limit. See docs/self-hosting.md.
"""

import os
import signal
import sys
import threading
import time

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Clients (answers, pages) one worker serves at once; beyond that they wait in the listen queue.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# Only used when GUNICORN_WORKER_CLASS=gthread.
threads = int(os.environ.get("GUNICORN_THREADS", "128"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


def address_to_open(listener) -> str:
    """The URL a person opens in a browser for one of gunicorn's listening sockets."""
    name = listener.getsockname() if hasattr(listener, "getsockname") else str(listener)
    if isinstance(name, str):  # a unix socket: for the reverse proxy, not for a browser
        return f"unix:{name} (put a reverse proxy in front, see docs/self-hosting.md)"
    host, port = name[0], name[1]
    if host in ("0.0.0.0", "::"):  # every interface: any of this machine's addresses
        return f"http://<this machine's address>:{port}/ (http://127.0.0.1:{port}/ from here)"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def when_ready(server):
    """Once the app is serving, say where to open it (GUNICORN_BIND changes the address)."""
    for listener in server.LISTENERS:
        # Printed, not logged: it shows whatever GUNICORN_LOGLEVEL is.
        print(f"Equing Chat is ready: open {address_to_open(listener)}", flush=True)


def _stop_running_answers(wait: float) -> None:
    try:
        # In the worker, when it stops: the master reads this file and never loads the app.
        from webapp.streaming import SHUTTING_DOWN, stops  # noqa: PLC0415
    except ImportError:
        return
    if stops.cancel_all(SHUTTING_DOWN) and wait:
        stops.wait_idle(wait)


def _wait_for_running_answers(seconds: float) -> None:
    try:
        from webapp.streaming import stops  # noqa: PLC0415 - as above
    except ImportError:
        return
    stops.wait_idle(seconds)


#: When this worker's running answers are stopped after a SIGTERM (monotonic seconds).
_stop_at: list[float] = []


def _grace(worker) -> float:
    """Seconds after a SIGTERM that running answers may go on for: most of the graceful
    timeout, so that they are stopped and saved, with the reason, before gunicorn's deadline
    (which would kill them unsaved)."""
    grace = worker.cfg.graceful_timeout
    return max(grace - 3.0, grace * 0.5)


def post_worker_init(worker):
    """On SIGTERM (a stop, or a reload's old workers), answers get most of the graceful
    timeout to finish on their own; those still running then are stopped, saved, and told
    why."""
    handle_exit = worker.handle_exit
    gevent = "gevent" in worker.cfg.worker_class_str

    def on_term(sig, frame):
        handle_exit(sig, frame)
        delay = _grace(worker)
        _stop_at.append(time.monotonic() + delay)
        if gevent:
            # Under gevent this handler runs as a callback of the event loop, where starting a
            # thread blocks (BlockingSwitchOutError, and the worker exits with code 255): a
            # greenlet waits out the delay instead. The gevent worker has imported gevent.
            sys.modules["gevent"].spawn_later(delay, _stop_running_answers, 0)
            return
        timer = threading.Timer(delay, _stop_running_answers, (0,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_term)


def worker_int(worker):
    """SIGINT/SIGQUIT (a quick stop): save running answers as stopped before exiting."""
    _stop_running_answers(2.0)


def worker_exit(server, worker):
    """Last chance. Answers are written without a page, so the worker may be done serving
    while some still run: they get the rest of their grace to finish (the SIGTERM's deadline,
    or most of the graceful timeout when the worker stops for another reason), then are
    stopped and saved with the reason."""
    deadline = _stop_at[0] if _stop_at else time.monotonic() + _grace(worker)
    _wait_for_running_answers(max(deadline - time.monotonic(), 0.0))
    _stop_running_answers(3.0)
