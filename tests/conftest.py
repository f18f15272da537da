"""Shared fixtures: real peers (llama.cpp server, fault upstream) and the app."""

from __future__ import annotations

import pytest

from tests.peers import process
from tests.peers.fault_upstream import FaultServer


@pytest.fixture(scope="session")
def fault_server():
    """The misbehaving upstream, for the cases no real server produces on demand."""
    server = FaultServer().start_background()
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def llama_server():
    """A real ``llama_cpp.server`` with the embedded SmolLM2 file; yields its base URL."""
    port = process.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = process.start([process.python(), "-m", "tests.peers.llama_server", "--port", str(port)],
                         base + "/v1/models", timeout=120)
    yield base
    process.stop(proc)
