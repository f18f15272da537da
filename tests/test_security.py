"""Security: hostile output and input, CSRF and ownership on every route, accounts, limits."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser

import pytest
from werkzeug.routing import Rule

from tests.helpers import (
    PARTIAL,
    Browserless,
    csrf_from,
    events,
    read_stream,
    rows,
    send,
    share,
    start_chat,
)
from tests.peers.webclient import ANSWER
from webapp.api.keys import create_key
from webapp.extensions import app_state, db
from webapp.models import ApiCall, ApiKey, Conversation, Message, Share, User
from webapp.providers import ProviderRegistry
from webapp.queries import people

#: Known XSS payloads, each as the model might send it (some split across tokens).
PAYLOADS: dict[str, list[str]] = {
    "script": ["<script>alert(1)</script>"],
    "img-onerror": ["<img src=x onerror=alert(1)>"],
    "svg-onload": ["<svg onload=alert(1)>"],
    "iframe-srcdoc": ['<iframe srcdoc="<script>alert(1)</script>"></iframe>'],
    "javascript-link": ["[click](javascript:alert(1))"],
    "data-link": ["[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"],
    "html-in-fence": ["```html\n<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n```"],
    "html-outside-fence": ["text <b onmouseover=alert(1)>bold</b> <details open "
                           "ontoggle=alert(1)>x</details>"],
    "split-across-tokens": ["<scr", "ipt>alert(", "1)</scr", "ipt><im", "g src=x one",
                            "rror=alert(1)>"],
    "attribute-breakout": ['" onmouseover="alert(1)', "'><img src=x onerror=alert(1)>"],
    "entity-tricks": ["&lt;script&gt;alert(1)&lt;/script&gt; <a href=\"jav&#x61;script:"
                      "alert(1)\">x</a>"],
    "finished-blocks": ["<b>x</b> ![i](http://evil.example/x.png)\n\n", "- <script>alert(1)",
                        "</script>\n\n", "| a |\n|---|\n| <img src=x onerror=alert(1)> |\n\n",
                        "end"],
    "style-and-object": ["<style>body{display:none}</style><object data=x></object>"
                         "<embed src=x><form action=x><input></form>"],
}

DANGEROUS_TAGS = {"script", "iframe", "svg", "object", "embed", "style", "form", "input",
                  "details", "base", "meta", "link", "frame", "frameset", "math"}


class _Audit(HTMLParser):
    """Collects what would run or change the page: dangerous tags, event handlers, and
    URLs with a script-capable scheme."""

    def __init__(self, allowed_tags=frozenset()):
        super().__init__(convert_charrefs=True)
        self.allowed = allowed_tags
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in DANGEROUS_TAGS and tag not in self.allowed:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"{tag}[{name}]")
            if name in ("href", "src", "action", "srcdoc", "data", "formaction") and value:
                scheme = re.sub(r"[\s\x00-\x1f]", "", value).lower()
                if scheme.startswith(("javascript:", "data:", "vbscript:")) or name == "srcdoc":
                    self.problems.append(f"{tag}[{name}={value[:30]}]")


def audit(html: str, allowed_tags=frozenset()) -> list[str]:
    parser = _Audit(allowed_tags)
    parser.feed(html)
    return parser.problems


#: What the page frame itself legitimately has (forms, inputs, our scripts in <head>).
PAGE_TAGS = frozenset({"script", "form", "input", "details", "meta", "link", "style"})


def message_region(page: str) -> str:
    """The part of a page that shows conversation content (no page furniture)."""
    start = page.find('id="messages"')
    return page[start:page.find('id="composer"', start)] if start >= 0 else page


@pytest.mark.parametrize("name", PAYLOADS)
def test_hostile_model_output_is_inert_everywhere(alice, app, scripted, name):
    scripted.tokens = PAYLOADS[name]
    scripted.delay = 0.04  # one SSE event per token: split HTML stays split
    conversation_id, message_id = start_chat(alice, "Say something")
    data = events(read_stream(alice, message_id))
    streamed, final = data[:-1], data[-1]
    for piece in streamed:
        # Only our own partials are markup; in them the open block is escaped text, always,
        # and a finished block is sanitized HTML.
        assert "<" not in PARTIAL.sub("", piece), piece
        for _, swap, html in PARTIAL.findall(piece):
            if swap in ("innerHTML", "beforeend"):
                assert "<" not in html, piece
            else:
                assert audit(html) == [] and "<img" not in html, piece
    final_body = final[final.index('class="msg-body md"'):final.index("</div>")]
    assert audit(final_body) == [], final_body
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    region = message_region(page)
    # (our own <details> holds the message's settings, a hostile one would carry ontoggle;
    # our own <template> holds the message's source as escaped text, for Copy; our own forms
    # are the message's controls)
    assert audit(re.sub(r'<form class="msg-actions?.*?</form>', "", region, flags=re.S),
                 {"details", "template"}) == []
    link = share(alice, conversation_id)
    shared = app.test_client().get(link).get_data(as_text=True)
    shared_region = shared[shared.index('class="messages"'):]
    assert audit(re.sub(r"<form.*?</form>", "", shared_region, flags=re.S)) == []
    exported = alice.get(f"/c/{conversation_id}/export.md")
    assert exported.headers["Content-Disposition"].startswith("attachment")
    assert exported.headers["X-Content-Type-Options"] == "nosniff"
    assert exported.mimetype == "text/markdown"


@pytest.mark.parametrize("name", PAYLOADS)
def test_hostile_user_input_is_inert_everywhere(alice, app, name):
    text = "".join(PAYLOADS[name])
    conversation_id, message_id = start_chat(alice, text)
    read_stream(alice, message_id)
    alice.post(f"/c/{conversation_id}/rename", {"title": text[:200]}, htmx=False)
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    # The title appears in <title>, the heading, the sidebar and the rename field.
    assert audit(page, PAGE_TAGS) == []
    # htmx, its SSE extension, app.js, answer-watch.js, controls.js
    assert page.count("<script") == 5
    for tag in ("iframe", "svg", "img", "object", "embed"):
        assert f"<{tag}" not in page
    sidebar = alice.get("/conversations").get_data(as_text=True)
    assert audit(sidebar) == []
    results = alice.get("/search", query_string={"q": "alert"},
                        headers={"HX-Request": "true"}).get_data(as_text=True)
    assert audit(results) == []
    link = share(alice, conversation_id)
    shared = app.test_client().get(link).get_data(as_text=True)
    assert audit(shared, PAGE_TAGS) == [] and "<iframe" not in shared and "<img" not in shared
    listing = alice.get("/shares").get_data(as_text=True)
    assert audit(listing, PAGE_TAGS) == [] and "<img" not in listing
    exported = json.loads(alice.get("/export.json").get_data(as_text=True))
    assert exported["conversations"][0]["messages"][0]["content"] == text.strip()


def test_imported_hostile_content_is_inert(alice, app):
    payload = {"format": "equing-chat", "version": 1, "conversations": [{
        "title": "<img src=x onerror=alert(1)>", "settings": {"system_prompt": "<script>"},
        "messages": [{"role": "user", "content": "<script>alert(1)</script>"},
                     {"role": "assistant", "content": "[x](javascript:alert(1))",
                      "status": "complete", "model": "<svg onload=alert(1)>",
                      "provider": "<img src=x onerror=alert(2)>",
                      "params": {"<img src=x>": "<svg onload=alert(3)>",
                                 "system_prompt": "<img src=x onerror=alert(4)>"}}]}]}
    response = alice.client.post("/import", data={
        "file": (io.BytesIO(json.dumps(payload).encode()), "x.json"),
        "csrf_token": alice.token}, content_type="multipart/form-data")
    assert response.status_code == 303
    (conversation,) = rows(app, Conversation)
    page = alice.get(f"/c/{conversation.id}").get_data(as_text=True)
    assert audit(page, PAGE_TAGS) == [] and "<img" not in page and "<svg" not in page
    # The answer's details show the imported values, as text.
    assert "&lt;svg onload=alert(3)&gt;" in page and "alert(4)" in page


# -- CSRF and GET --------------------------------------------------------------------------

#: State-changing routes that take no CSRF token, on purpose, and only these: the served API
#: authenticates by its Bearer key alone and never reads the session cookie, so a page on
#: another site has nothing to ride there (``webapp/api/views.py`` exempts its blueprint).
CSRF_EXEMPT = {"api.chat_completions"}


def _fill(rule: Rule, ids: dict[str, object]) -> str:
    """The rule's path with ``ids`` (1, or "x", for an argument it does not name)."""
    def value(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        return str(ids.get(name, 1 if converter == "int" else "x"))
    return re.sub(r"<(?:(\w+):)?(\w+)>", value, rule.rule)


def _api_key(app, username="alice") -> tuple[int, str]:
    """A new API key of ``username``: its id and the key itself."""
    with app.app_context():
        key, secret = create_key(db.session.scalar(people.by_username(username)), "tests")
        return key.id, secret


def _is_api(rule: Rule) -> bool:
    return rule.endpoint.startswith("api.")


def _state_changing(app):
    for rule in app.url_map.iter_rules():
        methods = rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        for method in sorted(methods):
            yield rule, method


def test_every_state_changing_route_refuses_a_request_without_a_csrf_token(alice, app):
    conversation_id, message_id = start_chat(alice)
    key_id, _ = _api_key(app)
    routes = list(_state_changing(app))
    assert len(routes) >= 15  # the meta-test really walks the app
    assert {rule.endpoint for rule, _ in routes} >= CSRF_EXEMPT
    ids = {"conversation_id": conversation_id, "message_id": message_id, "share_id": 1,
           "token": "x", "key_id": key_id}
    before = {m.id: (m.status, m.content) for m in rows(app, Message)}
    for rule, method in routes:
        path = _fill(rule, ids)
        for headers in ({}, {"X-CSRFToken": "forged"}):
            response = alice.client.open(path, method=method, headers=headers,
                                         data={"content": "x", "title": "x", "name": "x"})
            if rule.endpoint in CSRF_EXEMPT:
                # No token asked for, and the session cookie alice sends is no key either.
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.get_json()["error"]["code"] == "missing_api_key"
                continue
            assert response.status_code == 400, (method, path, response.status_code)
            assert "The form expired" in response.get_data(as_text=True)
    assert {m.id: (m.status, m.content) for m in rows(app, Message)} == before
    assert rows(app, Conversation)[0].title == "Hi <b>there</b>"
    (key,) = rows(app, ApiKey)
    assert key.revoked_at is None and rows(app, ApiCall) == []


def test_get_routes_change_nothing(alice, app):
    """GET only reads. (An answer's stream is a GET that carries out the generation its
    POST asked for; on a finished answer it only reads, as here.) The API's are called with
    a key as well: looking at the models is not a use of the key that counts."""
    conversation_id, message_id = start_chat(alice)
    read_stream(alice, message_id)
    share(alice, conversation_id)
    (row,) = rows(app, Share)
    key_id, secret = _api_key(app)
    ids = {"conversation_id": conversation_id, "message_id": message_id, "share_id": row.id,
           "token": row.token, "filename": "css/app.css", "key_id": key_id,
           "model": "scripted/script-1"}

    def snapshot():
        return [(type(r).__name__, sorted((k, str(v)) for k, v in vars(r).items()
                                         if not k.startswith("_")))
                for model in (User, Conversation, Message, Share, ApiKey, ApiCall)
                for r in rows(app, model)]

    before = snapshot()
    count = 0
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods:
            response = alice.get(_fill(rule, ids))
            if _is_api(rule):
                assert response.status_code == 401  # a session is no key
                response = alice.client.get(_fill(rule, ids),
                                            headers={"Authorization": f"Bearer {secret}"})
                assert response.status_code == 200, (rule.rule, response.status_code)
            count += 1
    assert count >= 15
    assert snapshot() == before


# -- ownership -------------------------------------------------------------------------------

def test_every_route_with_an_id_answers_404_to_another_person(alice, bob, app):
    conversation_id, message_id = start_chat(alice)
    read_stream(alice, message_id)
    share(alice, conversation_id)
    (row,) = rows(app, Share)
    key_id, secret = _api_key(app)
    ids = {"conversation_id": conversation_id, "message_id": message_id, "share_id": row.id,
           "key_id": key_id}
    bob.refresh_token()
    checked = 0
    for rule in app.url_map.iter_rules():
        owned = set(rule.arguments) & set(ids)
        if not owned:
            continue
        for method in sorted(rule.methods & {"GET", "POST"}):
            path = _fill(rule, ids)
            response = (bob.get(path) if method == "GET"
                        else bob.post(path, {"content": "x", "title": "x"}))
            assert response.status_code == 404, (method, path, response.status_code)
            checked += 1
    assert checked >= 15
    assert {rule.endpoint for rule in app.url_map.iter_rules() if "key_id" in rule.arguments} \
        == {"settings.revoke_api_key"}  # the walk reached the keys' routes
    (conversation,) = rows(app, Conversation)
    assert conversation.title != "x" and conversation.settings is None
    assert rows(app, Share) and len(rows(app, Message)) == 2
    (key,) = rows(app, ApiKey)
    assert key.revoked_at is None
    assert app.test_client().get("/v1/models", headers={
        "Authorization": f"Bearer {secret}"}).status_code == 200


def test_every_api_route_answers_401_in_json_without_a_usable_key(alice, app):
    """The served API takes a Bearer key only: no key, a wrong one, a revoked one, or a
    signed-in session without one are each a 401 in OpenAI's JSON shape, on every API route
    (a new one that forgot to ask for the key fails here)."""
    key_id, revoked = _api_key(app)
    alice.post(f"/settings/api-keys/{key_id}/revoke")
    ids = {"model": "scripted/script-1"}
    stranger = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if not _is_api(rule):
            continue
        path = _fill(rule, ids)
        for method in sorted(rule.methods & {"GET", "POST"}):
            for client, key in ((stranger, None), (alice.client, None),
                                (stranger, "eqk-" + "x" * 43), (stranger, revoked),
                                (stranger, "not-a-key"), (alice.client, "")):
                headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
                body = {"model": "scripted/script-1",
                        "messages": [{"role": "user", "content": "hi"}]}
                response = client.open(path, method=method, headers=headers,
                                       json=body if method == "POST" else None)
                assert response.status_code == 401, (method, path, key, response.status_code)
                assert response.mimetype == "application/json"
                assert response.get_json()["error"]["type"] == "invalid_request_error"
                checked += 1
    assert checked >= 6 * 6  # models, one model and chat completions, under two prefixes
    assert rows(app, ApiCall) == [] and len(rows(app, Conversation)) == 0


def test_public_share_link_is_the_only_way_in(alice, bob, app):
    conversation_id, message_id = start_chat(alice)
    read_stream(alice, message_id)
    link = share(alice, conversation_id)
    bob.refresh_token()
    assert bob.get(link).status_code == 200  # by design: anyone with the link
    assert bob.get(f"/c/{conversation_id}").status_code == 404  # but not the conversation


# -- accounts --------------------------------------------------------------------------------

@pytest.mark.ratelimits
def test_sign_in_is_rate_limited(app, make_user):
    make_user("alice")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    statuses = [client.post("/login", data={"username": "alice", "password": "wrong",
                                            "csrf_token": csrf_from(page)}).status_code
                for _ in range(11)]
    assert statuses[:10] == [422] * 10 and statuses[10] == 429


def test_session_is_renewed_at_sign_in_and_ended_at_sign_out(app, make_user):
    make_user("alice")
    client = app.test_client()
    client.get("/login")
    before = client.get_cookie("session").value
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"username": "alice", "password": "correct horse",
                                           "csrf_token": csrf_from(page)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    signed_in = client.get_cookie("session").value
    assert signed_in != before
    assert client.get("/").status_code == 200
    # A copy of the signed-in cookie (say, stolen) stops working at sign-out.
    thief = app.test_client()
    thief.set_cookie("session", signed_in)
    assert thief.get("/").status_code == 200
    home = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(home)})
    assert client.get("/").status_code == 302
    assert thief.get("/").status_code == 302
    (user,) = rows(app, User)
    assert user.password_hash.startswith(("scrypt:", "pbkdf2:"))


# -- limits ------------------------------------------------------------------------------------

def test_request_body_too_large(alice, app):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    response = alice.post("/c", {"content": "x" * 5000})
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


def test_concurrent_answers_per_person(alice, app, scripted):
    app.config["STREAMS_PER_USER"] = 2
    scripted.endless, scripted.delay = True, 0.01  # both still being written
    start_chat(alice, "one")
    start_chat(alice, "two")
    response = alice.post("/c", {"content": "three"})
    assert response.status_code == 429
    assert "at most 2 at once" in response.get_data(as_text=True)
    assert len(rows(app, Conversation)) == 2  # nothing half-made


@pytest.mark.ratelimits
def test_messages_per_minute_per_person(alice, bob, app):
    app.config["MESSAGE_RATE_LIMIT"] = "3 per minute"
    statuses = [alice.post("/c", {"content": f"m{i}"}, htmx=False).status_code
                for i in range(4)]
    assert statuses == [303, 303, 303, 429]
    bob.refresh_token()
    assert bob.post("/c", {"content": "mine"}, htmx=False).status_code == 303


def test_history_sent_upstream_keeps_the_system_prompt(alice, app, scripted):
    app.config["MAX_HISTORY_CHARS"] = 30
    alice.post("/settings", {"provider": "scripted", "model": "script-1", "temperature": "0.5",
                             "top_p": "1", "presence_penalty": "0", "frequency_penalty": "0",
                             "max_tokens": "", "system_prompt": "S" * 100})
    conversation_id, first = start_chat(alice, "a" * 25)
    read_stream(alice, first)
    read_stream(alice, send(alice, conversation_id, "latest"))
    sent = scripted.calls[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "S" * 100}
    assert sent[-1] == {"role": "user", "content": "latest"}
    assert "a" * 25 not in [m["content"] for m in sent]  # the oldest turn was dropped


# -- upstream addresses come from the operator only ---------------------------------------------

def test_no_request_can_point_the_server_at_another_host(alice, app, fault_server, scripted):
    registry = ProviderRegistry.from_config({"PROVIDERS": "equing",
                                             "EQUING_URL": fault_server.url("ok")})
    app_state(app).providers = registry
    settings = alice.post("/settings", {
        "provider": "http://127.0.0.1:9/", "model": "gpt-3.5-turbo", "temperature": "0.5",
        "top_p": "1", "presence_penalty": "0", "frequency_penalty": "0", "max_tokens": "",
        "system_prompt": "", "url": "http://127.0.0.1:9/", "base_url": "http://127.0.0.1:9/"})
    assert settings.status_code == 422
    before = len(fault_server.requests)
    response = alice.client.post("/c", data={
        "content": "hello", "url": "http://127.0.0.1:9/", "provider": "openai",
        "base_url": "http://127.0.0.1:9/"},
        headers={"X-CSRFToken": alice.token, "HX-Request": "true",
                 "X-Forwarded-Host": "127.0.0.1:9"})
    assert response.status_code == 200
    page = alice.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    message_id = int(ANSWER.findall(page)[-1])  # its answer may be over already
    final = events(read_stream(alice, message_id))[-1]
    assert "Hello" in final
    assert fault_server.requests[before]["path"] == "/ok/api/openai/v1/chat/completions"


def test_other_peoples_sessions_cannot_be_forged(app, make_user):
    make_user("alice")
    forged = Browserless(app.test_client(), "alice")
    forged.client.set_cookie("session", "eyJfdXNlcl9pZCI6IjEifQ.forged.signature")
    assert forged.get("/").status_code == 302
