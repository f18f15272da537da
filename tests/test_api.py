"""The served API through Flask's test client, with the scripted provider: keys, the wire
format, errors in OpenAI's shape, limits, call records and the conversations it keeps.

The same API under gunicorn with OpenAI's own client is tests/test_api_sdk.py.
"""

from __future__ import annotations

import json

import pytest
from scripted import failing
from sqlalchemy import select

from webapp.api.keys import create_key, digest, revoke_key
from webapp.extensions import db
from webapp.models import ApiCall, ApiKey, Conversation, Message, User
from webapp.queries import people

PATHS = ("/v1/chat/completions", "/api/openai/v1/chat/completions")


@pytest.fixture()
def key(app, make_user):
    """alice's key (alice is made unless a fixture before made her)."""
    with app.app_context():
        user = db.session.scalar(people.by_username("alice"))
    if user is None:
        make_user("alice")
    with app.app_context():
        return create_key(db.session.scalar(people.by_username("alice")), "tests")[1]


def call(client, key, body, path=PATHS[0], **headers):
    """POST ``body`` as JSON with ``key`` as the Bearer key."""
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(path, data=json.dumps(body), content_type="application/json",
                       headers=headers)


def ask(content="Hi", **fields):
    """A request body asking the scripted model one question."""
    return {"model": "scripted/script-1", "messages": [{"role": "user", "content": content}],
            **fields}


def events(response) -> list:
    """The ``data:`` events of a streamed answer, JSON-decoded (``[DONE]`` as the string)."""
    text = response.get_data(as_text=True)
    found = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def test_a_whole_answer_in_openais_shape(app, key, scripted):
    client = app.test_client()
    for path in PATHS:
        response = call(client, key, ask(temperature=0.2, max_tokens=50, stop=["END"]), path)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["object"] == "chat.completion"
        assert body["model"] == "scripted/script-1"
        choice = body["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": "Hello **world**!"}
        assert choice["finish_reason"] == "stop"
        assert body["usage"]["completion_tokens"] == 3
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 3
    sent = scripted.calls[-1]
    assert sent["params"]["temperature"] == 0.2 and sent["params"]["max_tokens"] == 50
    assert sent["kwargs"]["stop"] == ["END"]


def test_a_stream_of_chunks_ends_with_the_reason_and_done(app, key, scripted):
    scripted.finish_reason = "length"
    response = call(app.test_client(), key,
                    ask(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    found = events(response)
    assert found[-1] == "[DONE]"
    chunks = found[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello **world**!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_models_list_provider_model_ids_and_aliases_resolve(app, key, scripted):
    client = app.test_client()
    listed = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).get_json()
    ids = [m["id"] for m in listed["data"]]
    assert "scripted/script-1" in ids and "scripted/script-2" in ids
    assert all("/" in i for i in ids)
    assert client.get("/api/openai/v1/models",
                      headers={"Authorization": f"Bearer {key}"}).get_json() == listed
    # gpt-3.5-turbo: the default provider's default model; a bare name one provider offers.
    for name, expected in (("gpt-3.5-turbo", "script-1"), ("script-2", "script-2")):
        response = call(client, key, {**ask(), "model": name})
        assert response.status_code == 200, response.get_data(as_text=True)
        assert scripted.calls[-1]["model"] == expected
    missing = call(client, key, {**ask(), "model": "nope/nothing"})
    assert missing.status_code == 404
    assert missing.get_json()["error"]["code"] == "model_not_found"


def test_no_key_a_wrong_key_a_revoked_key_and_a_session_alone_get_401(app, alice, key):
    client = app.test_client()
    assert call(client, None, ask()).status_code == 401
    wrong = call(client, "eqk-" + "x" * 43, ask())
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["code"] == "invalid_api_key"
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    # alice is signed in with a session cookie (and holds a CSRF token): still 401.
    session_only = alice.client.post("/v1/chat/completions", json=ask())
    assert session_only.status_code == 401
    assert alice.client.get("/v1/models").status_code == 401
    with app.app_context():
        revoke_key(db.session.scalar(select(ApiKey).where(ApiKey.digest == digest(key))))
    assert call(client, key, ask()).status_code == 401


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "scripted/script-1", "messages": []}, "messages"),
    ({"model": "scripted/script-1", "messages": [{"role": "tool", "content": "x"}]},
     "messages[0].role"),
    ({**ask(), "temperature": 9}, "temperature"),
    ({**ask(), "temperature": "hot"}, "temperature"),
    ({**ask(), "max_tokens": 1.5}, "max_tokens"),
    ({**ask(), "stream": "yes"}, "stream"),
    ({**ask(), "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({**ask(), "n": 2}, "n"),
    ({**ask("nul \x00 here")}, "messages[0].content"),
])
def test_an_invalid_body_is_a_400_that_names_the_field(app, key, body, param):
    response = call(app.test_client(), key, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"]


def test_a_body_that_is_not_json_or_not_an_object(app, key):
    client = app.test_client()
    response = client.post("/v1/chat/completions", data="{not json",
                           content_type="application/json",
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert call(client, key, [1, 2]).status_code == 400


def test_sizes_over_the_limits_are_413_and_422(app, key):
    client = app.test_client()
    app.config["MAX_MESSAGE_CHARS"] = 10
    long_one = call(client, key, ask("x" * 11))
    assert long_one.status_code == 422
    assert long_one.get_json()["error"]["code"] == "message_too_long"
    app.config["MAX_MESSAGE_CHARS"] = 32000
    app.config["MAX_HISTORY_MESSAGES"] = 2
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}] * 2
    too_many = call(client, key, {**ask(), "messages": history + [
        {"role": "user", "content": "last"}]})
    assert too_many.status_code == 422
    assert too_many.get_json()["error"]["code"] == "history_too_long"
    big = call(client, key, ask("y" * (app.config["MAX_CONTENT_LENGTH"] + 10)))
    assert big.status_code == 413
    assert big.get_json()["error"]["code"] == "request_too_large"
    assert str(app.config["MAX_CONTENT_LENGTH"]) in big.get_json()["error"]["message"]


def test_an_upstream_failure_is_a_502_before_the_first_token_and_an_event_after(
        app, key, scripted):
    client = app.test_client()
    scripted.tokens = []
    scripted.fail_with = failing("model overloaded")
    before = call(client, key, ask())
    assert before.status_code == 502
    assert "model overloaded" in before.get_json()["error"]["message"]
    scripted.tokens = ["Partial", " answer"]
    after = call(client, key, ask(stream=True))
    assert after.status_code == 200
    found = events(after)
    assert "model overloaded" in found[-2]["error"]["message"]
    assert "".join(c["choices"][0]["delta"].get("content", "")
                   for c in found[:-2] if "choices" in c) == "Partial answer"


@pytest.mark.ratelimits
def test_rate_limit_and_answers_at_once_are_429(app, key, scripted):
    client = app.test_client()
    app.config["MESSAGE_RATE_LIMIT"] = "2 per minute"
    assert call(client, key, ask()).status_code == 200
    assert call(client, key, ask()).status_code == 200
    limited = call(client, key, ask())
    assert limited.status_code == 429
    assert limited.get_json()["error"]["type"] == "rate_limit_error"


def test_answers_at_once_count_running_api_calls(app, key):
    app.config["STREAMS_PER_USER"] = 1
    with app.app_context():
        user = db.session.scalar(people.by_username("alice"))
        key_row = db.session.scalar(select(ApiKey))
        db.session.add(ApiCall(user_id=user.id, key_id=key_row.id, endpoint="/v1/x",
                               status="running"))
        db.session.commit()
    refused = call(app.test_client(), key, ask())
    assert refused.status_code == 429
    assert "at once" in refused.get_json()["error"]["message"]


def test_calls_are_recorded_and_turns_kept_as_one_api_conversation(app, key, scripted):
    client = app.test_client()
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "One?"}]
    answer = call(client, key, {**ask(), "messages": first}).get_json()
    said = answer["choices"][0]["message"]
    # The client sends the history again with one more message: the same conversation.
    second = first + [said, {"role": "user", "content": "Two?"}]
    streamed = call(client, key, {**ask(stream=True), "messages": second})
    assert events(streamed)[-1] == "[DONE]"
    with app.app_context():
        conversations = db.session.scalars(select(Conversation)).all()
        assert len(conversations) == 1
        conversation = conversations[0]
        assert conversation.origin == "api" and conversation.title == "One?"
        rows = db.session.scalars(select(Message).order_by(Message.id)).all()
        assert [(m.role, m.content) for m in rows] == [
            ("user", "One?"), ("assistant", "Hello **world**!"), ("user", "Two?"),
            ("assistant", "Hello **world**!")]
        assert [m.parent_id for m in rows] == [None, rows[0].id, rows[1].id, rows[2].id]
        assert rows[1].params["system_prompt"] == "Be brief."
        assert rows[3].status == "complete" and rows[3].html
        calls = db.session.scalars(select(ApiCall).order_by(ApiCall.id)).all()
        assert [(c.status, c.stream, c.completion_tokens) for c in calls] == [
            ("complete", False, 3), ("complete", True, 3)]
        assert all(c.conversation_id == conversation.id and c.finished_at for c in calls)
        key_row = db.session.scalar(select(ApiKey))
        assert key_row.last_used_at is not None and calls[0].key_id == key_row.id


def test_turns_are_not_kept_when_the_setting_is_off(app, key):
    app.config["API_KEEP_CONVERSATIONS"] = False
    assert call(app.test_client(), key, ask()).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Conversation)) is None
        assert db.session.scalar(select(ApiCall)).conversation_id is None


def test_cors_is_off_unless_origins_are_named(app, key):
    client = app.test_client()
    origin = {"Origin": "https://tool.example"}
    assert "Access-Control-Allow-Origin" not in call(client, key, ask(), **origin).headers
    app.config["API_CORS_ORIGINS"] = "https://tool.example"
    allowed = call(client, key, ask(), **origin)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://tool.example"
    preflight = client.options("/v1/chat/completions", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code in (200, 204)
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = call(client, key, ask(), Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other.headers


def test_the_api_can_be_turned_off(app, key):
    app.config["API_ENABLED"] = False
    response = call(app.test_client(), key, ask())
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "api_disabled"


def test_unknown_api_addresses_answer_json(app, key):
    client = app.test_client()
    missing = client.get("/v1/nothing", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 404 and "error" in missing.get_json()
    wrong_method = client.get("/v1/chat/completions")
    assert wrong_method.status_code == 405 and "error" in wrong_method.get_json()


def test_a_key_reaches_only_its_owners_records(app, key, make_user):
    make_user("bob")
    assert call(app.test_client(), key, ask()).status_code == 200
    with app.app_context():
        bob = db.session.scalar(people.by_username("bob"))
        assert db.session.scalar(select(Conversation).where(Conversation.user_id == bob.id)) \
            is None
        owner = db.session.scalar(select(ApiCall)).user_id
        assert db.session.get(User, owner).username == "alice"


def test_a_client_that_leaves_mid_stream_stops_the_upstream_and_is_recorded(app, key, scripted):
    scripted.endless = True
    scripted.delay = 0.01
    response = app.test_client().post(
        "/v1/chat/completions", data=json.dumps(ask(stream=True)),
        content_type="application/json", headers={"Authorization": f"Bearer {key}"},
        buffered=False)
    pieces = iter(response.response)
    assert b"chat.completion.chunk" in next(pieces)
    next(pieces)
    response.close()  # the client goes away
    assert scripted.closed.wait(5)
    with app.app_context():
        recorded = db.session.scalar(select(ApiCall))
        assert recorded.status == "stopped" and recorded.http_status == 499
        assert "closed the connection" in recorded.error
        kept = db.session.scalar(select(Message).where(Message.role == "assistant"))
        assert kept.status == "stopped" and kept.content.startswith("t0 ")


def test_an_unexpected_failure_mid_stream_is_an_error_event_not_a_broken_stream(
        app, key, scripted):
    scripted.tokens = ["Some", " text"]
    scripted.fail_with = RuntimeError("a bug")
    found = events(call(app.test_client(), key, ask(stream=True)))
    assert found[-1] == "[DONE]"
    assert found[-2]["error"]["code"] == "internal_error"
    with app.app_context():
        assert db.session.scalar(select(ApiCall)).status == "error"
