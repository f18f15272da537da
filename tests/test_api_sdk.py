"""The served API under gunicorn, as its real clients use it: OpenAI's own Python SDK, the
project's Equing provider (a round trip through the embedded model, and a second app server
that takes this one as its upstream), and a raw socket.

The upstream is the fault server's scenario (Equing pointed at it, so the API offers
``equing/gpt-3.5-turbo``) or the embedded model. The same API through Flask's test client,
field by field, is tests/test_api.py.
"""

from __future__ import annotations

import http.client
import json
from typing import NamedTuple

import openai
import pytest
from openai import OpenAI
from sqlalchemy import create_engine, text

from tests.helpers import answer_row, api_calls, api_key, serve, wait_until
from tests.peers.appserver import AppServer
from tests.peers.fault_upstream import TEXT, TOKENS
from tests.peers.webclient import WebClient
from webapp.api.relay import CLIENT_LEFT
from webapp.providers.equing import Equing

#: What the equing provider offers, as /v1/models lists it.
MODEL = "equing/gpt-3.5-turbo"
#: The embedded model, as /v1/models lists it.
LOCAL = "local/SmolLM2-135M-Instruct"
#: The two addresses the API answers under: the usual one, and the one Equing clients call.
BASES = ("/v1", "/api/openai/v1")
HI = [{"role": "user", "content": "Hi"}]
#: The size limits of the ``ok`` server: a message's characters, a request body's bytes.
MOST_CHARS = 1000
MOST_BYTES = 65536


class Served(NamedTuple):
    """A gunicorn server and alice's key to its API."""

    server: AppServer
    key: str

    def client(self, base: str = "/v1", key: str | None = None, **options) -> OpenAI:
        """OpenAI's client for this server (no retries: each call is one request)."""
        return OpenAI(base_url=self.server.base + base, api_key=key or self.key, max_retries=0,
                      **options)


def stream_text(chunks) -> str:
    """The text a list of ``chat.completion.chunk`` carries."""
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def kept_answer(server: AppServer, conversation_id: int) -> str:
    """The text of the last answer kept in a conversation of a gunicorn server."""
    engine = create_engine(server.env["DATABASE_URL"])
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT content FROM messages WHERE conversation_id = :id AND role = 'assistant' "
            "ORDER BY id DESC LIMIT 1"), {"id": conversation_id}).scalar_one()
    engine.dispose()
    return found


def serve_api(tmp_path, fault_server, scenario: str, **env: str) -> Served:
    """gunicorn with Equing at ``scenario`` and alice's key."""
    server = serve(tmp_path, fault_server, scenario, **env)
    try:
        return Served(server, api_key(server))
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="module")
def api(tmp_path_factory, fault_server):
    """Equing at the ``ok`` scenario, small size limits, and no rate limit (this module makes
    more calls than a person may make a minute)."""
    served = serve_api(tmp_path_factory.mktemp("api"), fault_server, "ok",
                       FLASK_RATELIMIT_ENABLED="false", FLASK_MAX_MESSAGE_CHARS=str(MOST_CHARS),
                       FLASK_MAX_CONTENT_LENGTH=str(MOST_BYTES))
    yield served
    served.server.stop()


# -- what a client gets -----------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
def test_models_are_listed_as_provider_slash_model(api, base):
    client = api.client(base)
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].object == "model" and models[0].owned_by == "equing"
    # One model by its id, and the alias Equing clients send, which stands for it.
    assert client.models.retrieve(MODEL).id == MODEL
    assert client.models.retrieve("gpt-3.5-turbo").id == MODEL


@pytest.mark.parametrize("base", BASES)
def test_a_whole_answer(api, fault_server, base):
    answer = api.client(base).chat.completions.create(
        model=MODEL, messages=HI, temperature=0.2, max_tokens=50)
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.model == MODEL
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == TEXT
    assert choice.finish_reason == "stop"
    assert answer.usage.completion_tokens == len(TOKENS)
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + len(TOKENS)
    # The sampling parameters reached the upstream with the messages.
    sent = fault_server.requests[-1]["body"]
    assert sent["messages"] == HI
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 50)


def test_stop_sequences_reach_the_upstream(api, fault_server):
    api.client().chat.completions.create(model=MODEL, messages=HI, stop=["END", "FIN"])
    assert fault_server.requests[-1]["body"].get("stop") == ["END", "FIN"]


@pytest.mark.parametrize("base", BASES)
def test_a_streamed_answer(api, base):
    client = api.client(base)
    chunks = list(client.chat.completions.create(model=MODEL, messages=HI, stream=True))
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert stream_text(chunks) == TEXT
    # The reason comes on the last chunk only; no usage unless asked for.
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert all(c.usage is None for c in chunks)
    with_usage = list(client.chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True}))
    assert stream_text(with_usage) == TEXT
    assert with_usage[-2].choices[0].finish_reason == "stop"
    assert with_usage[-1].choices == []
    assert with_usage[-1].usage.completion_tokens == len(TOKENS)


def test_gpt_35_turbo_is_the_default_model(api):
    client = api.client("/api/openai/v1")
    answer = client.chat.completions.create(model="gpt-3.5-turbo", messages=HI)
    assert answer.model == MODEL and answer.choices[0].message.content == TEXT
    calls = api_calls(api.server)
    assert (calls[-1].model, calls[-1].provider, calls[-1].provider_model) == (
        "gpt-3.5-turbo", "equing", "gpt-3.5-turbo")


def test_a_raw_stream_read_byte_by_byte(api):
    connection = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=30)
    body = json.dumps({"model": MODEL, "messages": HI, "stream": True})
    # A client that takes compressed answers still gets the events as they are.
    connection.request("POST", "/api/openai/v1/chat/completions", body, headers={
        "Authorization": f"Bearer {api.key}", "Content-Type": "application/json",
        "Accept-Encoding": "gzip, deflate, br"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").split(";")[0] == "text/event-stream"
    assert response.getheader("Content-Encoding") is None
    raw = b""
    while byte := response.read(1):
        raw += byte
    connection.close()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    chunks = []
    for event in events[:-2]:
        assert event.startswith(b"data: {") and b"\n" not in event, event
        chunks.append(json.loads(event[len(b"data: "):]))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == TEXT
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# -- errors as the SDK's exceptions -----------------------------------------------------------

def test_no_key_or_a_wrong_key_is_an_authentication_error(api):
    # The SDK sends no Authorization header only when a call says so.
    no_key = {"Authorization": openai.Omit()}
    with pytest.raises(openai.AuthenticationError) as missing:
        api.client().models.list(extra_headers=no_key)
    assert missing.value.status_code == 401 and missing.value.code == "missing_api_key"
    with pytest.raises(openai.AuthenticationError):
        api.client().chat.completions.create(model=MODEL, messages=HI, extra_headers=no_key)
    for wrong in ("eqk-" + "x" * 43, api.key[:-1], "sk-not-one-of-ours"):
        with pytest.raises(openai.AuthenticationError) as refused:
            api.client(key=wrong).chat.completions.create(model=MODEL, messages=HI)
        assert refused.value.code == "invalid_api_key"


def test_a_revoked_key_is_refused_at_once(api):
    key = api_key(api.server, name="to revoke")
    client = api.client(key=key)
    assert client.chat.completions.create(model=MODEL, messages=HI).choices[0].message.content
    # Its id, from the operator's list (which shows the start of each key).
    line = next(line for line in api.server.flask("api-keys", "list", "alice").splitlines()
                if key[:10] in line)
    assert "\tto revoke\t" in line and line.endswith("active")
    api.server.flask("api-keys", "revoke", line.split("\t")[0])
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    # alice's other key still works.
    assert api.client().models.list().data


def test_an_invalid_body_is_a_bad_request_error(api):
    client = api.client()
    with pytest.raises(openai.BadRequestError) as hot:
        client.chat.completions.create(model=MODEL, messages=HI, temperature=9)
    assert hot.value.status_code == 400 and hot.value.param == "temperature"
    assert "temperature must be between" in hot.value.message
    with pytest.raises(openai.BadRequestError) as two:
        client.chat.completions.create(model=MODEL, messages=HI, n=2, stream=True)
    assert two.value.param == "n"


def test_an_unknown_model_is_not_found(api):
    with pytest.raises(openai.NotFoundError) as missing:
        api.client().chat.completions.create(model="nope/nothing", messages=HI)
    assert missing.value.code == "model_not_found" and "nope/nothing" in missing.value.message
    with pytest.raises(openai.NotFoundError):
        api.client().models.retrieve("gpt-4")


def test_too_long_a_message_is_unprocessable_and_too_big_a_body_is_413(api):
    client = api.client()
    with pytest.raises(openai.UnprocessableEntityError) as long_one:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x" * (MOST_CHARS + 1)}])
    assert long_one.value.code == "message_too_long"
    assert long_one.value.param == "messages[0].content"
    with pytest.raises(openai.APIStatusError) as big:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "y" * MOST_BYTES}])
    assert big.value.status_code == 413 and big.value.code == "request_too_large"
    # Neither reached the upstream or counted as a call.
    assert all(call.status == "complete" for call in api_calls(api.server))


def test_past_the_rate_limit_is_a_rate_limit_error(tmp_path, fault_server):
    served = serve_api(tmp_path, fault_server, "ok", FLASK_RATELIMIT_ENABLED="true",
                       FLASK_MESSAGE_RATE_LIMIT="2 per minute")
    try:
        client = served.client()
        for _ in range(2):
            assert client.chat.completions.create(model=MODEL, messages=HI).choices
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model=MODEL, messages=HI, stream=True)
        assert limited.value.status_code == 429 and limited.value.type == "rate_limit_error"
        # Reading the list of models is not a message: it is not limited.
        assert client.models.list().data
    finally:
        served.server.stop()


@pytest.fixture(scope="module")
def endless(tmp_path_factory, fault_server):
    """Equing at the ``endless`` scenario (a token every 20 ms for 20 s), one answer at a time
    per person; alice's key, and bob's."""
    served = serve_api(tmp_path_factory.mktemp("endless"), fault_server, "endless",
                       FLASK_RATELIMIT_ENABLED="false", FLASK_STREAMS_PER_USER="1")
    served.server.flask("users", "create", "bob", "--password", "correct horse")
    yield served, api_key(served.server, "bob")
    served.server.stop()


def read_some(stream, words: int) -> str:
    """The text of ``stream`` once it holds ``words`` tokens (the stream stays open)."""
    text = ""
    for chunk in stream:
        text += stream_text([chunk])
        if len(text.split()) >= words:
            return text
    raise AssertionError(f"the stream ended after {text!r}")


def ended(served: Served, username: str) -> bool:
    """Whether no call of ``username`` is running any more."""
    return all(call.status != "running" for call in api_calls(served.server)
               if call.username == username)


def test_answers_at_once_past_the_limit_is_a_rate_limit_error(endless):
    served, _ = endless
    client = served.client()
    stream = client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    assert read_some(stream, 2).startswith("t0 t1")
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=MODEL, messages=HI)
    assert "at once" in refused.value.message
    stream.close()
    # Once the first call ended, the next is taken.
    assert wait_until(lambda: ended(served, "alice"), 10)
    again = client.chat.completions.create(model=MODEL, messages=HI, stream=True)
    assert read_some(again, 1).startswith("t0")
    again.close()
    assert wait_until(lambda: ended(served, "alice"), 10)


def test_a_client_that_leaves_mid_stream_stops_the_call_and_the_upstream(endless, fault_server):
    served, bob_key = endless
    closed = len(fault_server.closed_at)
    stream = served.client(key=bob_key).chat.completions.create(
        model=MODEL, messages=HI, stream=True)
    assert read_some(stream, 3).startswith("t0 t1 t2")
    stream.close()
    assert wait_until(lambda: ended(served, "bob"), 10)
    call = [c for c in api_calls(served.server) if c.username == "bob"][-1]
    assert (call.status, call.http_status, call.error) == ("stopped", 499, CLIENT_LEFT)
    assert call.completion_tokens >= 3 and call.finished_at is not None
    # The upstream's connection was closed too: it stopped sending.
    assert wait_until(lambda: len(fault_server.closed_at) > closed, 10)


def test_a_client_that_gives_up_before_the_first_token_stops_the_upstream(tmp_path,
                                                                         fault_server):
    # Clients give up on slow calls (the SDK's timeout, an editor plugin cancelling a request
    # it no longer needs); until the call ends it holds one of the person's answers at once.
    # ``watch-first`` holds its first token for 10 s and records when the app hangs up.
    served = serve_api(tmp_path, fault_server, "watch-first")
    try:
        closed = len(fault_server.closed_at)
        impatient = served.client(timeout=1.0)
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model=MODEL, messages=HI, stream=True)
        assert wait_until(lambda: len(fault_server.closed_at) > closed, 5)
        assert wait_until(lambda: api_calls(served.server)[-1].status == "stopped", 5)
    finally:
        served.server.stop()


# -- upstream failures ------------------------------------------------------------------------

@pytest.mark.parametrize(("scenario", "said"), [
    ("http503", "no channel is available for model gpt-3.5-turbo"),
    ("http500", "The server had an error"),
])
def test_an_upstream_that_fails_is_a_502_with_its_message(tmp_path, fault_server, scenario,
                                                           said):
    served = serve_api(tmp_path, fault_server, scenario)
    try:
        client = served.client()
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(model=MODEL, messages=HI, stream=stream)
            assert failed.value.status_code == 502 and failed.value.code == "upstream_error"
            assert said in failed.value.message
        calls = api_calls(served.server)
        assert [(c.status, c.http_status) for c in calls] == [("error", 502)] * 2
        assert said in calls[-1].error
    finally:
        served.server.stop()


@pytest.mark.parametrize(("scenario", "said"), [
    ("error-event", "upstream exploded"),
    ("named-error-event", "overloaded, try later"),
    ("cut", "the upstream cut the stream off mid-event"),
])
def test_a_failure_after_the_first_token_is_an_api_error_in_the_stream(
        tmp_path, fault_server, scenario, said):
    served = serve_api(tmp_path, fault_server, scenario)
    try:
        stream = served.client().chat.completions.create(model=MODEL, messages=HI, stream=True)
        got = []
        with pytest.raises(openai.APIError) as failed:
            for chunk in stream:
                got.append(chunk)
        assert not isinstance(failed.value, openai.APIStatusError)  # the stream had begun
        assert said in failed.value.message
        assert stream_text(got) == "".join(TOKENS[:2])
        assert all(c.choices[0].finish_reason is None for c in got)
        # The client stopped reading at the error; the server records the call after [DONE].
        assert wait_until(lambda: api_calls(served.server)[-1].status != "running")
        call = api_calls(served.server)[-1]
        assert (call.status, call.http_status) == ("error", 200)
    finally:
        served.server.stop()


# -- Equing, the project's own client, against the app ----------------------------------------

@pytest.fixture(scope="module")
def local(tmp_path_factory, fault_server):
    """The app with the embedded model only (short answers), and alice's key."""
    served = serve_api(tmp_path_factory.mktemp("local"), fault_server, "ok",
                       FLASK_PROVIDERS="local", FLASK_LOCAL_MAX_TOKENS="16",
                       FLASK_RATELIMIT_ENABLED="false")
    yield served
    served.server.stop()


def test_equing_gets_an_answer_of_the_embedded_model(local):
    equing = Equing.configured(url=local.server.base + "/", api_key=local.key, working=True)
    text = "".join(equing.create_completion(
        "gpt-3.5-turbo", [{"role": "user", "content": "Say hello."}], stream=True))
    assert text.strip()
    call = api_calls(local.server)[-1]
    assert (call.endpoint, call.model, call.provider) == (
        "/api/openai/v1/chat/completions", "gpt-3.5-turbo", "local")
    assert call.status == "complete" and call.completion_tokens > 0
    # The OpenAI SDK sees the alias resolved to the embedded model.
    answer = local.client().chat.completions.create(model="gpt-3.5-turbo", messages=HI,
                                                    max_tokens=4)
    assert answer.model == LOCAL and answer.choices[0].finish_reason in ("stop", "length")


def test_a_second_app_serves_a_chat_through_the_first(local, tmp_path, fault_server):
    front = serve(tmp_path, fault_server, "ok", FLASK_EQUING_URL=local.server.base + "/",
                  FLASK_EQUING_API_KEY=local.key)
    try:
        before = len(api_calls(local.server))
        client = WebClient(front.base).login("alice", "correct horse")
        _, message_id = client.start_chat("Say hello.")
        client.stream(message_id)  # to its end
        status, error, content = answer_row(front, message_id)
        assert (status, error) == ("complete", None) and content.strip()
        # The first app made the answer: one more call with alice's key, its text the same.
        calls = api_calls(local.server)
        assert len(calls) == before + 1
        call = calls[-1]
        assert (call.status, call.provider, call.username) == ("complete", "local", "alice")
        assert kept_answer(local.server, call.conversation_id) == content
    finally:
        front.stop()
