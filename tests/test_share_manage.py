"""Shared links, and managing conversations: rename, pin, delete, search, export, import."""

from __future__ import annotations

import io
import json

import pytest

from tests.helpers import read_stream, rows, send, share, shared_chat
from webapp.models import Conversation, Message, Share

# -- shared links ------------------------------------------------------------------------

def test_share_link_is_random_readonly_and_noindex(alice, app):
    conversation_id = shared_chat(alice)
    link = share(alice, conversation_id)
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 43  # 32 bytes of randomness, base64url
    anonymous = app.test_client()
    response = anonymous.get(link)
    assert response.status_code == 200
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    html = response.get_data(as_text=True)
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert "<strong>world</strong>" in html  # markdown rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert 'id="composer"' not in html and "textarea" not in html
    assert "Sign in</a> to continue" in html


def test_share_is_a_snapshot_until_updated(alice, app):
    conversation_id = shared_chat(alice)
    link = share(alice, conversation_id)
    read_stream(alice, send(alice, conversation_id, "A later secret"))
    reader = app.test_client()
    assert "A later secret" not in reader.get(link).get_data(as_text=True)
    assert share(alice, conversation_id) == link  # updating keeps the same link
    assert "A later secret" in reader.get(link).get_data(as_text=True)


def test_system_prompt_is_left_out_unless_chosen(alice, app):
    alice.post("/settings", {"provider": "scripted", "model": "script-1", "temperature": "0.5",
                             "top_p": "1", "presence_penalty": "0", "frequency_penalty": "0",
                             "max_tokens": "", "system_prompt": "Secret instructions"})
    conversation_id = shared_chat(alice)
    link = share(alice, conversation_id)
    reader = app.test_client()
    assert "Secret instructions" not in reader.get(link).get_data(as_text=True)
    share(alice, conversation_id, include_system_prompt="1")
    assert "Secret instructions" in reader.get(link).get_data(as_text=True)


def test_revoked_and_deleted_links_answer_404(alice, app):
    conversation_id = shared_chat(alice)
    link = share(alice, conversation_id)
    (row,) = rows(app, Share)
    listing = alice.get("/shares").get_data(as_text=True)
    assert link in listing
    assert alice.post(f"/shares/{row.id}/revoke", htmx=False).status_code == 303
    assert app.test_client().get(link).status_code == 404
    assert link not in alice.get("/shares").get_data(as_text=True)
    # Deleting the conversation deletes its link.
    link = share(alice, conversation_id)
    assert alice.post(f"/c/{conversation_id}/delete", htmx=False).status_code == 303
    assert app.test_client().get(link).status_code == 404
    assert rows(app, Share) == []


def test_operator_can_require_sign_in_for_shares(alice, app):
    link = share(alice, shared_chat(alice))
    app.config["SHARE_REQUIRES_LOGIN"] = True
    response = app.test_client().get(link)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert alice.get(link).status_code == 200


def test_reader_continues_a_shared_conversation_as_a_copy(alice, bob, app):
    conversation_id = shared_chat(alice)
    link = share(alice, conversation_id)
    page = bob.get(link).get_data(as_text=True)
    assert "Continue this conversation" in page
    response = bob.post(link + "/copy", htmx=False)
    assert response.status_code == 303
    copy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert copy_id != conversation_id
    (copy,) = rows(app, Conversation, id=copy_id)
    bob_id = copy.user_id
    assert rows(app, Conversation, id=conversation_id)[0].user_id != bob_id
    copied = rows(app, Message, conversation_id=copy_id)
    assert [m.content for m in copied] == ["Tell me about <script>alert(1)</script> tags",
                                           "Hello **world**!"]
    bob.refresh_token(f"/c/{copy_id}")
    assert bob.post(f"/c/{copy_id}/messages", {"content": "go on"}).status_code == 200


# -- managing conversations --------------------------------------------------------------

def test_rename_pin_and_delete_with_confirmation(alice, app):
    first = shared_chat(alice, "first chat")
    second = shared_chat(alice, "second chat")
    assert alice.post(f"/c/{first}/rename", {"title": "  Renamed <i>chat</i> "},
                      htmx=False).status_code == 303
    assert rows(app, Conversation, id=first)[0].title == "Renamed <i>chat</i>"
    alice.post(f"/c/{first}/rename", {"title": ""}, htmx=False)
    assert rows(app, Conversation, id=first)[0].title == "Renamed <i>chat</i>"
    page = alice.get("/").get_data(as_text=True)
    assert page.index("second chat") < page.index("Renamed &lt;i&gt;chat&lt;/i&gt;")
    alice.post(f"/c/{first}/pin", htmx=False)
    page = alice.get("/").get_data(as_text=True)
    assert page.index("Renamed &lt;i&gt;chat&lt;/i&gt;") < page.index("second chat")
    confirm = alice.get(f"/c/{second}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.get_data(as_text=True)
    assert rows(app, Conversation, id=second)  # GET never deletes
    alice.post(f"/c/{second}/delete", htmx=False)
    assert rows(app, Conversation, id=second) == []
    assert rows(app, Message, conversation_id=second) == []


def test_search_titles_and_content(alice, app):
    shared_chat(alice, "Recipes for dinner")
    other = shared_chat(alice, "Something about volcanoes erupting")
    html = alice.get("/search?q=volcano").get_data(as_text=True)
    assert f"/c/{other}" in html and "<mark>volcanoes</mark>" in html
    assert "Recipes" not in html
    titles = alice.get("/search?q=recipes", headers={"HX-Request": "true"}).get_data(
        as_text=True)
    assert "<mark>Recipes</mark> for dinner" in titles and "<html" not in titles
    # Words in answers are found too, and operators in the query are only words.
    assert "Recipes for dinner" in alice.get("/search?q=world").get_data(as_text=True)
    for query in ('"unbalanced', "AND OR NOT", "a*b:c", "NEAR(", "'; drop table"):
        assert alice.get("/search", query_string={"q": query}).status_code == 200
    assert "Nothing matches" in alice.get("/search?q=zzzzqqq").get_data(as_text=True)


def test_search_only_finds_ones_own(alice, bob, app):
    shared_chat(alice, "alice private volcano")
    bob.refresh_token()
    html = bob.get("/search?q=volcano").get_data(as_text=True)
    assert "alice private" not in html and "Nothing matches" in html


def test_export_markdown_and_json_round_trip(alice, app):
    conversation_id = shared_chat(alice, "Export me")
    md = alice.get(f"/c/{conversation_id}/export.md")
    assert md.mimetype == "text/markdown" and "attachment" in md.headers["Content-Disposition"]
    text = md.get_data(as_text=True)
    assert text.startswith("# Export me") and "## You\n\nExport me" in text
    assert "Hello **world**!" in text
    one = alice.get(f"/c/{conversation_id}/export.json")
    data = json.loads(one.get_data(as_text=True))
    assert data["format"] == "equing-chat" and len(data["conversations"]) == 1
    shared_chat(alice, "Another one")
    everything = json.loads(alice.get("/export.json").get_data(as_text=True))
    assert {c["title"] for c in everything["conversations"]} == {"Export me", "Another one"}

    before = len(rows(app, Conversation))
    response = alice.client.post("/import", data={
        "file": (io.BytesIO(json.dumps(everything).encode()), "conversations.json"),
        "csrf_token": alice.token}, content_type="multipart/form-data")
    assert response.status_code == 303
    assert len(rows(app, Conversation)) == before + 2
    again = json.loads(alice.get("/export.json").get_data(as_text=True))
    strip = [{k: v for k, v in c.items() if k not in ("created_at", "updated_at")}
             for c in again["conversations"]]
    for original in everything["conversations"]:
        original = {k: v for k, v in original.items() if k not in ("created_at", "updated_at")}
        assert strip.count(original) == 2  # the original and its imported twin


@pytest.mark.parametrize("payload, message", [
    (b"not json", "not JSON"),
    (b'{"format": "other"}', "not an Equing Chat export"),
    (b'{"format": "equing-chat", "version": 9}', "unknown export version"),
    (b'{"format": "equing-chat", "version": 1, "conversations": {}}', "must be a list"),
    (b'{"format": "equing-chat", "version": 1, "conversations": [{"title": "x"}]}',
     "needs a “messages” list"),
    (b'{"format": "equing-chat", "version": 1, "conversations": [{"messages": '
     b'[{"role": "system", "content": "x"}]}]}', "role of “user” or “assistant”"),
])
def test_bad_imports_change_nothing_and_say_why(alice, app, payload, message):
    response = alice.client.post("/import", data={
        "file": (io.BytesIO(payload), "x.json"), "csrf_token": alice.token},
        content_type="multipart/form-data")
    # A file that is not JSON cannot be read at all (400); one that is, but is not a valid
    # export, is refused as such (422).
    assert response.status_code == (400 if message == "not JSON" else 422)
    assert message in response.get_data(as_text=True)
    assert rows(app, Conversation) == []


def test_the_whole_export_holds_only_ones_own(alice, bob, app):
    """Another person's export of everything leaves this person's conversations out. (That
    one conversation's export answers them 404, as every route with an id does, is
    test_security.py's ownership meta-test.)"""
    shared_chat(alice)
    bob.refresh_token()
    assert "Tell me about" not in bob.get("/export.json").get_data(as_text=True)
