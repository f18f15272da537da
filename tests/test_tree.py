"""Conversations as trees, through the routes: Regenerate, Edit, Continue, the versions shown
and kept on the server, and what the provider is sent along a branch."""

from __future__ import annotations

import re

from helpers import ANSWER, read_stream, rows, send, start_chat

from webapp.extensions import db
from webapp.models import Message

VERSION = re.compile(r'<span class="version-count"[^>]*>(\d+) / (\d+)</span>')


def page_of(client, conversation_id):
    return client.get(f"/c/{conversation_id}").get_data(as_text=True)


def sent(scripted, call=-1):
    """The (role, content) pairs the provider was sent in one call."""
    return [(m["role"], m["content"]) for m in scripted.calls[call]["messages"]]


def chat_of_three(alice, scripted):
    """A conversation of three turns; its id and the ids of its messages in order."""
    scripted.tokens = ["one"]
    conversation_id, first = start_chat(alice, "first question")
    read_stream(alice, first)
    for word in ("two", "three"):
        scripted.tokens = [word]
        read_stream(alice, send(alice, conversation_id, f"question {word}"))
    ids = [m.id for m in rows(alice.client.application, Message, conversation_id=conversation_id)]
    return conversation_id, ids


def test_regenerate_makes_a_new_version_kept_on_the_server(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    last_answer = ids[-1]
    scripted.tokens = ["THREE again"]
    response = alice.post(f"/m/{last_answer}/regenerate", {})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    new_id = max(int(i) for i in re.findall(r'id="m-(\d+)"', html))
    assert new_id > last_answer and VERSION.findall(html) == [("2", "2")]
    read_stream(alice, new_id)
    # The provider was sent the same history as the first version.
    assert sent(scripted) == sent(scripted, -2)
    page = page_of(alice, conversation_id)
    assert "THREE again" in page and ">three<" not in page
    assert VERSION.findall(page) == [("2", "2")]
    assert 'aria-label="Previous version"' in page
    # Back to the first version: the server keeps the choice for the next reload.
    assert alice.post(f"/m/{last_answer}/choose", {}).status_code == 200
    page = page_of(alice, conversation_id)
    assert ">three<" in page and "THREE again" not in page
    assert VERSION.findall(page) == [("1", "2")]
    chosen = {m.id: m.selected for m in rows(alice.client.application, Message,
                                             conversation_id=conversation_id)}
    assert chosen[last_answer] and not chosen[new_id]


def test_an_edit_branches_and_the_provider_gets_only_that_branch(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    second_question = ids[2]
    scripted.tokens = ["edited answer"]
    response = alice.post(f"/m/{second_question}/edit", {"content": "question TWO, better"})
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = max(int(i) for i in re.findall(r'id="m-(\d+)"', response.get_data(as_text=True)))
    read_stream(alice, answer)
    assert sent(scripted) == [("user", "first question"), ("assistant", "one"),
                              ("user", "question TWO, better")]
    page = page_of(alice, conversation_id)
    assert "question TWO, better" in page and "edited answer" in page
    assert "question three" not in page  # the later turns stay on the old branch
    assert VERSION.findall(page) == [("2", "2")]
    # A new message follows the edited branch.
    scripted.tokens = ["four"]
    read_stream(alice, send(alice, conversation_id, "go on"))
    assert [c for _, c in sent(scripted)] == ["first question", "one", "question TWO, better",
                                             "edited answer", "go on"]
    # The old branch is one choice away, with its later turns as they were.
    alice.post(f"/m/{second_question}/choose", {})
    page = page_of(alice, conversation_id)
    assert "question three" in page and ">three<" in page and "go on" not in page
    scripted.tokens = ["five"]
    read_stream(alice, send(alice, conversation_id, "back here"))
    assert [c for _, c in sent(scripted)] == ["first question", "one", "question two", "two",
                                             "question three", "three", "back here"]


def test_continue_adds_to_the_same_answer(alice, scripted):
    scripted.tokens = ["The start", " of it"]
    scripted.finish_reason = "length"
    conversation_id, answer = start_chat(alice, "Tell me a long story")
    read_stream(alice, answer)
    assert f'action="/m/{answer}/continue"' in page_of(alice, conversation_id)
    scripted.tokens = [" and the rest."]
    scripted.finish_reason = "stop"
    response = alice.post(f"/m/{answer}/continue", {})
    assert response.status_code == 200, response.get_data(as_text=True)
    read_stream(alice, answer)
    # The provider was asked to go on from the text so far.
    assert sent(scripted)[-1] == ("assistant", "The start of it")
    (row,) = [m for m in rows(alice.client.application, Message, conversation_id=conversation_id)
              if m.role == "assistant"]
    assert row.id == answer and row.content == "The start of it and the rest."
    assert row.status == "complete" and row.token_count == 3
    page = page_of(alice, conversation_id)
    assert f'action="/m/{answer}/continue"' not in page
    # A complete answer cannot be continued.
    assert alice.post(f"/m/{answer}/continue", {}).status_code == 409


def test_only_the_last_answer_is_retried_or_continued(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    with alice.client.application.app_context():
        db.session.execute(Message.__table__.update().where(Message.id == ids[1])
                           .values(status="stopped"))
        db.session.commit()
    assert alice.post(f"/m/{ids[1]}/retry", {}).status_code == 409
    assert alice.post(f"/m/{ids[1]}/continue", {}).status_code == 409
    page = page_of(alice, conversation_id)
    assert f'action="/m/{ids[1]}/retry"' not in page


def test_without_javascript_each_control_is_a_form(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    response = alice.post(f"/m/{ids[-1]}/regenerate", {}, htmx=False)
    assert response.status_code == 303
    response = alice.get(f"/c/{conversation_id}?edit={ids[2]}")
    html = response.get_data(as_text=True)
    assert f'action="/m/{ids[2]}/edit"' in html and "Save and send" in html
    response = alice.post(f"/m/{ids[2]}/edit", {"content": "plain edit"}, htmx=False)
    assert response.status_code == 303 and f"/c/{conversation_id}#m-" in response.location
    response = alice.post(f"/m/{ids[2]}/choose", {}, htmx=False)
    assert response.status_code == 303
    assert "question three" in page_of(alice, conversation_id)


def test_a_refused_edit_keeps_the_text(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    response = alice.post(f"/m/{ids[2]}/edit", {"content": "   "}, htmx=False)
    assert response.status_code == 422
    assert "Type a message first." in response.get_data(as_text=True)
    response = alice.post(f"/m/{ids[1]}/edit", {"content": "an answer is not mine"})
    assert response.status_code == 409


def test_versions_belong_to_their_owner(alice, bob, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    for action in ("regenerate", "choose", "continue", "retry", "edit"):
        assert bob.post(f"/m/{ids[-1]}/{action}", {"content": "x"}).status_code == 404
    assert bob.get(f"/m/{ids[0]}/edit").status_code == 404
    assert bob.get(f"/c/{conversation_id}?show={ids[0]}").status_code == 404


def test_show_opens_the_version_holding_a_message(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    scripted.tokens = ["another three"]
    response = alice.post(f"/m/{ids[-1]}/regenerate", {})
    new_id = max(int(i) for i in re.findall(r'id="m-(\d+)"', response.get_data(as_text=True)))
    read_stream(alice, new_id)
    page = alice.get(f"/c/{conversation_id}?show={ids[-1]}").get_data(as_text=True)
    assert ">three<" in page and "another three" not in page
    assert "another three" in page_of(alice, conversation_id)  # a GET changes nothing
    # A message sent from that page follows the version it shows, which is then kept.
    shown = re.search(r'name="shown" id="composer-shown" value="(\d+)"', page)[1]
    assert int(shown) == ids[-1]
    scripted.tokens = ["four"]
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "more", "shown": shown})
    read_stream(alice, int(ANSWER.findall(response.get_data(as_text=True))[-1]))
    assert [c for _, c in sent(scripted)][-3:] == ["question three", "three", "more"]
    page = page_of(alice, conversation_id)
    assert ">three<" in page and "another three" not in page and "more" in page


def test_a_stale_page_sends_after_what_was_added_since(alice, scripted):
    conversation_id, ids = chat_of_three(alice, scripted)
    scripted.tokens = ["four"]
    # The page still says the third answer is its last, but a fourth turn came since.
    response = alice.post(f"/c/{conversation_id}/messages", {"content": "late", "shown": ids[1]})
    read_stream(alice, int(ANSWER.findall(response.get_data(as_text=True))[-1]))
    assert [c for _, c in sent(scripted)][-3:] == ["question three", "three", "late"]
