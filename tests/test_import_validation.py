"""Issue 14, points 3 (NaN/Infinity), 4, 5 and 6: the import takes only what the settings forms
take (one schema), all or nothing, with the first problem in words; shared snapshots are checked
when made, shown and copied; a full export imports back under the import's own size limit."""

from __future__ import annotations

import copy
import io
import json
import random

import pytest
from sqlalchemy import insert

from tests.helpers import read_stream, rows, start_chat
from tests.peers.appserver import AppServer
from tests.peers.webclient import WebClient
from webapp import create_app
from webapp.config import Config
from webapp.extensions import db
from webapp.models import Conversation, Message, Share, User

GOOD_SETTINGS = {"provider": "scripted", "model": "script-2", "temperature": 0.7, "top_p": 0.9,
                 "presence_penalty": 0.5, "frequency_penalty": -0.5, "max_tokens": 256,
                 "system_prompt": "You are a pirate."}


def export(*conversations) -> dict:
    return {"format": "equing-chat", "version": 1, "conversations": list(conversations)}


def chat(title="Imported", settings=None, messages=None, **extra) -> dict:
    return {"title": title, "pinned": False, "settings": settings,
            "messages": messages if messages is not None else [
                {"role": "user", "content": "Hello", "status": "complete"},
                {"role": "assistant", "content": "Hi **there**", "status": "complete",
                 "provider": "scripted", "model": "script-1",
                 "params": {"temperature": 0.5, "top_p": 1.0}}],
            **extra}


def post_import(client, body: bytes | str, htmx=False):
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    headers = {"HX-Request": "true"} if htmx else {}
    return client.client.post("/import", data={
        "file": (io.BytesIO(body), "conversations.json"), "csrf_token": client.token},
        content_type="multipart/form-data", headers=headers)


def refused(app, response, status: int, *words: str) -> str:
    """The answer refused the import with ``status``, said ``words``, and stored nothing."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text[:2000]
    assert "Nothing was imported" in text
    for word in words:
        assert word in text, (word, text[:3000])
    assert rows(app, Conversation) == [] and rows(app, Message) == []
    return text


# -- 14.4: the import takes what the forms take, all or nothing, first problem in words ----

def test_a_number_of_thousands_of_digits_is_refused_in_words(alice, app):
    body = '{"format": "equing-chat", "version": 1, "conversations": [' + "9" * 5000 + "]}"
    text = refused(app, post_import(alice, body), 400, "thousands of digits")
    assert "set_int_max_str_digits" not in text  # no Python internals on the page


def test_deep_nesting_is_a_400_not_a_recursion_error(alice, app):
    body = '{"format": "equing-chat", "version": 1, "conversations": [' \
           + "[" * 100_000 + "]" * 100_000 + "]}"
    refused(app, post_import(alice, body), 400, "nested too deeply")


@pytest.mark.parametrize("where, document", [
    ("“title”", export(chat(title="bad \ud800 title"))),
    ("message 1: “content”", export(chat(messages=[{"role": "user", "content": "x\udfff"}]))),
    ("“system_prompt”", export(chat(settings={**GOOD_SETTINGS, "system_prompt": "\ud83d"}))),
])
def test_lone_surrogates_are_refused_by_field(alice, app, where, document):
    # json.dumps writes them as \ud800 escapes, which Python's parser turns into lone
    # surrogates: text no database can store.
    refused(app, post_import(alice, json.dumps(document)), 400, "lone surrogate",
            "conversation 1", where)


def test_a_list_where_the_provider_is_text_is_refused(alice, app):
    document = export(chat(title="Fine"), chat(title="Broken",
                                               settings={**GOOD_SETTINGS, "provider": ["x"]}))
    refused(app, post_import(alice, json.dumps(document)), 422,
            "conversation 2 (“Broken”)", "“settings”", "“provider”", "must be text, not a list")


def test_a_500000_character_system_prompt_is_refused(alice, app):
    long = "p" * 500_000
    document = export(chat(settings={**GOOD_SETTINGS, "system_prompt": long}))
    refused(app, post_import(alice, json.dumps(document)), 422,
            "“system_prompt”", "too long (500,000 characters; at most 8,000)")
    # The same in an answer's recorded parameters.
    messages = [{"role": "assistant", "content": "x", "params": {"system_prompt": long}}]
    refused(app, post_import(alice, json.dumps(export(chat(messages=messages)))), 422,
            "message 1", "“params”", "too long")


# The forms and the import share one schema: the same value is refused by both, in the same
# words. (field, value as JSON, value as the form posts it, words both say)
SHARED = [
    ("temperature", 2.5, "2.5", "Temperature must be between 0 and 2"),
    ("top_p", -1, "-1", "Top P must be between 0 and 1"),
    ("presence_penalty", 3, "3", "Presence penalty must be between -2 and 2"),
    ("frequency_penalty", -2.01, "-2.01", "Frequency penalty must be between -2 and 2"),
    ("max_tokens", 99999, "99999", "Max tokens must be between 1 and 32768"),
    ("provider", "nope", "nope", "Choose one of the providers in the list."),
    ("model", "gpt-4", "gpt-4", "does not offer “gpt-4”"),
    ("system_prompt", "x" * 8001, "x" * 8001, "too long"),
    ("system_prompt", "a\x00b", "a\x00b", "NUL character"),
]


@pytest.mark.parametrize("field, value, posted, words", SHARED)
def test_forms_and_import_refuse_the_same_values_in_the_same_words(alice, app, field, value,
                                                                  posted, words):
    form = {**{k: str(v) for k, v in GOOD_SETTINGS.items()}, field: posted}
    answer = alice.post("/settings", form)
    assert answer.status_code == 422 and words in answer.get_data(as_text=True)
    document = export(chat(settings={**GOOD_SETTINGS, field: value}))
    status = 400 if "\x00" in str(value) else 422
    refused(app, post_import(alice, json.dumps(document)), status, f"“{field}”", words)


@pytest.mark.parametrize("change, words", [
    ({"pinned": "yes"}, "“pinned” must be true or false, not text"),
    ({"settings": [1, 2]}, "“settings”: must be an object of settings, not a list"),
    ({"settings": {"temperature": True}}, "Temperature must be a number, not true or false"),
    ({"settings": {"max_tokens": 1.5}}, "Max tokens must be a whole number"),
    ({"title": "t" * 201}, "“title” is too long"),
    ({"created_at": "yesterday"}, "“created_at” is not a date and time"),
    ({"messages": [{"role": "user", "content": 7}]}, "message 1: “content” must be text"),
    ({"messages": [{"role": "user", "content": "x" * 200_001}]}, "“content” is too long"),
    ({"messages": [{"role": "assistant", "content": "x", "params": {"top_p": 5}}]},
     "message 1: “params”: “top_p”: Top P must be between 0 and 1"),
    ({"messages": [{"role": "assistant", "content": "x", "params": {"seed": [[[]]]}}]},
     "“seed”: must be text, a number, true, false or null, not a list"),
    ({"messages": [{"role": "assistant", "content": "x", "model": {"a": 1}}]},
     "“model” must be text, not an object"),
])
def test_every_field_is_checked_and_named(alice, app, change, words):
    document = export(chat(title="First"), {**chat(title="Second"), **change})
    text = refused(app, post_import(alice, json.dumps(document)), 422, "conversation 2", words)
    assert "conversation 1" not in text


def test_htmx_gets_the_problem_as_text(alice, app):
    document = export(chat(settings={**GOOD_SETTINGS, "temperature": 9}))
    response = post_import(alice, json.dumps(document), htmx=True)
    text = refused(app, response, 422, "Temperature must be between 0 and 2")
    assert "<html" not in text and "<form" not in text


def test_a_refused_import_shows_the_data_page_with_its_limit(alice, app):
    document = export(chat(settings={**GOOD_SETTINGS, "provider": ["x"]}))
    text = refused(app, post_import(alice, json.dumps(document)), 422, "must be text")
    assert 'action="/import"' in text and "Files up to 8.4 MB" in text


def test_a_valid_import_keeps_every_checked_value(alice, app):
    messages = [{"role": "user", "content": "Hi", "status": "complete",
                 "created_at": "2026-01-02T03:04:05+02:00"},
                {"role": "assistant", "content": "Yo", "status": "streaming",
                 "provider": "gone-provider", "model": "m",
                 "params": {"temperature": 1, "max_tokens": 100.0, "newer_flag": True}}]
    document = export(chat(title="Kept", pinned=True, settings=GOOD_SETTINGS,
                           messages=messages))
    assert post_import(alice, json.dumps(document)).status_code == 303
    (conversation,) = rows(app, Conversation)
    assert (conversation.title, conversation.pinned, conversation.settings) == (
        "Kept", True, GOOD_SETTINGS)
    user, answer = rows(app, Message, conversation_id=conversation.id)
    assert user.created_at.isoformat() == "2026-01-02T01:04:05"  # stored as UTC
    # A record of the past: an answer being written when exported ends stopped; a provider
    # this site no longer has is only a label; unknown small parameters are kept.
    assert (answer.status, answer.provider) == ("stopped", "gone-provider")
    assert answer.params == {"temperature": 1, "max_tokens": 100, "newer_flag": True}
    assert alice.get(f"/c/{conversation.id}").status_code == 200


# -- 14.3 (part): NaN and Infinity; NUL --------------------------------------------------

@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_400(alice, app, constant):
    body = json.dumps(export(chat(settings={**GOOD_SETTINGS, "temperature": 0.5})))
    body = body.replace('"temperature": 0.5', f'"temperature": {constant}')
    refused(app, post_import(alice, body), 400, constant, "not a number JSON allows")


@pytest.mark.parametrize("document, where", [
    (export(chat(title="a\x00b")), "“title”"),
    (export(chat(messages=[{"role": "user", "content": "x\x00"}])), "message 1: “content”"),
    (export(chat(messages=[{"role": "assistant", "content": "x", "error": "\x00"}])),
     "“error”"),
])
def test_nul_in_imported_text_is_a_400(alice, app, document, where):
    refused(app, post_import(alice, json.dumps(document)), 400, where, "NUL character")


# -- 14.6: a full export imports back; the import has its own limit ----------------------

def fill(app, user_id: int, conversations: int, chars: int) -> None:
    """``conversations`` conversations of two messages of about ``chars`` characters each (a
    question and the answer following it), inserted in bulk (a test that chatted them would
    take minutes)."""
    text = ("A line of *markdown* with `code` and words. " * (chars // 44 + 1))[:chars]
    with app.app_context():
        ids = db.session.scalars(
            insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
            [{"user_id": user_id, "title": f"Chat {n}", "settings": GOOD_SETTINGS}
             for n in range(conversations)]).all()
        questions = db.session.scalars(
            insert(Message).returning(Message.id, sort_by_parameter_order=True),
            [{"conversation_id": cid, "role": "user", "content": f"user {cid}: {text}",
              "status": "complete"} for cid in ids]).all()
        db.session.execute(insert(Message), [
            {"conversation_id": cid, "parent_id": question, "role": "assistant",
             "content": f"assistant {cid}: {text}", "status": "complete",
             "provider": "scripted", "model": "script-1",
             "params": {"temperature": 0.5, "top_p": 1.0}}
            for cid, question in zip(ids, questions, strict=True)])
        db.session.commit()


def without_times(conversation: dict) -> dict:
    conversation = {k: v for k, v in conversation.items() if not k.endswith("_at")}
    conversation["messages"] = [{k: v for k, v in m.items() if not k.endswith("_at")}
                                for m in conversation["messages"]]
    return conversation


def test_a_full_export_near_the_limit_imports_back(alice, app):
    limit = app.config.get("MAX_IMPORT_BYTES", 8 * 1024 * 1024)
    (user,) = rows(app, User, username="alice")
    # About 5 KB of JSON a conversation: fill to 95-100 % of the limit.
    fill(app, user.id, 1, 2400)
    one = len(alice.get("/export.json").get_data())
    fill(app, user.id, int(limit * 0.97) // one - 1, 2400)
    body = alice.get("/export.json").get_data()
    assert 0.95 * limit < len(body) <= limit, (len(body), limit)
    everything = json.loads(body)
    count = len(everything["conversations"])
    assert count > 1000  # many conversations, as a long history has

    response = post_import(alice, body)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert len(rows(app, Conversation)) == 2 * count
    again = json.loads(alice.get("/export.json").get_data())
    twice = [json.dumps(without_times(c), sort_keys=True) for c in again["conversations"]]
    for original in everything["conversations"]:
        assert twice.count(json.dumps(without_times(original), sort_keys=True)) == 2
    # What was tested is the default limit, well above other requests' limit.
    assert limit == Config.MAX_IMPORT_BYTES >= 8 * app.config["MAX_CONTENT_LENGTH"]


def test_an_import_over_its_limit_is_a_413_with_the_limit(alice, app):
    app.config["MAX_IMPORT_BYTES"] = 100_000
    document = export(*[chat(title=f"c{n}") for n in range(400)])
    body = json.dumps(document).encode()
    assert len(body) > 100_000
    refused(app, post_import(alice, body), 413, "larger than the import limit of 0.1 MB")


def test_other_routes_keep_the_request_limit(alice, app):
    conversation_id, message_id = start_chat(alice, "hello")
    read_stream(alice, message_id)
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = alice.post(f"/c/{conversation_id}/rename", {"title": big}, htmx=False)
    assert response.status_code == 413
    assert rows(app, Conversation, id=conversation_id)[0].title == "hello"


# -- 14.5: shared snapshots are checked when made, shown and copied ---------------------

def shared(alice, app, params) -> tuple[int, str]:
    """A conversation of alice whose answer was stored with ``params`` (as an older import
    could), shared with its system prompt; returns its id and link."""
    conversation_id, message_id = start_chat(alice, "hello")
    read_stream(alice, message_id)
    with app.app_context():
        db.session.get(Message, message_id).params = params
        db.session.commit()
    assert alice.post(f"/c/{conversation_id}/share", {"include_system_prompt": "1"},
                      htmx=False).status_code == 303
    (share,) = rows(app, Share, conversation_id=conversation_id)
    return conversation_id, f"/s/{share.token}"


def test_a_system_prompt_that_is_not_text_is_left_out_of_the_snapshot(alice, bob, app):
    _, link = shared(alice, app, {"temperature": 0.5, "system_prompt": ["not", "text"]})
    (share,) = rows(app, Share)
    assert share.snapshot["system_prompt"] == ""
    copied = bob.post(link + "/copy", htmx=False)
    assert copied.status_code == 303
    copy_id = int(copied.headers["Location"].rsplit("/", 1)[1])
    # The copier's conversation still answers.
    bob.refresh_token(f"/c/{copy_id}")
    assert bob.get(f"/c/{copy_id}").status_code == 200
    assert bob.post(f"/c/{copy_id}/messages", {"content": "go on"}).status_code == 200


@pytest.mark.parametrize("damage, words", [
    (lambda s: s.update(system_prompt={"a": 1}), "System prompt must be text"),
    (lambda s: s.update(title=None), "its title must be text"),
    (lambda s: s["messages"][0].update(content=["x"]), "message 1: “content” must be text"),
    (lambda s: s.update(messages="none"), "its messages are text, not a list"),
])
def test_a_broken_stored_snapshot_is_refused_when_shown_and_copied(alice, bob, app, damage,
                                                                   words):
    _, link = shared(alice, app, {"temperature": 0.5, "system_prompt": "Be brief."})
    with app.app_context():
        share = db.session.scalar(db.select(Share))
        snapshot = copy.deepcopy(share.snapshot)
        damage(snapshot)
        share.snapshot = snapshot
        db.session.commit()
    before = len(rows(app, Conversation))
    shown = bob.get(link)
    assert shown.status_code == 422 and words in shown.get_data(as_text=True)
    bob.refresh_token()
    copied = bob.post(link + "/copy", htmx=False)
    assert copied.status_code == 422
    assert words in copied.get_data(as_text=True) and "Nothing was copied" in \
        copied.get_data(as_text=True)
    assert len(rows(app, Conversation)) == before


def test_a_conversation_whose_text_cannot_be_shared_says_why(alice, app):
    conversation_id, message_id = start_chat(alice, "hello")
    read_stream(alice, message_id)
    with app.app_context():
        db.session.get(Message, message_id).content = "y" * 200_001
        db.session.commit()
    response = alice.post(f"/c/{conversation_id}/share", htmx=False)
    assert response.status_code == 422
    assert "cannot be shared" in response.get_data(as_text=True)
    assert rows(app, Share) == []


def test_settings_stored_before_the_checks_do_not_break_the_conversation(alice, app):
    conversation_id, message_id = start_chat(alice, "hello")
    read_stream(alice, message_id)
    with app.app_context():
        db.session.get(Conversation, conversation_id).settings = {
            "provider": ["x"], "system_prompt": {"a": 1}, "temperature": "hot"}
        db.session.commit()
    assert alice.get(f"/c/{conversation_id}").status_code == 200
    alice.refresh_token(f"/c/{conversation_id}")
    assert alice.post(f"/c/{conversation_id}/messages", {"content": "again"}).status_code == 200


def test_the_import_still_needs_its_csrf_token(alice, app):
    # The view checks the token itself (after raising the size limit): without one, 400.
    response = alice.client.post("/import", data={
        "file": (io.BytesIO(json.dumps(export(chat())).encode()), "x.json")},
        content_type="multipart/form-data")
    assert response.status_code == 400
    assert rows(app, Conversation) == []


def test_under_gunicorn_a_multi_megabyte_export_imports_and_a_larger_one_gets_413(tmp_path):
    """The issue's case through the shipped server (gunicorn, gevent): an export of 2.5 MB,
    over the 1 MB request limit, imports; one over MAX_IMPORT_BYTES gets 413 with words."""
    server = AppServer(tmp_path, {"FLASK_PROVIDERS": "equing",
                                  "FLASK_MAX_IMPORT_BYTES": "3000000"}).start()
    try:
        server.flask("users", "create", "alice", "--password", "correct horse")
        client = WebClient(server.base).login("alice", "correct horse")
        text = "Some words of an answer. " * 40
        conversations = [chat(title=f"Chat {n}", messages=[
            {"role": "user", "content": text}, {"role": "assistant", "content": text}])
            for n in range(1000)]
        body = json.dumps(export(*conversations)).encode()
        assert 2_000_000 < len(body) < 3_000_000

        def upload(data: bytes):
            return client.session.post(
                server.base + "/import", files={"file": ("conversations.json", data)},
                data={"csrf_token": client.token}, allow_redirects=False, timeout=120)

        response = upload(body)
        assert response.status_code == 303, response.text[:2000]
        data = client.session.get(server.base + "/export.json", timeout=60).json()
        assert len(data["conversations"]) == 1000
        too_big = json.dumps(export(*conversations, *conversations[:500])).encode()
        assert len(too_big) > 3_000_000
        response = upload(too_big)
        assert response.status_code == 413
        assert "larger than the import limit of 3.0 MB" in response.text
    finally:
        server.stop()


def test_a_wrong_import_limit_stops_the_app_with_words(tmp_path, monkeypatch):
    monkeypatch.setenv("FLASK_INSTANCE_PATH", str(tmp_path / "instance"))
    with pytest.raises(ValueError, match="MAX_IMPORT_BYTES must be a whole number"):
        create_app({"TESTING": True, "SECRET_KEY": "x", "MAX_IMPORT_BYTES": "8 MB",
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}"})


# -- 14.3 in these files: NUL in a rename and in a share link ----------------------------

@pytest.mark.parametrize("htmx", [False, True])
def test_a_title_with_nul_is_a_400_and_not_stored(alice, app, htmx):
    conversation_id, message_id = start_chat(alice, "hello")
    read_stream(alice, message_id)
    response = alice.post(f"/c/{conversation_id}/rename", {"title": "a\x00b"}, htmx=htmx)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)
    assert rows(app, Conversation, id=conversation_id)[0].title == "hello"


@pytest.mark.parametrize("token", ["%00", "abc%00def", "%ED%A0%80", "x" * 65, "a.b"])
def test_a_share_link_that_cannot_be_a_token_is_a_404(app, make_user, token):
    make_user("alice")  # an installed site (a fresh one sends every page to its set-up)
    assert app.test_client().get(f"/s/{token}").status_code == 404


# -- any damage to an export: never a 500, and all or nothing ----------------------------

HOSTILE = [None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**400, 1e308, -0.0, 0.5, "",
           " ", "\x00", "a\x00", "\ud800", "\udfff x", "x" * 300_000, "\r\n", "<script>",
           "2026-13-45T99:99:99", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00",
           [], [None], [[[[]]]], {}, {"role": "user"}, {"a": {"b": {"c": []}}}]


def _paths(node, path=()):
    """Every place in a JSON document, as a path of keys and indexes."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _damaged(document, rng):
    """``document`` with one place replaced by a hostile value, or one key removed."""
    document = copy.deepcopy(document)
    path = rng.choice([p for p in _paths(document) if p])
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and rng.random() < 0.15:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(HOSTILE)
    return document


def as_tree(document: dict) -> dict:
    """A version 1 ``document`` as version 2: each message with a local id, following the one
    before it, and a second version of each conversation's last message."""
    document = copy.deepcopy(document)
    document["version"] = 2
    for conversation in document["conversations"]:
        messages = conversation["messages"]
        for number, message in enumerate(messages, 1):
            message.update(id=number, parent=number - 1 or None, selected=True)
        messages.append({**messages[-1], "id": len(messages) + 1, "selected": False})
    return document


@pytest.mark.parametrize("version", [1, 2])
def test_no_damaged_export_gives_a_500_and_a_refusal_stores_nothing(alice, app, version):
    rng = random.Random(14)
    base = export(chat(title="One", settings=GOOD_SETTINGS),
                  chat(title="Two", pinned=True, created_at="2026-01-02T03:04:05"))
    base = base if version == 1 else as_tree(base)
    statuses = set()
    for _ in range(150):
        before = len(rows(app, Conversation))
        body = json.dumps(_damaged(base, rng), ensure_ascii=True).encode()
        response = post_import(alice, body)
        statuses.add(response.status_code)
        assert response.status_code in (303, 400, 413, 422), response.get_data(as_text=True)
        after = len(rows(app, Conversation))
        assert after == before + (2 if response.status_code == 303 else 0)
    # The damage reached every kind of answer: stored, unreadable text, refused values.
    assert {303, 400, 422} <= statuses


def test_no_damaged_snapshot_gives_a_500_when_shown_or_copied(alice, bob, app):
    rng = random.Random(5)
    _, link = shared(alice, app, {"temperature": 0.5, "system_prompt": "Be brief."})
    with app.app_context():
        good = copy.deepcopy(db.session.scalar(db.select(Share)).snapshot)
    bob.refresh_token()
    for _ in range(60):
        with app.app_context():
            share = db.session.scalar(db.select(Share))
            share.snapshot = _damaged(good, rng)
            db.session.commit()
        assert bob.get(link).status_code in (200, 400, 422)
        before = len(rows(app, Conversation))
        response = bob.post(link + "/copy", htmx=False)
        assert response.status_code in (303, 400, 422), response.get_data(as_text=True)
        copied = response.status_code == 303
        assert len(rows(app, Conversation)) == before + copied
        if copied:  # the copy is a conversation that works
            copy_id = int(response.headers["Location"].rsplit("/", 1)[1])
            assert bob.get(f"/c/{copy_id}").status_code == 200
