"""Issue 17.10: shares, exports, imports, search and copy-data know that a conversation is a
tree. The trees are grown through the real routes (new chat, message, regenerate, edit,
choose) with the scripted provider, each answer read to its end."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import create_engine, select

from tests.helpers import read_stream, rows, send, share, start_chat
from webapp import tree
from webapp.copy import copy_database
from webapp.extensions import db
from webapp.models import Conversation, Message

# -- helpers --------------------------------------------------------------------------------

#: The texts of the tree ``grow`` makes. The first question also becomes the title, so tests
#: look for texts inside the messages' section only.
Q1, A1, A2, Q2, A3, Q1_EDITED, A4 = (
    "alpha question", "quokka answer", "bravo answer", "zephyr follow-up", "charlie answer",
    "alpha question edited", "delta answer")


def answer(alice, scripted, words: str, post) -> int:
    """Have the scripted provider answer ``words``, make the request ``post`` (which starts an
    answer), read that answer to its end and return its id."""
    scripted.tokens = [words]
    before = alice_answers(alice)
    post()
    (new,) = alice_answers(alice) - before
    read_stream(alice, new)
    return new


def alice_answers(alice) -> set[int]:
    app = alice.client.application
    with app.app_context():
        return set(db.session.scalars(select(Message.id).where(Message.role == "assistant")))


def ok(response, status=303):
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response


def grow(alice, scripted) -> tuple[int, dict[str, int]]:
    """A conversation of two branches; returns its id and each text's message id.

        Q1 ─┬─ A1                        (a version of A2, not shown)
            └─ A2 ── Q2 ── A3            (the branch left when Q1 was edited)
        Q1_EDITED ── A4                  (shown: the current path)
    """
    ids = {}
    scripted.tokens = [A1]
    conversation_id, ids[A1] = start_chat(alice, Q1)
    read_stream(alice, ids[A1])
    ids[A2] = answer(alice, scripted, A2,
                     lambda: ok(alice.post(f"/m/{ids[A1]}/regenerate", htmx=False)))
    ids[A3] = answer(alice, scripted, A3, lambda: send(alice, conversation_id, Q2))
    by_text = {m.content: m.id for m in rows(alice.client.application, Message,
                                              conversation_id=conversation_id)}
    ids[Q1], ids[Q2] = by_text[Q1], by_text[Q2]
    ids[A4] = answer(alice, scripted, A4, lambda: ok(alice.post(
        f"/m/{ids[Q1]}/edit", {"content": Q1_EDITED}, htmx=False)))
    ids[Q1_EDITED] = {m.content: m.id for m in rows(alice.client.application, Message,
                                                    conversation_id=conversation_id)}[Q1_EDITED]
    return conversation_id, ids


def shown(html: str) -> str:
    """The messages' section of a conversation's or a share's page."""
    match = re.search(r'<section[^>]*class="messages"[^>]*>(.*?)</section>', html, re.S)
    assert match, html[:2000]
    return match.group(1)


def path_texts(app, conversation_id: int) -> list[str]:
    with app.app_context():
        return [m.content for m in tree.path_messages(conversation_id)[0]]


def shape(app, conversation_id: int) -> list[tuple[str, str, int | None, bool]]:
    """A conversation's tree, independent of its ids: each message (by id) as its role, text,
    its parent's position in that order, and whether it is the version shown."""
    messages = rows(app, Message, conversation_id=conversation_id)
    position = {m.id: n for n, m in enumerate(messages)}
    return [(m.role, m.content, position.get(m.parent_id), m.selected) for m in messages]


def post_import(client, document) -> object:
    body = json.dumps(document).encode()
    return client.client.post("/import", data={
        "file": (io.BytesIO(body), "conversations.json"), "csrf_token": client.token},
        content_type="multipart/form-data")


def only_conversation_besides(app, known: set[int]) -> int:
    (new,) = {c.id for c in rows(app, Conversation)} - known
    return new


# -- shares ---------------------------------------------------------------------------------

def test_a_share_shows_the_path_shown_when_it_was_shared(alice, bob, app, scripted):
    conversation_id, ids = grow(alice, scripted)
    link = share(alice, conversation_id)
    reader = app.test_client()
    page = shown(reader.get(link).get_data(as_text=True))
    assert Q1_EDITED in page and A4 in page
    for other in (A1, A2, Q2, A3):
        assert other not in page

    # Another version chosen: the link keeps its snapshot until it is shared again, which
    # then shows the new path and none of the old branch.
    ok(alice.post(f"/m/{ids[A3]}/choose", htmx=False))
    assert A4 in shown(reader.get(link).get_data(as_text=True))
    assert share(alice, conversation_id) == link
    page = shown(reader.get(link).get_data(as_text=True))
    for text in (Q1, A2, Q2, A3):
        assert text in page
    for other in (A1, Q1_EDITED, A4):
        assert other not in page

    # Bob's copy is one branch, each message following the one before, and he carries on
    # from its end: the provider gets the whole shown path as history.
    copy_id = int(ok(bob.post(link + "/copy", htmx=False)).headers["Location"].rsplit("/")[-1])
    assert shape(app, copy_id) == [("user", Q1, None, True), ("assistant", A2, 0, True),
                                   ("user", Q2, 1, True), ("assistant", A3, 2, True)]
    bob.refresh_token(f"/c/{copy_id}")
    scripted.tokens = ["echo answer"]
    read_stream(bob, send(bob, copy_id, "and then?"))
    history = [m["content"] for m in scripted.calls[-1]["messages"] if m["role"] != "system"]
    assert history == [Q1, A2, Q2, A3, "and then?"]


# -- exports and imports ----------------------------------------------------------------------

def test_the_json_export_imports_back_as_the_same_tree(alice, app, scripted):
    conversation_id, ids = grow(alice, scripted)
    ok(alice.post(f"/m/{ids[A1]}/choose", htmx=False))  # shown: Q1, A1; below A2 stays Q2, A3
    exported = json.loads(alice.get(f"/c/{conversation_id}/export.json").get_data())
    assert exported["version"] == 2
    messages = exported["conversations"][0]["messages"]
    assert [(m["id"], m["parent"], m["selected"], m["content"]) for m in messages] == [
        (1, None, True, Q1), (2, 1, True, A1), (3, 1, False, A2), (4, 3, True, Q2),
        (5, 4, True, A3), (6, None, False, Q1_EDITED), (7, 6, True, A4)]

    ok(post_import(alice, exported))
    copy_id = only_conversation_besides(app, {conversation_id})
    assert shape(app, copy_id) == shape(app, conversation_id)
    assert path_texts(app, copy_id) == path_texts(app, conversation_id) == [Q1, A1]
    again = json.loads(alice.get(f"/c/{copy_id}/export.json").get_data())

    def without_times(document):
        return [{k: v for k, v in m.items() if not k.endswith("_at")}
                for m in document["conversations"][0]["messages"]]
    assert without_times(again) == without_times(exported)

    # The imported tree works like the original: another version shown from its page...
    (imported_a3,) = [m.id for m in rows(app, Message, conversation_id=copy_id)
                      if m.content == A3]
    ok(alice.post(f"/m/{imported_a3}/choose", htmx=False))
    page = shown(alice.get(f"/c/{copy_id}").get_data(as_text=True))
    assert A3 in page and Q2 in page and A1 not in page
    # ...and a new message follows it, with that path as its history.
    scripted.tokens = ["fine"]
    read_stream(alice, send(alice, copy_id, "go on"))
    history = [m["content"] for m in scripted.calls[-1]["messages"] if m["role"] != "system"]
    assert history == [Q1, A2, Q2, A3, "go on"]


def test_the_markdown_export_has_the_shown_path_only(alice, app, scripted):
    conversation_id, _ = grow(alice, scripted)
    text = alice.get(f"/c/{conversation_id}/export.md").get_data(as_text=True)
    body = text.split("\n", 1)[1]  # after the title, which is the first question
    assert f"## You\n\n{Q1_EDITED}" in body and A4 in body
    for other in (A1, A2, Q2, A3):
        assert other not in body
    assert body.count("## You") == 1 and body.count("## Assistant") == 1


def test_an_export_of_version_1_imports_as_one_branch(alice, app, scripted):
    old = {"format": "equing-chat", "version": 1, "conversations": [{
        "title": "Before trees", "pinned": False, "settings": None,
        "messages": [
            {"role": "user", "content": "first", "status": "complete"},
            {"role": "assistant", "content": "one", "status": "complete",
             "provider": "scripted", "model": "script-1"},
            {"role": "user", "content": "second", "status": "complete"},
            {"role": "assistant", "content": "two", "status": "complete",
             "provider": "scripted", "model": "script-1"}]}]}
    ok(post_import(alice, old))
    (conversation,) = rows(app, Conversation)
    assert shape(app, conversation.id) == [
        ("user", "first", None, True), ("assistant", "one", 0, True),
        ("user", "second", 1, True), ("assistant", "two", 2, True)]
    page = shown(alice.get(f"/c/{conversation.id}").get_data(as_text=True))
    assert all(text in page for text in ("first", "one", "second", "two"))
    scripted.tokens = ["three"]
    read_stream(alice, send(alice, conversation.id, "third"))
    history = [m["content"] for m in scripted.calls[-1]["messages"] if m["role"] != "system"]
    assert history == ["first", "one", "second", "two", "third"]


def tree_export(*messages) -> dict:
    return {"format": "equing-chat", "version": 2, "conversations": [
        {"title": "Fine", "messages": [{"id": 1, "parent": None, "role": "user",
                                        "content": "hi"}]},
        {"title": "Damaged", "messages": list(messages)}]}


def message(local_id, parent, role="user", **extra) -> dict:
    return {"id": local_id, "parent": parent, "role": role, "content": f"text {local_id}",
            **extra}


@pytest.mark.parametrize("messages, words", [
    ([message(1, None), message(2, 9, "assistant")],
     "conversation 2 (“Damaged”): message 2: “parent” 9 is not the id of a message before it"),
    ([message(1, None), message(2, 3, "assistant"), message(3, 1)],
     "message 2: “parent” 3 is not the id of a message before it"),
    ([message(1, 1)], "message 1: “parent” 1 (its own id) is not the id of a message"),
    ([message(1, None), message(1, 1, "assistant")],
     "message 2: “id” 1 is already the id of message 1"),
    ([message("1", None)], "message 1: “id” must be a whole number, not text"),
    ([message(1, None), message(2, True, "assistant")],
     "message 2: “parent” must be the id of an earlier message, or null for a first message, "
     "not true or false"),
    ([message(1, None, selected="yes")], "message 1: “selected” must be true or false"),
])
def test_a_tree_that_cannot_be_is_refused_in_words(alice, app, messages, words):
    response = post_import(alice, tree_export(*messages))
    text = response.get_data(as_text=True)
    assert response.status_code == 422, text[:2000]
    assert "Nothing was imported" in text and words in text, text[:3000]
    assert rows(app, Conversation) == [] and rows(app, Message) == []


def test_versions_marked_in_an_import_are_kept_as_the_app_keeps_them(alice, app):
    # Two versions both marked (a file written by hand): the newer shows, as on a page, and
    # the import stores one mark per set of versions. No mark at all: the newest shows.
    document = {"format": "equing-chat", "version": 2, "conversations": [{"messages": [
        message(10, None), message(20, 10, "assistant", selected=True),
        message(30, 10, "assistant", selected=True), message(40, 30, selected=False),
        message(50, 40, "assistant", selected=False),
        message(60, 40, "assistant", selected=False)]}]}
    ok(post_import(alice, document))
    (conversation,) = rows(app, Conversation)
    assert [selected for *_, selected in shape(app, conversation.id)] == [
        True, False, True, True, False, True]
    assert path_texts(app, conversation.id) == ["text 10", "text 30", "text 40", "text 60"]


# -- search -----------------------------------------------------------------------------------

@pytest.mark.parametrize("word, text", [("zephyr", Q2), ("quokka", A1)])
def test_search_finds_a_version_not_shown_and_its_link_shows_it(alice, app, scripted, word,
                                                                  text):
    conversation_id, ids = grow(alice, scripted)
    assert text not in shown(alice.get(f"/c/{conversation_id}").get_data(as_text=True))
    for htmx in (False, True):
        html = alice.get("/search", query_string={"q": word},
                         headers={"HX-Request": "true"} if htmx else {}).get_data(as_text=True)
        link = f"/c/{conversation_id}?show={ids[text]}#m-{ids[text]}"
        assert f'href="{link}"' in html and f"<mark>{word}</mark>" in html
    page = alice.get(link.split("#")[0]).get_data(as_text=True)
    assert text in shown(page) and f'id="m-{ids[text]}"' in page
    # Opening it changes nothing kept (a GET): the conversation's own page is as it was.
    assert text not in path_texts(app, conversation_id)
    assert text not in shown(alice.get(f"/c/{conversation_id}").get_data(as_text=True))


def test_a_title_hit_links_to_the_conversation(alice, app, scripted):
    conversation_id, _ = grow(alice, scripted)
    ok(alice.post(f"/c/{conversation_id}/rename", {"title": "Xylophone notes"}, htmx=False))
    html = alice.get("/search?q=xylophone").get_data(as_text=True)
    assert f'href="/c/{conversation_id}"' in html


# -- copy-data --------------------------------------------------------------------------------

def test_copy_data_copies_the_tree(alice, app, scripted, postgres_url):
    conversation_id, ids = grow(alice, scripted)
    ok(alice.post(f"/m/{ids[A1]}/choose", htmx=False))
    with app.app_context():
        copy_database(app, postgres_url)
    columns = (Message.id, Message.parent_id, Message.selected, Message.content)
    with app.app_context():
        source = db.session.execute(select(*columns).order_by(Message.id)).all()
    target = create_engine(postgres_url)
    with target.connect() as conn:
        copied = conn.execute(select(*columns).order_by(Message.id)).all()
    target.dispose()
    assert copied == source and len(source) == 7
    assert {(parent is None, selected) for _, parent, selected, _ in source} == {
        (True, True), (True, False), (False, True), (False, False)}


def test_an_import_never_takes_the_id_of_a_deleted_message(alice, app, scripted):
    # The import gives its messages ids itself (so parents are known in one insert): they
    # must come after every id ever used, as the database's own would.
    conversation_id, ids = grow(alice, scripted)
    exported = json.loads(alice.get(f"/c/{conversation_id}/export.json").get_data())
    ok(alice.post(f"/c/{conversation_id}/delete", htmx=False))
    ok(post_import(alice, exported))
    imported = [m.id for m in rows(app, Message)]
    assert len(imported) == 7 and min(imported) > max(ids.values())
    # And the database's own ids then come after the import's.
    copy_id = only_conversation_besides(app, set())
    scripted.tokens = ["after"]
    new = send(alice, copy_id, "after the import")
    read_stream(alice, new)
    assert new > max(imported)
