"""Helpers to run real servers on 127.0.0.1 for the duration of a test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``url`` answers any HTTP status, or fail with the process's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n{out}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.exceptions.RequestException:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start(args: list[str], url: str, env: dict[str, str] | None = None,
          timeout: float = 60.0) -> subprocess.Popen:
    """Start ``args`` (run from the project root) and wait for ``url`` to answer."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    wait_for(url, process, timeout)
    return process


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate ``process`` and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def python() -> str:
    """The interpreter running the tests (the project's virtualenv)."""
    return sys.executable
