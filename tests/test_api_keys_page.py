"""The API keys page (issue 18 points 3 and 5) through Flask's test client: a key made and
shown once, listed, used against the API, revoked; refusals that lose nothing; another
person's key; the calls made with a key; conversations kept from the API marked as such.

In a browser, with Copy and the key used over HTTP: tests/test_api_keys_browser.py.
"""

from __future__ import annotations

import html
import json
import re

from tests.helpers import rows, start_chat
from tests.scripted import failing
from webapp.api.keys import SHOWN, digest
from webapp.models import ApiCall, ApiKey, Conversation

PAGE = "/settings/api-keys"
#: A key as the page shows it once, in its read-only field.
SHOWN_KEY = re.compile(r'id="new-key-value" value="(eqk-[A-Za-z0-9_-]{43})"')
#: A conversation's heading (on its page, or out of band with its sidebar item).
HEADING = re.compile(r'<h1 class="conv-title"[^>]*>(.*?)</h1>', re.S)


def make_key(client, name="laptop", htmx=False):
    """Make a key through the page's form; (response, the key shown or None)."""
    response = client.post(PAGE, {"name": name}, htmx=htmx)
    found = SHOWN_KEY.search(response.get_data(as_text=True))
    return response, found.group(1) if found else None


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def ask(client, key, content="Hi", **fields):
    """A chat-completions call to the scripted model with ``key``, read to its end (a stream
    left unread would end as the client leaving)."""
    body = {"model": "scripted/script-1", "messages": [{"role": "user", "content": content}],
            **fields}
    response = client.post("/v1/chat/completions", data=json.dumps(body),
                           content_type="application/json", headers=bearer(key))
    response.get_data()
    return response


def page_text(client) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_page_says_how_to_use_the_api(alice):
    page = page_text(alice)
    for words in ("http://localhost/v1", "http://localhost/api/openai/v1",
                  "Authorization: Bearer", "curl http://localhost/v1/chat/completions",
                  'OpenAI(base_url="http://localhost/v1"', "scripted/script-1",
                  "scripted/script-2", "GET http://localhost/v1/models"):
        assert words in page, words
    # The alias Equing clients send, and what it stands for here.
    assert re.search(r"<code>gpt-3\.5-turbo</code> stands for <code>scripted/script-1</code>",
                     page)
    assert 'model="gpt-3.5-turbo"' in page
    assert "Key name" in page and "Create key" in page and "You have no keys yet." in page
    # Reached from the settings page and the top bar of every page.
    assert f'href="{PAGE}"' in alice.get("/settings").get_data(as_text=True)
    assert f'href="{PAGE}"' in alice.get("/").get_data(as_text=True)


def test_a_key_is_shown_once_listed_and_works(app, alice):
    response, key = make_key(alice)
    assert response.status_code == 200 and key is not None
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    assert "it will not be shown again" in body and "readonly" in body
    (row,) = rows(app, ApiKey)
    assert row.name == "laptop" and row.digest == digest(key) and row.prefix == key[:SHOWN]
    # The key itself is stored nowhere; the page shows it no more.
    assert key not in json.dumps([str(v) for v in vars(row).values()])
    page = page_text(alice)
    assert key not in page and SHOWN_KEY.search(page) is None
    assert f"<code>{key[:SHOWN]}…</code>" in page
    assert re.search(r"<td>laptop</td>.*?<td>never</td>", page, re.S)
    assert alice.client.get("/v1/models", headers=bearer(key)).status_code == 200


def test_with_htmx_the_form_shows_the_key_and_the_list_follows_out_of_band(app, alice):
    response, key = make_key(alice, "editor plugin", htmx=True)
    assert response.status_code == 200 and key is not None
    body = response.get_data(as_text=True)
    assert "<html" not in body and "HX-Request" in response.headers["Vary"]
    assert response.headers["Cache-Control"] == "no-store"
    assert 'id="new-key"' in body and "autofocus" in body
    listing = body[body.index('id="api-key-list"'):]
    assert 'hx-swap-oob="outerHTML"' in listing and "<td>editor plugin</td>" in listing
    # The name field is empty again for the next key.
    assert 'name="name" value=""' in body


def test_a_bad_name_is_refused_with_its_reason_and_the_name_kept(app, alice):
    for htmx in (False, True):
        for name, reason in (("   ", "Give the key a name"),
                             ("n" * 101, "at most 100 characters")):
            response, key = make_key(alice, name, htmx=htmx)
            body = response.get_data(as_text=True)
            assert response.status_code == 422 and key is None
            assert reason in body and 'aria-invalid="true"' in body
            assert ("<html" in body) is not htmx
            if name.strip():
                assert f'value="{name}"' in body  # what was typed is still there
    assert rows(app, ApiKey) == []


def test_too_many_keys_is_refused_until_one_is_revoked(app, alice):
    app.config["API_KEYS_PER_USER"] = 2
    assert make_key(alice, "one")[1] and make_key(alice, "two")[1]
    for htmx in (False, True):
        response, key = make_key(alice, "three", htmx=htmx)
        body = html.unescape(response.get_data(as_text=True))
        assert response.status_code == 422 and key is None
        assert "You have 2 keys already" in body and 'value="three"' in body
    assert [k.name for k in rows(app, ApiKey)] == ["one", "two"]
    first = rows(app, ApiKey)[0]
    alice.post(f"{PAGE}/{first.id}/revoke", htmx=False)
    assert make_key(alice, "three")[1]


def test_revoking_refuses_the_key_at_once_and_twice_is_harmless(app, alice):
    _, key = make_key(alice)
    (row,) = rows(app, ApiKey)
    response = alice.post(f"{PAGE}/{row.id}/revoke", htmx=False)
    assert response.status_code == 303 and response.headers["Location"] == PAGE
    page = html.unescape(page_text(alice))
    assert "Key “laptop” revoked" in page
    assert re.search(r"<td>laptop</td>.*?revoked <time", page, re.S)
    assert f'{PAGE}/{row.id}/revoke' not in page  # no Revoke button any more
    refused = alice.client.get("/v1/models", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "invalid_api_key"
    (revoked,) = rows(app, ApiKey)
    # Again, with htmx: the list alone, saying so; the time of revocation stays the first.
    again = alice.post(f"{PAGE}/{row.id}/revoke")
    body = html.unescape(again.get_data(as_text=True))
    assert again.status_code == 200 and "<html" not in body
    assert 'id="api-key-list"' in body and "was revoked already" in body
    assert rows(app, ApiKey)[0].revoked_at == revoked.revoked_at


def test_revoking_with_htmx_answers_the_list(app, alice):
    make_key(alice, "one")
    make_key(alice, "two")
    one = next(k for k in rows(app, ApiKey) if k.name == "one")
    response = alice.post(f"{PAGE}/{one.id}/revoke")
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert body.lstrip().startswith('<section class="api-keys" id="api-key-list"')
    assert "Key “one” revoked" in body
    # The usable key first, still with its button; the revoked one after, without.
    assert body.index("<td>two</td>") < body.index("<td>one</td>")
    assert body.count("/revoke") == 2  # two's form: its action and hx-post


def test_another_persons_key_is_not_found(app, alice, bob):
    _, key = make_key(alice, "alice's laptop")
    (row,) = rows(app, ApiKey)
    bob.refresh_token()
    for htmx in (False, True):
        response = bob.post(f"{PAGE}/{row.id}/revoke", htmx=htmx)
        assert response.status_code == 404
    assert rows(app, ApiKey)[0].revoked_at is None
    page = html.unescape(page_text(bob))
    assert "alice's laptop" not in page and "You have no keys yet." in page
    assert alice.client.get("/v1/models", headers=bearer(key)).status_code == 200


def test_calls_made_with_a_key_are_listed_with_their_conversation(app, alice, scripted):
    _, key = make_key(alice, "script")
    assert ask(alice.client, key, "First question?").status_code == 200
    assert ask(alice.client, key, "Stream it", stream=True).status_code == 200
    scripted.tokens = []
    scripted.fail_with = failing("model overloaded")
    assert ask(alice.client, key, "Fail").status_code == 502
    calls = rows(app, ApiCall)
    assert len(calls) == 3 and all(c.conversation_id for c in calls)
    page = html.unescape(page_text(alice))
    table = page[page.index('id="calls-title"'):]
    rows_shown = re.findall(r'<tr class="call-(\w+)">(.*?)</tr>', table, re.S)
    # Newest first: the failure (with the upstream's words), the stream, the first call.
    assert [status for status, _ in rows_shown] == ["error", "complete", "complete"]
    failed, streamed, first = (cells for _, cells in rows_shown)
    assert "model overloaded" in failed and "(502)" in failed
    assert "<td>yes</td>" in streamed and "<td>no</td>" in first
    for cells in (streamed, first):
        assert "<td>script</td>" in cells
        assert "<code>scripted/script-1</code>" in cells and "answered by" in cells
        assert re.search(r"<td>\d+ / 3</td>", cells)  # tokens in / out
        assert re.search(r"<td>\d+\.\d\d</td>", cells)  # seconds
    conversation = next(c for c in rows(app, Conversation) if c.title == "First question?")
    assert f'href="/c/{conversation.id}"' in first
    assert alice.client.get(f"/c/{conversation.id}").status_code == 200
    # The key's "last used" is now a time.
    assert re.search(r"<td>script</td>.*?<td><time", page[:page.index('id="calls-title"')], re.S)


def test_another_persons_calls_are_not_listed(app, alice, bob):
    _, key = make_key(alice)
    assert ask(alice.client, key, "Private question").status_code == 200
    bob.refresh_token()
    page = page_text(bob)
    assert "No calls yet." in page and "Private question" not in page


def test_conversations_kept_from_the_api_are_marked(app, alice):
    _, key = make_key(alice)
    start_chat(alice, "From the web")
    assert ask(alice.client, key, "From a script").status_code == 200
    api = next(c for c in rows(app, Conversation) if c.origin == "api")
    web = next(c for c in rows(app, Conversation) if c.origin == "web")
    sidebar = alice.get("/conversations").get_data(as_text=True)
    items = dict(re.findall(r'href="/c/(\d+)"[^>]*>(.*?)</a></li>', sidebar, re.S))
    assert 'class="badge"' in items[str(api.id)] and "(from the API)" in items[str(api.id)]
    assert "badge" not in items[str(web.id)] and "API" not in items[str(web.id)]
    # The heading too, as the page has it and as the open conversation's item brings it.
    for path in (f"/c/{api.id}", f"/conversations/{api.id}/item?current={api.id}"):
        heading = HEADING.search(alice.get(path).get_data(as_text=True)).group(1)
        assert heading.startswith("From a script<span class=\"badge after\" aria-hidden")
        assert heading.endswith("(from the API)</span>")
    assert HEADING.search(alice.get(f"/c/{web.id}").get_data(as_text=True)).group(1) == \
        "From the web"


def test_the_page_says_when_the_api_is_off(app, alice):
    app.config["API_ENABLED"] = False
    page = page_text(alice)
    assert "The API is turned off on this server" in page
    _, key = make_key(alice)
    assert key is not None
    assert alice.client.get("/v1/models", headers=bearer(key)).status_code == 404
