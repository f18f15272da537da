"""gunicorn settings fit for long-lived answer streams; each can be overridden by environment.

Every open answer holds a worker thread for its whole length, so workers are ``gthread`` with
many threads rather than a few sync workers, and the timeout (which for gthread is the worker
heartbeat, not a per-request limit) stays generous. See docs/self-hosting.md.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "128"))
# A gthread worker accepts up to worker_connections clients but serves only `threads` at once;
# the rest wait inside it even when another worker is idle. Capping it at `threads` leaves them
# in the listen queue, where any worker with a free thread picks them up.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", str(threads)))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")



def _stop_running_answers(wait: float) -> None:
    try:
        from webapp.streaming import SHUTTING_DOWN, stops
    except ImportError:
        return
    if stops.cancel_all(SHUTTING_DOWN) and wait:
        stops.wait_idle(wait)


def post_worker_init(worker):
    """On SIGTERM, answers get most of the graceful timeout to finish on their own; those
    still running shortly before the deadline are stopped, saved, and told why (gunicorn
    closes what is left at the deadline, which would read as a closed page)."""
    import signal
    import threading

    handle_exit = worker.handle_exit

    def on_term(sig, frame):
        handle_exit(sig, frame)
        grace = worker.cfg.graceful_timeout
        timer = threading.Timer(max(grace - 3.0, grace * 0.5), _stop_running_answers, (0,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_term)


def worker_int(worker):
    """SIGINT/SIGQUIT (a quick stop): save running answers as stopped before exiting."""
    _stop_running_answers(2.0)


def worker_exit(server, worker):
    """Last chance: anything still generating is stopped and saved."""
    _stop_running_answers(3.0)
