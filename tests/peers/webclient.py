"""A person's browser reduced to HTTP: sign in, start a chat, read an answer's stream.

Used against real servers (gunicorn, nginx) where Flask's test client does not reach.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests

_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token"[^>]*value="([^"]+)"')


#: An answer's element in a page or a turn (its answer may be running or already over: it
#: runs from the moment the message is accepted).
ANSWER = re.compile(r'<article class="msg msg-assistant[^"]*" id="m-(\d+)"')


@dataclass
class Event:
    """One SSE message: when its bytes arrived (perf_counter), its data and its ``id:`` (the
    offset of the answer's text a page has once it is swapped in; None without one)."""

    at: float
    data: str
    id: str | None = None


@dataclass
class WebClient:
    base: str
    session: requests.Session = field(default_factory=requests.Session)
    token: str = ""

    def _token(self, html: str) -> str:
        match = _CSRF.search(html)
        assert match, "no CSRF token in the page"
        return match.group(1) or match.group(2)

    def login(self, username: str, password: str) -> WebClient:
        page = self.session.get(self.base + "/login", timeout=10)
        response = self.session.post(self.base + "/login", data={
            "username": username, "password": password, "csrf_token": self._token(page.text)},
            allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text[:500]
        self.token = self._token(self.session.get(self.base + "/", timeout=10).text)
        return self

    def post(self, path: str, data: dict | None = None, htmx: bool = True):
        headers = {"X-CSRFToken": self.token}
        if htmx:
            headers["HX-Request"] = "true"
        return self.session.post(self.base + path, data=data or {}, headers=headers,
                                 allow_redirects=False, timeout=30)

    def start_chat(self, text: str) -> tuple[int, int]:
        """A new conversation with one message; returns its id and the pending answer's."""
        response = self.post("/c", {"content": text})
        assert response.status_code == 200, response.text[:500]
        location = response.headers["HX-Redirect"]
        page = self.session.get(self.base + location, timeout=10).text
        return int(location.rsplit("/", 1)[1]), int(ANSWER.findall(page)[-1])

    def send(self, conversation_id: int, text: str) -> int:
        """Another message in a conversation; returns the pending answer's id."""
        response = self.post(f"/c/{conversation_id}/messages", {"content": text})
        assert response.status_code == 200, response.text[:500]
        return int(ANSWER.findall(response.text)[-1])

    def stream(self, message_id: int, timeout: float = 60) -> list[Event]:
        """Read an answer's event stream to its end."""
        return list(self.events(message_id, timeout=timeout))

    def events(self, message_id: int, last_event_id: str | None = None,
               timeout: float = 60) -> Iterator[Event]:
        """An answer's event stream, message by message as they come (resumed after
        ``last_event_id``, as a reconnecting page asks); closing the iterator closes the
        connection, as a page that goes away does."""
        headers = {"HX-Request": "true"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        buffer = ""
        with self.session.get(f"{self.base}/m/{message_id}/stream", stream=True,
                              timeout=timeout, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            for chunk in response.iter_content(chunk_size=None):
                at = time.perf_counter()
                buffer += chunk.decode()
                *blocks, buffer = buffer.split("\n\n")
                for block in blocks:
                    lines = block.split("\n")
                    data = [line[6:] for line in lines if line.startswith("data: ")]
                    ids = [line[4:] for line in lines if line.startswith("id: ")]
                    if data:
                        yield Event(at, "\n".join(data), ids[-1] if ids else None)
