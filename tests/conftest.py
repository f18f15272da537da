"""Shared fixtures: real peers (llama.cpp server, fault upstream, chromium) and the app on a
fresh database with signed-in people. Plain helpers live in tests/helpers.py."""

from __future__ import annotations

import os

import pytest
from flask_migrate import upgrade
from playwright.sync_api import sync_playwright

from tests.helpers import ARGS, CHROMIUM, Browserless, serve
from tests.peers import process
from tests.peers.database import database, postgres_schema
from tests.peers.fault_upstream import FaultServer
from tests.scripted import ScriptedProvider
from webapp import create_app
from webapp.auth.accounts import create_user
from webapp.extensions import app_state, db
from webapp.streaming import SHUTTING_DOWN, stops

# -- real peers -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_server():
    """The misbehaving upstream, for the cases no real server produces on demand."""
    server = FaultServer().start_background()
    yield server
    server.shutdown()


@pytest.fixture()
def postgres_url():
    """A fresh PostgreSQL schema's URL, for the tests that need PostgreSQL even in the SQLite
    run (two app servers share a database only through PostgreSQL); dropped afterwards."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test module."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: `make test` installs it (make system-deps)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def server(tmp_path, fault_server):
    """gunicorn for the browser tests, with alice: Equing (the default) at the fault server's
    slow-markdown scenario, and the local model enabled too."""
    server = serve(tmp_path, fault_server, "slow-markdown", FLASK_PROVIDERS="equing,local",
                   FLASK_DEFAULT_PROVIDER="equing")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server():
    """A real ``llama_cpp.server`` with the embedded SmolLM2 file; yields its base URL."""
    port = process.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = process.start([process.python(), "-m", "tests.peers.llama_server", "--port", str(port)],
                         base + "/v1/models", timeout=120)
    yield base
    process.stop(proc)


# -- the app ----------------------------------------------------------------------------


@pytest.fixture()
def scripted():
    """A fresh scripted provider class for one test (tests/scripted.py)."""
    return ScriptedProvider.make()


@pytest.fixture()
def database_url(tmp_path):
    """A fresh database: SQLite, or a new PostgreSQL schema when TEST_DATABASE_URL is set."""
    with database(tmp_path) as url:
        yield url


@pytest.fixture()
def app(request, tmp_path, scripted, monkeypatch, database_url):
    """The app on a fresh database built by the migrations, with the scripted provider
    enabled and chosen by default. Rate limits are off unless the test is marked
    ``ratelimits``."""
    monkeypatch.setenv("FLASK_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "PROVIDERS": "equing",
        "STREAM_KEEPALIVE_SECONDS": 0.2,
        "STREAM_SAVE_SECONDS": 0.2,
        # A generated title is one more request upstream after a first answer: the tests
        # of titles turn it on (tests/test_titles.py), the others count requests without it.
        "TITLES": False,
        "RATELIMIT_ENABLED": request.node.get_closest_marker("ratelimits") is not None,
        "RATELIMIT_STORAGE_URI": "memory://",
    })
    app_state(app).providers.register(scripted)
    app_state(app).providers.default = scripted.name
    with app.app_context():
        upgrade()
    yield app
    # Answers run on threads of their own: end those a test left running before its database
    # goes, so none writes into the next test's.
    stops.cancel_all(SHUTTING_DOWN)
    assert stops.wait_idle(10), "an answer did not end within 10 s of being stopped"
    with app.app_context():
        db.engine.dispose()


@pytest.fixture()
def make_user(app):
    """A function that creates a person with the password "correct horse" (alice is the
    admin) and returns their id."""
    def make(username="alice"):
        with app.app_context():
            return create_user(username, "correct horse", is_admin=username == "alice").id
    return make


@pytest.fixture()
def alice(app, make_user):
    """alice, the admin, signed in through the test client (``Browserless``)."""
    make_user("alice")
    return Browserless(app.test_client(), "alice").login()


@pytest.fixture()
def bob(app, make_user):
    """bob, another person, signed in through his own test client (``Browserless``)."""
    make_user("bob")
    return Browserless(app.test_client(), "bob").login()
