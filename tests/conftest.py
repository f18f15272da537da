"""Shared fixtures: real peers (llama.cpp server, fault upstream) and the app."""

from __future__ import annotations

import os

import pytest

from tests.helpers import ARGS, CHROMIUM
from tests.peers import process
from tests.peers.fault_upstream import FaultServer


@pytest.fixture(scope="session")
def fault_server():
    """The misbehaving upstream, for the cases no real server produces on demand."""
    server = FaultServer().start_background()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium through Playwright, one per test module."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: `make test` installs it (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


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

import re  # noqa: E402

from flask_migrate import upgrade  # noqa: E402

from tests.peers.database import database  # noqa: E402
from tests.scripted import ScriptedProvider  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.auth.accounts import create_user  # noqa: E402
from webapp.extensions import app_state, db  # noqa: E402
from webapp.models import UserSettings  # noqa: E402


@pytest.fixture()
def scripted():
    """A fresh scripted provider class for one test."""
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
        "RATELIMIT_ENABLED": request.node.get_closest_marker("ratelimits") is not None,
        "RATELIMIT_STORAGE_URI": "memory://",
    })
    app_state(app).providers.register(scripted)
    app_state(app).providers.default = scripted.name
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture()
def make_user(app):
    def make(username="alice", password="correct horse", **settings):
        with app.app_context():
            user = create_user(username, password, is_admin=username == "alice")
            if settings:
                for key, value in settings.items():
                    setattr(user.settings, key, value)
                db.session.commit()
            return user.id
    return make


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or \
        re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


class Browserless:
    """A signed-in test client that sends CSRF tokens like the real pages do."""

    def __init__(self, client, username):
        self.client = client
        self.username = username
        self.token = ""

    def login(self, password="correct horse"):
        page = self.client.get("/login").get_data(as_text=True)
        response = self.client.post("/login", data={
            "username": self.username, "password": password, "csrf_token": csrf_from(page)})
        assert response.status_code == 302, response.get_data(as_text=True)
        self.refresh_token()
        return self

    def refresh_token(self, path="/"):
        self.token = csrf_from(self.client.get(path).get_data(as_text=True))

    def post(self, path, data=None, htmx=True, headers=None, **kwargs):
        headers = {"X-CSRFToken": self.token, **(headers or {})}
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(path, data=data or {}, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)


@pytest.fixture()
def alice(app, make_user):
    make_user("alice")
    return Browserless(app.test_client(), "alice").login()


@pytest.fixture()
def bob(app, make_user):
    make_user("bob")
    return Browserless(app.test_client(), "bob").login()


__all__ = ["UserSettings"]
