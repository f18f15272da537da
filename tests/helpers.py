"""Helpers shared by several test files (fixtures live in conftest.py).

- Flask's test client: ``Browserless`` (a signed-in client that sends CSRF tokens),
  ``csrf_from``, ``rows``, ``SETTINGS_FORM``; a turn (``start_chat``, ``send``,
  ``read_stream``, ``events``, ``replay``); a share (``shared_chat``, ``share``).
- gunicorn: ``serve``, ``answer_row``, ``worker_pids``, ``kill_workers``; ``wait_until`` for
  what happens in another thread or process; the served API's ``api_key`` and ``api_calls``.
- chromium: ``CHROMIUM``, ``ARGS``, ``sign_in``, ``chat_in_browser``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable

from sqlalchemy import create_engine, select, text

from tests.peers.appserver import AppServer
from tests.peers.webclient import ANSWER
from webapp.extensions import db

# -- the test client ----------------------------------------------------------------------

def csrf_from(html: str) -> str:
    """The CSRF token a page carries: in its meta tag, or in a form's hidden field."""
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


def rows(app, model, **where):
    """The rows of ``model`` matching ``where``, by id, detached from the session."""
    with app.app_context():
        query = select(model).filter_by(**where).order_by(model.id)
        found = db.session.scalars(query).all()
        db.session.expunge_all()
        return found


#: A valid generation settings form (for /settings and a conversation's settings).
SETTINGS_FORM = {"provider": "scripted", "model": "script-2", "temperature": "0.7",
                 "top_p": "0.9", "presence_penalty": "0.5", "frequency_penalty": "-0.5",
                 "max_tokens": "256", "system_prompt": "You are a pirate."}


# -- a turn ---------------------------------------------------------------------------------

#: What htmx with its SSE extension accepts: a post's answer may then be the stream itself.
SSE_ACCEPT = {"Accept": "text/html, text/event-stream"}


def start_chat(client, text="Hi <b>there</b>"):
    """Start a conversation through htmx; returns (conversation, assistant message)."""
    response = client.post("/c", {"content": text})
    assert response.status_code == 200, response.get_data(as_text=True)
    location = response.headers["HX-Redirect"]
    conversation_id = int(location.rsplit("/", 1)[1])
    page = client.get(location).get_data(as_text=True)
    # The answer runs from the moment the message is accepted: it may be over already.
    message_id = int(ANSWER.findall(page)[-1])
    return conversation_id, message_id


def send(client, conversation_id, text):
    """Post ``text`` to a conversation through htmx without SSE; returns the id of the answer,
    whose stream is still to be read."""
    response = client.post(f"/c/{conversation_id}/messages", {"content": text})
    assert response.status_code == 200, response.get_data(as_text=True)
    return int(ANSWER.findall(response.get_data(as_text=True))[-1])


def read_stream(client, message_id):
    """The whole body of an answer's stream, after checking its headers."""
    response = client.get(f"/m/{message_id}/stream")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    return response.get_data(as_text=True)


def events(body):
    """The data of each SSE message in ``body`` (comments dropped)."""
    out = []
    for block in body.split("\n\n"):
        lines = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if lines:
            out.append("\n".join(lines))
    return out


#: One streamed partial: its target, its swap and its HTML.
PARTIAL = re.compile(r'<hx-partial hx-target="#([\w-]+)" hx-swap="([\w]+)">(.*?)</hx-partial>',
                     re.S)


def replay(data, message_id):
    """What a browser builds in the answer's body from the streamed partials: the finished
    blocks' HTML and the open block's text (None once it was rendered too), and whether
    "Reading the conversation…" was removed."""
    blocks, open_text, waiting = "", "", True
    for item in data:
        for target, swap, html in PARTIAL.findall(item):
            if target == f"m-{message_id}-wait":
                assert swap == "delete"
                waiting = False
                continue
            assert target == f"m-{message_id}-open", target
            if swap == "beforebegin":
                blocks += html
            elif swap == "innerHTML":
                open_text = html
            elif swap == "beforeend":
                open_text += html
            elif swap == "outerHTML":
                blocks, open_text = blocks + html, None
            else:
                assert swap == "delete"
                open_text = None
    return blocks, open_text, not waiting


# -- a share --------------------------------------------------------------------------------

def shared_chat(client, text="Tell me about <script>alert(1)</script> tags"):
    """A conversation with one finished turn; returns its id."""
    conversation_id, message_id = start_chat(client, text)
    read_stream(client, message_id)
    return conversation_id


def share(client, conversation_id, **form):
    """Share a conversation (or update its share) without JavaScript; returns the link's path."""
    response = client.post(f"/c/{conversation_id}/share", form, htmx=False)
    assert response.status_code == 303
    page = client.get(f"/c/{conversation_id}").get_data(as_text=True)
    return re.search(r'href="(/s/[A-Za-z0-9_-]+)"', page).group(1)


# -- gunicorn ---------------------------------------------------------------------------------

def serve(tmp_path, fault_server, scenario: str, workers: int = 1, **env: str) -> AppServer:
    """gunicorn (started) with ``workers`` workers, Equing at a fault-server scenario, and alice
    (password "correct horse"); ``env`` adds to or overrides its environment, except
    GUNICORN_WORKERS, which ``workers`` sets. Generated titles are off unless ``env`` turns
    them on (each would be one more request to the scenario)."""
    server = AppServer(tmp_path, {"FLASK_PROVIDERS": "equing", "FLASK_TITLES": "false",
                                  "FLASK_EQUING_URL": fault_server.url(scenario), **env},
                       workers=workers).start()
    server.flask("users", "create", "alice", "--password", "correct horse")
    return server


def answer_row(server: AppServer, message_id: int):
    """A message's status, error and content, read from a gunicorn server's database."""
    engine = create_engine(server.env["DATABASE_URL"])
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, error, content FROM messages WHERE id = :id"),
                           {"id": message_id}).one()
    engine.dispose()
    return row


def api_key(server: AppServer, username: str = "alice", name: str = "tests") -> str:
    """A new API key of ``username``, made with the CLI as an operator does (the key alone is
    the last line it prints)."""
    return server.flask("api-keys", "create", username, "--name", name).splitlines()[-1]


def api_calls(server: AppServer) -> list:
    """Every row of a gunicorn server's ``api_calls`` (with the caller's username), by id."""
    engine = create_engine(server.env["DATABASE_URL"])
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT api_calls.*, users.username FROM api_calls JOIN users "
            "ON users.id = api_calls.user_id ORDER BY api_calls.id")).all()
    engine.dispose()
    return found


def worker_pids(server: AppServer) -> set[int]:
    """The process ids of ``server``'s gunicorn workers (the master's children)."""
    found = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True,
                           text=True, check=False)
    return {int(pid) for pid in found.stdout.split()}


def kill_workers(server: AppServer) -> None:
    """SIGKILL every gunicorn worker of ``server`` (the master starts new ones)."""
    for pid in worker_pids(server):
        os.kill(pid, signal.SIGKILL)


def wait_until(predicate: Callable[[], object], seconds: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``seconds`` have passed; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


# -- chromium ---------------------------------------------------------------------------------

#: Debian's chromium, driven by Playwright (Playwright's own browser download does not work
#: here), with the flags that keep it off the network and quiet.
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sign_in(page, base, path="/"):
    """Sign in as alice through the form (at ``path``, which may carry a ``next``); returns the
    list that collects the page's script errors and console errors from then on."""
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base + path)
    page.fill("#username", "alice")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    if path == "/":
        page.wait_for_url(base + "/")
    return errors


def chat_in_browser(page, base, text, wait=True):
    """A new conversation with ``text`` as its first message, sent from the home page's
    composer; its id. With ``wait``, once its answer is complete."""
    page.goto(base + "/")
    page.get_by_role("textbox", name="Message", exact=True).fill(text)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(base) + r"/c/\d+$"))
    if wait:
        page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
    return int(page.url.rsplit("/", 1)[1])


def run_to_end(generator):
    """The tokens of a provider's generator and what it returned (its finish reason)."""
    tokens = []
    while True:
        try:
            tokens.append(next(generator))
        except StopIteration as end:
            return tokens, end.value
