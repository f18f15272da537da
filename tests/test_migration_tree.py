"""Migration 0009 turns each flat conversation (a list ordered by id) into one branch of a tree,
on SQLite and PostgreSQL: the old conversations read, continue and search as before, and the
migration goes down to 0008 and up again."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from tests.helpers import Browserless, read_stream
from tests.peers.database import postgres_schema
from webapp import create_app
from webapp.auth.accounts import create_user
from webapp.extensions import app_state, db
from webapp.streaming import SHUTTING_DOWN, stops

WHEN = datetime(2026, 1, 1, 12, 0, 0)

#: Two conversations written the old way, their messages interleaved by id as two people's
#: tabs would leave them; the okapi one ends with an answer that failed part way.
CONVERSATIONS = {101: "Zebras", 102: "Okapis"}
OLD = [  # id, conversation, role, content, status, error
    (201, 101, "user", "Tell me about zebras", "complete", None),
    (202, 102, "user", "What is an okapi?", "complete", None),
    (203, 101, "assistant", "Zebras have stripes.", "complete", None),
    (204, 102, "assistant", "A shy forest giraffe.", "complete", None),
    (205, 101, "user", "And their foals?", "complete", None),
    (206, 102, "user", "Where do okapis live?", "complete", None),
    (207, 101, "assistant", "Foals are born brownish.", "complete", None),
    (208, 102, "assistant", "In the Ituri", "error", "upstream exploded"),
]


def by_conversation(conversation_id):
    return [row for row in OLD if row[1] == conversation_id]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database of each kind (the PostgreSQL one a fresh schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture()
def old_app(tmp_path, monkeypatch, scripted, database_url):
    """The app on a database at 0008 holding ``OLD`` as it was stored before trees, and alice."""
    monkeypatch.setenv("FLASK_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "PROVIDERS": "equing",
                      "SQLALCHEMY_DATABASE_URI": database_url, "RATELIMIT_ENABLED": False,
                      "RATELIMIT_STORAGE_URI": "memory://", "STREAM_KEEPALIVE_SECONDS": 0.2,
                      "STREAM_SAVE_SECONDS": 0.2})
    app_state(app).providers.register(scripted)
    app_state(app).providers.default = scripted.name
    with app.app_context():
        upgrade(revision="0008")
        user_id = create_user("alice", "correct horse", is_admin=True).id
        insert_old_rows(user_id)
    yield app
    stops.cancel_all(SHUTTING_DOWN)
    assert stops.wait_idle(10)
    with app.app_context():
        db.engine.dispose()


def insert_old_rows(user_id):
    """``CONVERSATIONS`` and ``OLD`` inserted with the columns 0008 has."""
    connection = db.session.connection()
    for conversation_id, title in CONVERSATIONS.items():
        connection.execute(text(
            "INSERT INTO conversations (id, user_id, title, pinned, created_at, updated_at) "
            "VALUES (:id, :user, :title, :no, :when, :when)"),
            {"id": conversation_id, "user": user_id, "title": title, "no": False, "when": WHEN})
    for message_id, conversation_id, role, content, status, error in OLD:
        answer = role == "assistant"
        connection.execute(text(
            "INSERT INTO messages (id, conversation_id, role, content, status, error, provider,"
            " model, stop_requested, token_count, history_skipped, created_at, updated_at) "
            "VALUES (:id, :c, :role, :content, :status, :error, :provider, :model, :no, 0, 0,"
            " :when, :when)"),
            {"id": message_id, "c": conversation_id, "role": role, "content": content,
             "status": status, "error": error, "provider": "scripted" if answer else None,
             "model": "script-1" if answer else None, "no": False, "when": WHEN})
    if connection.dialect.name == "postgresql":
        # Rows inserted with their ids leave the sequences behind: move them on, as the rows
        # the app made itself would have.
        for table in ("conversations", "messages"):
            sql = (f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                   f"(SELECT max(id) FROM {table}))")  # two constant table names
            connection.execute(text(sql))
    db.session.commit()


def tree_rows(app):
    """{message id: (conversation, parent, selected)} as the database has them."""
    with app.app_context():
        found = db.session.execute(text(
            "SELECT id, conversation_id, parent_id, selected FROM messages ORDER BY id")).all()
        return {row[0]: (row[1], row[2], bool(row[3])) for row in found}


def shown_ids(client, conversation_id):
    """The ids of the messages a conversation's page shows, in order."""
    page = client.get(f"/c/{conversation_id}").get_data(as_text=True)
    return [int(found) for found in re.findall(r'<article class="msg [^"]*" id="m-(\d+)"', page)]


def searched(client, words):
    """The ids of the conversations a search finds."""
    page = client.get("/search", query_string={"q": words}).get_data(as_text=True)
    hits = re.search(r'<ul class="hits">(.*?)</ul>', page, re.S)
    links = re.findall(r'href="/c/(\d+)[?#"]', hits.group(1) if hits else "")
    return {int(found) for found in links}


def test_each_flat_conversation_becomes_one_branch(old_app):
    with old_app.app_context():
        upgrade()
    found = tree_rows(old_app)
    for conversation_id in CONVERSATIONS:
        ids = [row[0] for row in by_conversation(conversation_id)]
        # Each message follows the one before it in ITS conversation, not the id before it.
        assert [found[i] for i in ids] == [
            (conversation_id, parent, True) for parent in [None, *ids[:-1]]]
    with old_app.app_context():
        renamed = db.session.execute(text("SELECT title_renamed FROM conversations")).scalars()
        assert not any(renamed)


def test_old_conversations_show_continue_and_search_as_before(old_app, scripted):
    with old_app.app_context():
        upgrade()
    alice = Browserless(old_app.test_client(), "alice").login()
    for conversation_id in CONVERSATIONS:
        assert shown_ids(alice, conversation_id) == [
            row[0] for row in by_conversation(conversation_id)]
    page = alice.get("/c/102").get_data(as_text=True)
    assert "In the Ituri" in page and "upstream exploded" in page
    assert "version-count" not in page  # one version each: no Previous/Next

    # Search finds the old text (the SQLite index and its triggers came through).
    assert searched(alice, "stripes") == {101}
    assert searched(alice, "okapis") == {102}

    # A new message follows the last one: it is sent the whole old conversation.
    scripted.tokens = ["Quaggas ", "were ", "zebras ", "too."]
    response = alice.post("/c/101/messages", {"content": "Any extinct ones?"})
    assert response.status_code == 200, response.get_data(as_text=True)
    answer_id = int(re.findall(r'id="m-(\d+)"', response.get_data(as_text=True))[-1])
    read_stream(alice, answer_id)
    sent = [(m["role"], m["content"]) for m in scripted.calls[-1]["messages"]]
    assert sent == [(role, content) for _, _, role, content, _, _ in by_conversation(101)] + [
        ("user", "Any extinct ones?")]
    found = tree_rows(old_app)
    assert found[answer_id - 1] == (101, 207, True)
    assert found[answer_id] == (101, answer_id - 1, True)
    assert shown_ids(alice, 101) == [201, 203, 205, 207, answer_id - 1, answer_id]
    # The new answer is indexed once finished, like any before the migration.
    assert searched(alice, "quaggas") == {101}

    # After an error answer too: the failed text so far is part of the history, as before.
    scripted.tokens = ["Central ", "Africa."]
    response = alice.post("/c/102/messages", {"content": "Which country?"})
    answer_id = int(re.findall(r'id="m-(\d+)"', response.get_data(as_text=True))[-1])
    read_stream(alice, answer_id)
    sent = [(m["role"], m["content"]) for m in scripted.calls[-1]["messages"]]
    assert sent == [(role, content) for _, _, role, content, _, _ in by_conversation(102)] + [
        ("user", "Which country?")]
    assert tree_rows(old_app)[answer_id - 1] == (102, 208, True)


def test_down_to_0008_keeps_the_shown_path_and_up_again_rebuilds_it(old_app, scripted):
    with old_app.app_context():
        upgrade()
    alice = Browserless(old_app.test_client(), "alice").login()
    # Another version of the zebra conversation's second question: the old branch below
    # 205 (205 and its answer 207) is no longer shown.
    scripted.tokens = ["Foals ", "stay ", "close."]
    response = alice.post("/m/205/edit", {"content": "Do foals have stripes?"})
    assert response.status_code == 200, response.get_data(as_text=True)
    edited = shown_ids(alice, 101)
    assert edited[:2] == [201, 203] and len(edited) == 4 and edited[2] > 208
    read_stream(alice, edited[3])
    with old_app.app_context():
        downgrade(revision="0008")
        connection = db.session.connection()
        columns = {row[1] for row in connection.execute(text("PRAGMA table_info(messages)"))} \
            if connection.dialect.name == "sqlite" else set(connection.execute(text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'messages' AND table_schema = current_schema()")).scalars())
        assert "parent_id" not in columns and "selected" not in columns
        # Only the shown path is kept: a flat conversation, read by id, is that path.
        flat = connection.execute(text(
            "SELECT id FROM messages WHERE conversation_id = 101 ORDER BY id")).scalars().all()
        assert flat == edited
        db.session.commit()
        upgrade()
    alice = Browserless(old_app.test_client(), "alice").login()
    assert shown_ids(alice, 101) == edited
    assert shown_ids(alice, 102) == [row[0] for row in by_conversation(102)]
    found = tree_rows(old_app)
    assert [found[i][1] for i in edited] == [None, *edited[:-1]]
    # The search index followed: the kept versions are found, the removed one is not.
    assert searched(alice, "close") == {101}
    assert searched(alice, "brownish") == set()
    assert searched(alice, "stripes") == {101}
