"""Hostile input on every route: never a 500, and nothing stored when a request is refused.

The meta-test walks ``app.url_map`` (like the CSRF, GET and ownership meta-tests in
test_security.py) and calls every route signed in, signed out and as another person, with
hostile values in every path parameter, query argument, form field, uploaded file and JSON body:
ids past 2^31 and 2^63, negatives, NUL, broken Unicode, CRLF, 1 MB strings, wrong JSON types and
deep nesting. The served API's routes (Bearer keys, no session) are called with alice's key as
well, so hostile bodies reach past the key check, chat-completions requests among them.
Hypothesis then mixes such values at random over the same routes. The app is shared by the
walk's tests (one database per run), so the module takes about a minute per database.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import timeit
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import request
from flask_migrate import upgrade
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from wtforms.fields.core import UnboundField

from tests.helpers import Browserless, read_stream, rows, share, start_chat
from tests.peers.database import database
from tests.scripted import ScriptedProvider
from webapp import create_app
from webapp.api.keys import create_key, find_key
from webapp.auth.accounts import create_user
from webapp.extensions import app_state, csrf, db
from webapp.guards import field_problem, largest_id, unstorable
from webapp.models import ApiKey, Conversation, Message, Share, User, UserSettings
from webapp.queries import people
from webapp.streaming import stops

WEBAPP = Path(__file__).resolve().parent.parent / "webapp"

# -- hostile values --------------------------------------------------------------------------

#: Path values for ``<int:...>``: past the 64-bit range, past PostgreSQL's INTEGER, at the
#: edges, negative, absurd.
HOSTILE_IDS = [str(2**63), str(2**31), str(2**64), "1" + "0" * 30, "9" * 5000, str(2**63 - 1),
               str(2**31 - 1), "-1", "0", "00000000000000000000001"]

#: Path values for text parameters, already percent-encoded as they travel: NUL, a UTF-8
#: encoded lone surrogate, invalid UTF-8, CRLF, traversal, 1 MB.
HOSTILE_SEGMENTS = ["%00", "a%00b", "%ED%A0%80", "%FF%FE", "%0D%0ASet-Cookie:%20x=1",
                    "..%2F..%2Fetc%2Fpasswd", "x" * 1_000_000]

DEEP = "[" * 50_000 + "]" * 50_000

#: Field values (query and form): each is sent in every field at once.
HOSTILE_VALUES = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\r\n", "x\r\nSet-Cookie: a=b",
                  "A" * 1_000_000, str(2**63), str(-(2**63) - 1), "9" * 5000, "-1", "1e309",
                  "NaN", "", "[]", DEEP[:20_000] + DEEP[-20_000:], "\u202e\ufeff\u0085"]

#: JSON documents sent as an uploaded file and as a JSON body: wrong types, deep nesting,
#: NUL and lone surrogates (escaped, as JSON carries them), numbers past every range.
HOSTILE_JSON = [
    DEEP,
    '{"format": "equing-chat", "version": 1, "conversations": [{"title": "a\\u0000b", '
    '"messages": [{"role": "user", "content": "x\\u0000y"}]}]}',
    '{"format": "equing-chat", "version": 1, "conversations": [{"title": "\\ud800", '
    '"messages": [{"role": "user", "content": "\\udfff"}]}]}',
    '{"format": [], "version": "1", "conversations": {"a": 1}}',
    '{"format": "equing-chat", "version": 1, "conversations": [1, null, "x", [], {}]}',
    '{"format": "equing-chat", "version": 1, "conversations": [{"title": ["x"], '
    '"pinned": "yes", "settings": {"provider": ["x"], "temperature": "hot", '
    '"max_tokens": 100000000000000000000000000000}, "messages": [{"role": 7, '
    '"content": {"a": 1}, "status": [], "parent": 99999999999999999999}]}]}',
    f'{{"format": "equing-chat", "version": {2**64}, "conversations": []}}',
    '{"format": "equing-chat", "version": 1, "conversations": [{"title": "t", "settings": '
    '{"temperature": NaN, "top_p": Infinity, "max_tokens": -Infinity}, "messages": []}]}',
    "null", "[]", '"text"', "1e999", "{", "\x00", "",
]


def _chat(**fields) -> str:
    """A chat-completions body: one question to the scripted model, with ``fields`` over it."""
    body = {"model": "scripted/script-1", "messages": [{"role": "user", "content": "hi"}],
            **fields}
    return json.dumps(body)


#: Chat-completions bodies a hostile client can send with a valid key: NUL and lone surrogates
#: (as JSON escapes them) where text goes, wrong types, numbers past every range, what the API
#: refuses (tools, n, images), sizes past the limits, and a few it takes (a stream, the alias,
#: a history), so the walk also reaches the answer's path.
HOSTILE_API_JSON = [
    '{"model": "scripted/script-1", "messages": [{"role": "user", "content": "a\\u0000b"}]}',
    '{"model": "scripted/script-1", "messages": [{"role": "user", "content": "\\ud800"}]}',
    '{"model": "scripted/\\u0000", "messages": [{"role": "user", "content": "hi"}]}',
    '{"model": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}',
    _chat(model=["scripted/script-1"]), _chat(model=""), _chat(model="x" * 5000),
    _chat(model="nobody/nothing"), _chat(model="scripted/"), _chat(model="/"),
    _chat(messages="hi"), _chat(messages=[]), _chat(messages=[None, 1, "x", []]),
    _chat(messages=[{"role": "tool", "content": "hi"}]),
    _chat(messages=[{"role": "user", "content": {"a": 1}}]),
    _chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]),
    _chat(messages=[{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]),
    _chat(messages=[{"role": "system", "content": "only a system prompt"}]),
    _chat(messages=[{"role": "user", "content": "x" * 200_000}]),
    _chat(messages=[{"role": "user"}] * 1000),
    _chat(max_tokens=2**64), _chat(max_tokens=-1), _chat(max_tokens=1.5),
    _chat(max_tokens="100"), _chat(temperature=True), _chat(temperature=[0.5]),
    _chat(top_p=1e308), _chat(presence_penalty=-(2**70)), _chat(max_completion_tokens=0),
    _chat().replace('"model"', '"temperature": NaN, "top_p": Infinity, "model"'),
    _chat(stop=["a\x00"]), _chat(stop=["x" * 1000]), _chat(stop=[1, 2]), _chat(stop=[""] * 9),
    _chat(stream="yes"), _chat(stream=True, stream_options=[]),
    _chat(stream=True, stream_options={"include_usage": "yes"}),
    _chat(n=5), _chat(n="1"), _chat(tools=[{"type": "function"}]), _chat(functions=[{}]),
    # Taken: a stream with its usage, the alias Equing clients send, a history that continues.
    _chat(stream=True, stream_options={"include_usage": True}),
    _chat(model="gpt-3.5-turbo", user="\u202e\x00", seed=2**70, logprobs=None),
    _chat(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": [{"type": "text", "text": "again"}]}]),
]

# -- routes, fields and the app ---------------------------------------------------------------

#: Endpoints that end the session or remove the shared objects: they run after the others.
DESTRUCTIVE = ("auth.logout", "manage.delete", "share.revoke", "settings.revoke_api_key")


def _fields() -> tuple[list[str], list[str]]:
    """Every field name a view reads (request.args/form/values/files) or a form declares:
    (text fields, file fields)."""
    source = "\n".join(p.read_text() for p in WEBAPP.rglob("*.py"))
    names = set(re.findall(r"request\.(?:args|form|values)\.get(?:list)?\(\s*[\"'](\w+)", source))
    files = set(re.findall(r"request\.files\.get(?:list)?\(\s*[\"'](\w+)", source))

    def forms(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from forms(sub)

    for form in forms(FlaskForm):
        if form.__module__.startswith("webapp"):
            names.update(name for name, value in inspect.getmembers(form)
                         if isinstance(value, UnboundField))
    names.discard("csrf_token")  # the token stays valid: the walk means to reach the views
    return sorted(names), sorted(files)


def _routes() -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every route, destructive ones last."""
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "PROVIDERS": "equing"}, migrations=False)
    found = sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                   for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return sorted(found, key=lambda route: route[0] in DESTRUCTIVE)


ROUTES = _routes()
TEXT_FIELDS, FILE_FIELDS = _fields()

#: A value each field accepts, so that one hostile field among valid ones reaches the code
#: past the form's validation (all fields hostile at once stop at the first invalid one).
BASELINE = {"content": "hi", "title": "a title", "q": "hi", "page": "1", "current": "1",
            "provider": "scripted", "model": "script-1", "temperature": "0.5", "top_p": "1",
            "presence_penalty": "0", "frequency_penalty": "0", "max_tokens": "100",
            "system_prompt": "Be brief.", "include_system_prompt": "on", "next": "/",
            "username": "carol", "password": "a long password", "confirm": "a long password",
            "remember": "y", "name": "a key"}

#: Routes whose failures belong to files another change owns, with the reason. Empty when
#: every route holds.
KNOWN: dict[tuple[str, str], str] = {}


def _encode(pairs: list[tuple[str, str]]) -> str:
    """A query string or form body as a client would send it: lone surrogates travel as the
    bytes they would be in UTF-8 (what a hostile client can send), not as an error."""
    return "&".join(f"{quote(k.encode('utf-8', 'surrogatepass'))}="
                    f"{quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in pairs)


def is_api(rule: str) -> bool:
    """Whether a route is the served API's (Bearer keys, JSON bodies)."""
    return rule.startswith(("/v1/", "/api/"))


#: Who calls: alice and bob signed in, someone signed out, and a program with alice's API key
#: (no session): the API's routes are called by it too.
KEY = "key"


@dataclass
class World:
    """The shared app: alice with a conversation, an answer, a share and API keys (one named
    by the routes' ``key_id``, one a program sends); bob; no one."""

    app: object
    clients: dict[str, Browserless]
    ids: dict[str, object] = field(default_factory=dict)
    last: dict[str, tuple[int, str]] | None = None
    #: alice's usable key, sent by the caller ``KEY``.
    secret: str = ""

    def signed_in(self, name: str) -> bool:
        with self.clients[name].client.session_transaction() as session:
            return "_user_id" in session

    def ensure(self) -> None:
        """Sign alice and bob back in and give alice her objects back if a route removed them
        (sign-out, delete, revoke run last but a failed run may leave them gone)."""
        for name in ("alice", "bob"):
            if not self.signed_in(name):
                self.clients[name].login()
        alice = self.clients["alice"]
        with self.app.app_context():
            present = db.session.get(Conversation, self.ids.get("conversation_id", 0))
            shared = db.session.get(Share, self.ids.get("share_id", 0))
        if not present:
            conversation_id, message_id = start_chat(alice, "hostile walk")
            read_stream(alice, message_id)
            self.ids.update(conversation_id=conversation_id, message_id=message_id)
        if not present or not shared:
            token = share(alice, self.ids["conversation_id"]).rsplit("/", 1)[1]
            (row,) = [r for r in rows(self.app, Share) if r.token == token]
            self.ids.update(token=token, share_id=row.id)
        self.ids["filename"] = "css/app.css"
        self.ids["model"] = "scripted/script-1"
        self.ensure_keys()
        for name in ("alice", "bob"):
            self.clients[name].refresh_token()
        self.last = None

    def ensure_keys(self) -> None:
        """alice's key for the routes' ``key_id`` (revoking it again is harmless), and a
        usable key for ``KEY`` (made again if the walk revoked it: ids such as 0…01 name it)."""
        with self.app.app_context():
            alice = db.session.scalar(people.by_username("alice"))
            if db.session.get(ApiKey, self.ids.get("key_id", 0)) is None:
                self.ids["key_id"] = create_key(alice, "walked")[0].id
            if not self.secret or find_key(db.session, self.secret) is None:
                self.secret = create_key(db.session.get(User, alice.id), "program")[1]

    def state(self) -> dict[str, tuple[int, str]]:
        """Row count and a digest of the rows, per table."""
        out = {}
        with self.app.app_context(), db.engine.connect() as conn:
            for table in db.metadata.sorted_tables:
                # Plain tuples in key order: a Row's own repr took half the walk's time.
                found = [tuple(row) for row in conn.execute(
                    select(table).order_by(*table.primary_key.columns or table.columns))]
                digest = hashlib.sha256(str(found).encode()).hexdigest()
                out[table.name] = (len(found), digest)
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    scripted = ScriptedProvider.make()
    with database(tmp) as url:
        app = create_app({
            "TESTING": True, "SECRET_KEY": "test", "SQLALCHEMY_DATABASE_URI": url,
            "PROVIDERS": "equing", "STREAM_KEEPALIVE_SECONDS": 0.2, "STREAM_SAVE_SECONDS": 0.2,
            "RATELIMIT_ENABLED": False, "RATELIMIT_STORAGE_URI": "memory://",
            # Walked sends leave answers pending: the cap must not end the walk early.
            "STREAMS_PER_USER": 1_000_000,
        })
        app_state(app).providers.register(scripted)
        app_state(app).providers.default = scripted.name
        with app.app_context():
            upgrade()
            create_user("alice", "correct horse", is_admin=True)
            create_user("bob", "correct horse")
        clients = {name: Browserless(app.test_client(), name) for name in ("alice", "bob")}
        clients["anonymous"] = Browserless(app.test_client(), "anonymous")
        clients[KEY] = Browserless(app.test_client(), KEY)
        result = World(app, clients)
        result.ensure()
        yield result
        with app.app_context():
            db.engine.dispose()


# -- calling a route with hostile values ------------------------------------------------------

@dataclass
class Call:
    """One request: who, how, where, with what."""

    who: str
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    json_body: str | None = None
    htmx: bool = False

    def describe(self) -> str:
        def short(value):
            return repr(value if len(value) < 40 else value[:30] + f"...({len(value)} chars)")
        fields = [f"{k}={short(v)}" for k, v in self.query + self.form
                  if BASELINE.get(k) != v][:3]
        return (f"{self.who} {self.method} {short(self.path)} "
                f"{' '.join(fields)}{' file' if self.files else ''}"
                f"{' json=' + short(self.json_body) if self.json_body is not None else ''}")


def fill(rule: str, ids: dict[str, object], hostile_id: str | None = None,
         hostile_segment: str | None = None) -> str:
    """The rule's path with the world's ids, or with hostile values in every parameter."""
    def replace(match):
        converter, name = match.group(1), match.group(2)
        if converter == "int":
            return hostile_id if hostile_id is not None else str(ids.get(name, 1))
        if hostile_segment is not None:
            return hostile_segment
        return quote(str(ids.get(name, "x")), safe="/")
    return re.sub(r"<(?:(\w+):)?(\w+)>", replace, rule)


def send(world: World, call: Call):
    """Make the request and read its whole answer; returns (status, body) or raises."""
    client = world.clients[call.who]
    headers = {"X-CSRFToken": client.token} if client.token else {}
    if call.who == KEY:
        headers["Authorization"] = f"Bearer {world.secret}"
    if call.htmx:
        headers["HX-Request"] = "true"
    kwargs = {}
    path = call.path + ("?" + _encode(call.query) if call.query else "")
    if call.json_body is not None:
        kwargs.update(data=call.json_body.encode("utf-8", "surrogatepass"),
                      content_type="application/json")
    elif call.files:
        body = {k: v.encode("utf-8", "surrogatepass") for k, v in call.form}
        for name, content in call.files.items():
            body[name] = (io.BytesIO(content), "hostile.json")
        body["csrf_token"] = client.token
        kwargs.update(data=body, content_type="multipart/form-data")
    elif call.method != "GET":
        kwargs.update(data=_encode([*call.form, ("csrf_token", client.token)]),
                      content_type="application/x-www-form-urlencoded")
    response = client.client.open(path, method=call.method, headers=headers, **kwargs)
    try:
        return response.status_code, response.get_data(as_text=True)
    finally:
        response.close()


def check(world: World, call: Call, failures: list[str]) -> int | None:
    """Send ``call``; record a failure for a 500 (or a raised exception) and for anything
    stored by a refused request. Returns the status."""
    before = world.last or world.state()
    try:
        status, _body = send(world, call)
    except Exception as error:  # noqa: BLE001 - the test reports every kind of failure
        frames = [f for f in traceback.extract_tb(error.__traceback__) if "/webapp/" in f.filename]
        where = f"{frames[-1].filename.split('/webapp/')[1]}:{frames[-1].lineno}" if frames else "?"
        failures.append(f"{call.describe()}: {type(error).__name__}: {str(error)[:120]} "
                        f"(webapp/{where})")
        world.last = None
        return None
    # An accepted message's answer runs on after the response: wait for it to end, so its
    # writes are not counted against the next request.
    assert stops.wait_idle(10)
    after = world.state()
    world.last = after
    if status >= 500:
        failures.append(f"{call.describe()}: answered {status}")
    elif status >= 400:
        changed = [table for table in after
                   if after[table] != before.get(table) and not _records_refusals(call, table)]
        if changed:
            failures.append(f"{call.describe()}: refused with {status} but changed {changed}")
    return status


def _records_refusals(call: Call, table: str) -> bool:
    """A refused sign-in is counted against the account by design (issue 14 point 9)."""
    return call.path.startswith("/login") and table not in (
        "conversations", "messages", "shares", "user_settings")


def main_field(app, endpoint: str) -> str:
    """The field a route's view reads by name (else the longest text a form takes): where a
    huge value goes, since sending one in every field at once would take minutes."""
    source = inspect.getsource(app.view_functions[endpoint])
    return next((name for name in TEXT_FIELDS if f'"{name}"' in source), "system_prompt")


def thorough(who: str) -> bool:
    """Whether ``who`` gets every hostile value (the others a sample: they are turned away
    before a body or most parameters are read)."""
    return who in ("alice", KEY)


def callers(rule: str) -> tuple[str, ...]:
    """Who calls a route: on the API's, a program with alice's key first (then a session
    and no one, both refused: the API takes keys only); elsewhere alice, someone signed out
    and, where a path names alice's objects, bob (elsewhere he is one more signed-in person,
    as alice is)."""
    if is_api(rule):
        return (KEY, "alice", "anonymous")
    return ("alice", "bob", "anonymous") if "<" in rule else ("alice", "anonymous")


def calls_for(world: World, endpoint: str, method: str, rule: str):
    """Every hostile call of one route: hostile path parameters, then hostile fields (query,
    form, files, JSON body), for each of its ``callers`` (JSON bodies and files for alice, or
    the key on the API, only); on the API, chat-completions bodies too."""
    main = main_field(world.app, endpoint)
    for who in callers(rule):
        yield from path_calls(world, who, method, rule)
        path = fill(rule, world.ids)
        yield from field_calls(who, method, path, main)
        if method != "GET" and thorough(who):
            yield from body_calls(who, method, path, is_api(rule))


def path_calls(world: World, who: str, method: str, rule: str):
    """Hostile path parameters; routing reads the path before anyone is known, so the others
    get a sample of them."""
    if "<int:" in rule:
        for value in HOSTILE_IDS if thorough(who) else HOSTILE_IDS[:2]:
            yield Call(who, method, fill(rule, world.ids, hostile_id=value))
    if re.search(r"<(?!int:)[^>]+>", rule):
        for value in HOSTILE_SEGMENTS if thorough(who) else HOSTILE_SEGMENTS[:2]:
            yield Call(who, method, fill(rule, world.ids, hostile_segment=value), htmx=True)


def field_calls(who: str, method: str, path: str, main: str):
    """Hostile values in the query or form: in every text field at once (a huge one in the main
    field alone), in the query beside a valid form, and alone among valid fields."""
    where = "query" if method == "GET" else "form"
    for n, value in enumerate(HOSTILE_VALUES):
        names = [main] if len(value) > 1000 else TEXT_FIELDS
        yield Call(who, method, path, htmx=n % 2 == 0,
                   **{where: [(name, value) for name in names]})
        if method != "GET" and thorough(who):
            yield Call(who, method, path, query=[(name, value) for name in names],
                       form=[("content", "hi")])
        if thorough(who) and len(value) <= 1000:  # one field among valid ones (a huge
            # value already went to the main field alone)
            yield Call(who, method, path, **{where: list({**BASELINE, main: value}.items())})


def body_calls(who: str, method: str, path: str, api: bool = False):
    """Hostile JSON bodies and, where a route takes files, the same bytes as files; on the
    API, hostile chat-completions bodies too."""
    for document in HOSTILE_JSON + (HOSTILE_API_JSON if api else []):
        yield Call(who, method, path, json_body=document)
        if FILE_FIELDS and not api:
            yield Call(who, method, path, files=dict.fromkeys(
                FILE_FIELDS, document.encode("utf-8", "surrogatepass")))


def _params():
    for endpoint, method, rule in ROUTES:
        marks = [pytest.mark.xfail(reason=KNOWN[endpoint, method], strict=False)] \
            if (endpoint, method) in KNOWN else []
        yield pytest.param(endpoint, method, rule, id=f"{method} {rule}", marks=marks)


@pytest.mark.parametrize(("endpoint", "method", "rule"), list(_params()))
def test_no_route_answers_500_to_hostile_input(world, endpoint, method, rule):
    world.ensure()
    failures: list[str] = []
    count = 0
    for call in calls_for(world, endpoint, method, rule):
        check(world, call, failures)
        count += 1
    assert count >= 30  # the walk really reached this route with every kind of value
    assert not failures, "\n".join(failures)


def test_the_walk_covers_the_whole_app():
    """Every route, and the fields the views read, are in the walk (so a new route or field
    is walked without editing this file)."""
    assert len(ROUTES) >= 35
    assert {"content", "title", "q", "page", "system_prompt", "max_tokens", "username",
            "name"} <= set(TEXT_FIELDS)
    # The API's routes are walked with a key: chat completions, the models and one model.
    assert {endpoint for endpoint, _, rule in ROUTES if is_api(rule)} == \
        {"api.chat_completions", "api.models", "api.model"}
    assert FILE_FIELDS == ["file"]


# -- Hypothesis: hostile values mixed at random ------------------------------------------------

_texts = st.one_of(
    st.text(max_size=40),  # any code point, lone surrogates and NUL included
    st.sampled_from(HOSTILE_VALUES),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.from_regex(r"[\x00-\x1f\x7f]{1,5}", fullmatch=True),
)
_ids = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str),
                 st.sampled_from(HOSTILE_IDS))
_segments = st.one_of(st.sampled_from(HOSTILE_SEGMENTS[:-1]),
                      st.text(min_size=1, max_size=20).map(
                          lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(route=st.sampled_from([r for r in ROUTES if r[0] not in DESTRUCTIVE]),
       who=st.sampled_from(["alice", "bob", "anonymous", KEY]),
       hostile_id=st.one_of(st.none(), _ids), segment=st.one_of(st.none(), _segments),
       values=st.dictionaries(st.sampled_from(TEXT_FIELDS), _texts, max_size=6),
       as_query=st.booleans(), htmx=st.booleans(), valid_rest=st.booleans())
def test_generated_hostile_input_never_answers_500(world, route, who, hostile_id, segment,
                                                   values, as_query, htmx, valid_rest):
    endpoint, method, rule = route
    if world.last is None:
        world.ensure()
    path = fill(rule, world.ids, hostile_id=hostile_id, hostile_segment=segment)
    pairs = list(({**BASELINE, **values} if valid_rest else values).items())
    call = Call(who, method, path, htmx=htmx)
    if method == "GET" or as_query:
        call.query = pairs
    else:
        call.form = pairs
    failures: list[str] = []
    check(world, call, failures)
    if (endpoint, method) in KNOWN:
        return  # listed above: its owner's change holds it
    assert not failures, "\n".join(failures)


# -- the points of issue 14.3, one by one ---------------------------------------------------

INT_ROUTES = [(method, rule) for endpoint, method, rule in ROUTES if "<int:" in rule]


@pytest.mark.parametrize(("method", "rule"), INT_ROUTES,
                         ids=[f"{m} {r}" for m, r in INT_ROUTES])
def test_an_id_past_what_the_database_holds_is_404(alice, method, rule):
    assert len(INT_ROUTES) >= 13  # the issue counted about 13 routes
    largest = largest_id()
    assert largest == 2**31 - 1  # ids are INTEGER on PostgreSQL: 2^31 there was a 500 too
    for value in (str(largest + 1), str(2**63), str(2**64), str(10**30), "9" * 5000):
        path = re.sub(r"<int:\w+>", value, rule)
        response = alice.client.open(path, method=method,
                                     data={"csrf_token": alice.token, "content": "x"})
        assert response.status_code == 404, (path[:60], response.status_code)
        assert "There is nothing here" in response.get_data(as_text=True)
    # The largest id that fits is simply not found.
    path = re.sub(r"<int:\w+>", str(largest), rule)
    assert alice.client.open(path, method=method,
                             data={"csrf_token": alice.token}).status_code == 404


def test_an_integer_argument_past_the_range_falls_back_to_its_default(alice):
    start_chat(alice)
    for page in (str(2**31), str(2**62), str(2**63), str(-(2**63) - 1), str(10**30)):
        response = alice.get("/conversations", query_string={"page": page, "current": page})
        assert response.status_code == 200
        assert "Hi &lt;b&gt;there&lt;/b&gt;" in response.get_data(as_text=True)


def _counts(app):
    with app.app_context(), db.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in db.metadata.sorted_tables}


def _refused(response, htmx=False):
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[:300]
    assert "cannot be stored" in body
    # htmx gets the short fragment it swaps into the page, a browser the whole error page.
    assert ("<html" in body) is not htmx
    return body


@pytest.mark.parametrize("q", ["\x00", "a\x00b", "\ud800"])
def test_a_search_with_nul_is_refused_with_a_message(alice, app, q):
    start_chat(alice)
    response = alice.client.get("/search?" + _encode([("q", q)]))
    if q == "\ud800":
        # A lone surrogate cannot travel in UTF-8: the server gets U+FFFD and searches.
        assert response.status_code == 200
        return
    _refused(response)
    _refused(alice.client.get("/search?" + _encode([("q", q)]), headers={"HX-Request": "true"}),
             htmx=True)


@pytest.mark.parametrize("htmx", [True, False])
def test_nul_in_a_message_is_refused_and_nothing_is_stored(alice, app, htmx):
    conversation_id, message_id = start_chat(alice)
    read_stream(alice, message_id)
    before = _counts(app)
    for path in ("/c", f"/c/{conversation_id}/messages"):
        _refused(alice.post(path, {"content": "hello\x00world"}, htmx=htmx), htmx=htmx)
    assert _counts(app) == before
    assert [m.content for m in rows(app, Message)][0] == "Hi <b>there</b>"


def test_nul_in_a_rename_is_refused_and_the_title_kept(alice, app):
    conversation_id, message_id = start_chat(alice)
    _refused(alice.post(f"/c/{conversation_id}/rename", {"title": "new\x00name"}), htmx=True)
    assert rows(app, Conversation)[0].title == "Hi <b>there</b>"


def test_nul_in_an_uploaded_file_name_is_refused(alice, app):
    before = _counts(app)
    document = {"format": "equing-chat", "version": 1, "conversations": [
        {"title": "t", "messages": [{"role": "user", "content": "hi"}]}]}
    response = alice.client.post("/import", data={
        "file": (io.BytesIO(json.dumps(document).encode()), "a\x00.json"),
        "csrf_token": alice.token}, content_type="multipart/form-data")
    _refused(response)
    assert _counts(app) == before


@pytest.mark.parametrize("path", ["/s/%00", "/s/a%00b", "/s/%00/copy", "/static/%00",
                                  "/s/%00?next=x", "/s/%ED%A0%80"])
def test_nul_in_the_address_is_a_404_signed_out(app, make_user, path):
    """No id, token or file name holds a NUL: nothing is there (PostgreSQL answered 500)."""
    make_user("alice")
    client = app.test_client()
    if path.endswith("/copy"):
        assert client.post(path).status_code == 400  # the CSRF check answers first
        return
    response = client.get(path)
    assert response.status_code == 404
    assert "There is nothing here" in response.get_data(as_text=True)


def test_a_view_may_raise_its_body_limit_before_the_form_is_checked(app, make_user):
    """The form is checked as it is parsed, not before the view: the import raises its own
    limit above MAX_CONTENT_LENGTH first (issue 14 point 6), and its CSRF check after."""
    @app.post("/test-large-form")
    @csrf.exempt
    def large_form():
        request.max_content_length = 4 * 1024 * 1024
        return {"chars": len(request.form["text"])}

    make_user("alice")
    alice = Browserless(app.test_client(), "alice").login()
    big = "x" * (2 * 1024 * 1024)
    response = alice.client.post("/test-large-form", data={"text": big})
    assert response.status_code == 200 and response.json == {"chars": len(big)}
    _refused(alice.client.post("/test-large-form", data={"text": big + "\x00"}))


def _settings_of(app):
    with app.app_context():
        found = db.session.scalars(select(UserSettings)).all()
        return [(s.system_prompt, s.temperature, s.max_tokens) for s in found]


@pytest.mark.parametrize("body", [DEEP, '"text"', "1e999", "[1]", "{", '{"temperature": 1}',
                                  '{"system_prompt": {"a": "b"}}', '{"top_p": [null]}',
                                  '{"system_prompt": "a\\u0000b"}',
                                  '{"system_prompt": "\\ud800"}'])
def test_a_json_body_no_form_could_send_is_refused(alice, app, body):
    """Flask-WTF reads a JSON body as the form: anything but text by name broke the form."""
    before = _counts(app), _settings_of(app)
    response = alice.client.post("/settings", data=body.encode("utf-8", "surrogatepass"),
                                 content_type="application/json",
                                 headers={"X-CSRFToken": alice.token})
    page = response.get_data(as_text=True)
    assert response.status_code == 400, page[:300]
    assert "JSON body" in page or "cannot be stored" in page
    assert (_counts(app), _settings_of(app)) == before


def test_a_json_body_shaped_like_the_form_still_works(alice, app):
    form = {"provider": "scripted", "model": "script-1", "temperature": "0.25", "top_p": "1",
            "presence_penalty": "0", "frequency_penalty": "0", "max_tokens": "",
            "system_prompt": "be brief"}
    response = alice.client.post("/settings", json=form, headers={"X-CSRFToken": alice.token})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert _settings_of(app) == [("be brief", 0.25, None)]


def test_the_guard_costs_microseconds_on_a_chat_turn(app):
    """The form check runs on every chat turn; it is a scan of a few fields, at C speed even
    for the longest message (the whole guard measured 5-7 µs a request, 65 µs with 32,000 CJK
    characters; a regular expression took 180-330 µs)."""
    for content in ("A question of a few hundred characters. " * 10, "漢字" * 16_000):
        form = {"content": content, "csrf_token": "t" * 91}
        with app.test_request_context("/c/1/messages", method="POST", data=form):
            assert field_problem("the form", request.form) is None
            seconds = min(timeit.repeat(lambda: field_problem("the form", request.form),
                                        number=200, repeat=3)) / 200
        assert seconds < 1e-3, seconds


@pytest.mark.parametrize(("value", "refused"), [
    ("plain", False), ("", False), ("漢字 é \u202e", False), ("\U0001f600", False),
    ("a\x00", True), ("\ud800", True), ("漢\udfff", True), ("x" * 10_000 + "\x00", True)])
def test_unstorable_finds_nul_and_lone_surrogates(value, refused):
    assert unstorable(value) is refused
