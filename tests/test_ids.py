"""Ids people see are never handed out again after a delete (issue 13, point 10)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from tests.helpers import read_stream, rows, share, start_chat
from tests.peers.database import is_postgres
from webapp.extensions import db
from webapp.models import Conversation, Message, Share, User
from webapp.queries import people


def test_a_deleted_conversations_link_never_opens_a_newer_one(alice, app):
    old_id, old_answer = start_chat(alice, "first")
    read_stream(alice, old_answer)
    share(alice, old_id)
    (old_share,) = rows(app, Share)
    old_messages = [message.id for message in rows(app, Message)]
    response = alice.post(f"/c/{old_id}/delete", htmx=False)
    assert response.status_code == 303
    assert rows(app, Conversation) == [] and rows(app, Message) == []

    # Before the fix SQLite gave the newest row's id to the next row made: the old link
    # /c/<old_id> (and /m/<id>/stream, /shares/<id>/revoke) then led to the new conversation.
    new_id, new_answer = start_chat(alice, "second")
    read_stream(alice, new_answer)
    share(alice, new_id)
    assert new_id > old_id
    assert min(message.id for message in rows(app, Message)) > max(old_messages)
    assert rows(app, Share)[0].id > old_share.id
    assert alice.get(f"/c/{old_id}").status_code == 404
    assert alice.get(f"/c/{new_id}").status_code == 200


def test_no_table_with_visible_ids_reuses_one(app, make_user):
    make_user("alice")
    with app.app_context():
        alice = db.session.scalar(people.by_username("alice"))
        keep = Conversation(user_id=alice.id)
        db.session.add(keep)
        db.session.commit()
        makers = {
            "users": lambda n: User(username=f"temp{n}", password_hash="x"),
            "conversations": lambda n: Conversation(user_id=alice.id),
            "messages": lambda n: Message(conversation_id=keep.id, role="user", content="x"),
            "shares": lambda n: Share(token=f"token{n}", conversation_id=keep.id,
                                      user_id=alice.id, snapshot={}),
        }
        ids = {}
        for table, make in makers.items():
            first = make(1)
            db.session.add(first)
            db.session.commit()
            gone = first.id
            db.session.delete(first)  # the newest row: the id SQLite used to give again
            db.session.commit()
            second = make(2)
            db.session.add(second)
            db.session.commit()
            ids[table] = (gone, second.id)
        assert all(new > old for old, new in ids.values()), ids


def test_the_models_and_the_migrations_agree(app):
    with app.app_context(), db.engine.connect() as connection:
        # The full-text search objects are made by migration 0002 in raw SQL, not by models.
        context = MigrationContext.configure(connection, opts={
            "include_object": lambda obj, name, kind, reflected, compare_to:
                not str(name).startswith(("messages_fts", "ix_messages_content_fts"))})
        assert compare_metadata(context, db.metadata) == []
        if not is_postgres():
            for table in ("users", "conversations", "messages", "shares"):
                sql = connection.execute(text(
                    "SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}).scalar()
                assert "AUTOINCREMENT" in sql, table


@pytest.mark.skipif(is_postgres(), reason="PostgreSQL's sequences never reuse ids: 0006 is a "
                                          "no-op for them there")
def test_migration_0006_keeps_rows_and_the_search_index(app, make_user):
    make_user("alice")
    with app.app_context():
        downgrade(revision="0005")
        connection = db.session.connection()
        connection.execute(text(
            "INSERT INTO conversations (id, user_id, title, pinned, created_at, updated_at) "
            "VALUES (7, 1, 'kept', 0, '2026-01-01', '2026-01-01')"))
        connection.execute(text(
            "INSERT INTO messages (id, conversation_id, role, content, status, stop_requested,"
            " token_count, created_at, updated_at) VALUES (9, 7, 'user', 'zebra crossing',"
            " 'complete', 0, 0, '2026-01-01', '2026-01-01')"))
        db.session.commit()
        upgrade()
        assert "sign_in_failures" in inspect(db.engine).get_table_names()
        connection = db.session.connection()
        found = connection.execute(text(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'zebra'")).scalars().all()
        assert found == [9]
        triggers = connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
        )).scalars().all()
        assert len(triggers) == 5
        # The search index still follows the table: a new final message is found.
        connection.execute(text(
            "INSERT INTO messages (conversation_id, role, content, status, stop_requested,"
            " token_count, created_at, updated_at) VALUES (7, 'user', 'zebra again',"
            " 'complete', 0, 0, '2026-01-01', '2026-01-01')"))
        found = connection.execute(text(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'zebra'")).scalars().all()
        assert sorted(found) == [9, 10]
        db.session.commit()
        assert db.session.get(Conversation, 7).title == "kept"
