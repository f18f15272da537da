"""The provider layer against the fault-injecting upstream (framing, errors, timeouts)."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from tests.helpers import run_to_end, wait_until
from tests.peers.fault_upstream import TEXT, TOKENS
from webapp.providers import (
    Cancellation,
    Equing,
    MalformedResponse,
    ModelNotSupported,
    OpenAICompatible,
    ProviderError,
    UpstreamConnectionError,
    UpstreamHTTPError,
    UpstreamStreamError,
    UpstreamTimeout,
    transport,
)
from webapp.providers.base import SAMPLING_PARAMS, sampling_kwargs, stop_sequences

MESSAGES = [{"role": "user", "content": "Tell me a joke."}]


def equing(server, scenario: str, **attrs):
    """Equing pointed at one scenario of the fault server."""
    return Equing.configured(url=server.url(scenario), **attrs)


def collect(provider, stream=True, **kwargs):
    return list(provider.create_completion("gpt-3.5-turbo", MESSAGES, stream, **kwargs))


def partial_then_error(provider, error_type, **kwargs):
    """Tokens received before the failure, and the failure."""
    received = []
    with pytest.raises(error_type) as info:
        for token in provider.create_completion("gpt-3.5-turbo", MESSAGES, True, **kwargs):
            received.append(token)
    return "".join(received), info.value


# -- the seed's contract -----------------------------------------------------------------

def test_seed_class_attributes():
    assert Equing.url == "https://next.eqing.tech/"
    assert Equing.supports_stream is True
    assert Equing.supports_gpt_35_turbo is True
    assert Equing.supports_gpt_4 is False
    assert isinstance(Equing.working, bool)
    assert Equing.models == ("gpt-3.5-turbo",)
    assert Equing.endpoint() == "https://next.eqing.tech/api/openai/v1/chat/completions"


def test_errors_are_request_exceptions_and_json_errors():
    assert issubclass(ProviderError, requests.exceptions.RequestException)
    error = MalformedResponse("bad", doc="{x", pos=1, status=200, provider="equing")
    assert isinstance(error, json.JSONDecodeError)
    assert isinstance(error, requests.exceptions.RequestException)
    assert error.status == 200 and "bad" in str(error)
    assert issubclass(UpstreamTimeout, requests.exceptions.Timeout)


def test_params_are_described_and_checked():
    text = Equing.describe_params()
    assert "temperature: float = 0.5 (0.0..2.0)" in text
    assert "max_tokens: int = unset" in text
    assert sampling_kwargs({}) == {"temperature": 0.5, "top_p": 1.0, "presence_penalty": 0.0,
                                   "frequency_penalty": 0.0}
    assert sampling_kwargs({"max_tokens": "12", "other": 1})["max_tokens"] == 12
    for name, bad in [("temperature", 2.5), ("top_p", -0.1), ("presence_penalty", 3),
                      ("frequency_penalty", "x"), ("temperature", float("nan"))]:
        with pytest.raises(ValueError, match=name):
            sampling_kwargs({name: bad})
    assert {p.name for p in SAMPLING_PARAMS} >= {"temperature", "top_p", "presence_penalty",
                                                 "frequency_penalty"}


def test_gpt4_fails_before_any_network_call(fault_server):
    before = len(fault_server.requests)
    with pytest.raises(ModelNotSupported, match="gpt-4"):
        equing(fault_server, "ok").create_completion("gpt-4", MESSAGES, True)
    assert len(fault_server.requests) == before


def test_bad_parameter_fails_before_any_network_call(fault_server):
    before = len(fault_server.requests)
    with pytest.raises(ProviderError, match="temperature"):
        equing(fault_server, "ok").create_completion("gpt-3.5-turbo", MESSAGES, True,
                                                     temperature=9)
    with pytest.raises(ProviderError, match="messages"):
        equing(fault_server, "ok").create_completion("gpt-3.5-turbo", [], True)
    assert len(fault_server.requests) == before


def test_request_has_the_original_headers_and_body(fault_server):
    provider = equing(fault_server, "ok")
    assert "".join(collect(provider, temperature=0.7, max_tokens=33)) == TEXT
    sent = fault_server.requests[-1]
    assert sent["path"] == "/ok/api/openai/v1/chat/completions"
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["origin"] == fault_server.base + "/ok"
    assert headers["referer"] == fault_server.base + "/ok/"
    assert headers["accept"] == "text/event-stream"
    assert headers["content-type"] == "application/json"
    assert headers["x-requested-with"] == "XMLHttpRequest"
    assert headers["plugins"] == "0" and headers["usesearch"] == "false"
    assert "Chrome/" in headers["user-agent"] and "authorization" not in headers
    assert sent["body"] == {"messages": MESSAGES, "stream": True, "model": "gpt-3.5-turbo",
                            "temperature": 0.7, "presence_penalty": 0.0,
                            "frequency_penalty": 0.0, "top_p": 1.0, "max_tokens": 33}


def test_defaults_are_nextchats(fault_server):
    collect(equing(fault_server, "ok"))
    body = fault_server.requests[-1]["body"]
    assert (body["temperature"], body["presence_penalty"], body["frequency_penalty"],
            body["top_p"]) == (0.5, 0, 0, 1)
    assert "max_tokens" not in body
    assert "stop" not in body


# -- stop sequences ----------------------------------------------------------------------

def test_stop_sequences_are_read_as_a_list():
    for none in ({}, {"stop": None}, {"stop": []}):
        assert stop_sequences(none) == []
    assert stop_sequences({"stop": "END"}) == ["END"]
    assert stop_sequences({"stop": ("a", "b\n")}) == ["a", "b\n"]
    assert stop_sequences({"stop": ["x" * 200] * 4}) == ["x" * 200] * 4
    # Not a sampling parameter: SAMPLING_PARAMS makes the settings form's fields.
    assert "stop" not in {p.name for p in SAMPLING_PARAMS}
    assert "stop" not in sampling_kwargs({"stop": ["END"]})


@pytest.mark.parametrize("stream", [True, False])
def test_stop_sequences_reach_the_upstream_as_a_list(fault_server, stream):
    collect(equing(fault_server, "ok"), stream=stream, stop=["\n\n", "THE END"])
    body = fault_server.requests[-1]["body"]
    assert body["stop"] == ["\n\n", "THE END"] and body["stream"] is stream
    generic = OpenAICompatible.configured(url=fault_server.url("ok") + "v1")
    assert "".join(generic.create_completion("llama3", MESSAGES, stream, stop="THE END")) == TEXT
    assert fault_server.requests[-1]["body"]["stop"] == ["THE END"]


@pytest.mark.parametrize("bad", ["", [""], ["a", "b", "c", "d", "e"], ["x" * 201], [1],
                                 ["ok", None], 5, {"stop": "a"}, b"END"])
def test_bad_stop_fails_before_any_network_call(fault_server, bad):
    before = len(fault_server.requests)
    with pytest.raises(ProviderError, match="stop must be a string or a list") as info:
        equing(fault_server, "ok").create_completion("gpt-3.5-turbo", MESSAGES, True, stop=bad)
    assert info.value.provider == "equing"
    with pytest.raises(ValueError, match="stop"):
        stop_sequences({"stop": bad})
    assert len(fault_server.requests) == before


def test_subclass_with_another_url(fault_server):
    class Mine(Equing):
        url = fault_server.url("ok")

    assert "".join(Mine.create_completion("gpt-3.5-turbo", MESSAGES, True)) == TEXT


def test_generic_provider_sends_api_key_and_model(fault_server):
    provider = OpenAICompatible.configured(url=fault_server.url("ok") + "v1", api_key="sk-test",
                                           models=("llama3",))
    assert "".join(provider.create_completion("llama3", MESSAGES, True)) == TEXT
    sent = fault_server.requests[-1]
    assert sent["path"] == "/ok/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["body"]["model"] == "llama3"
    with pytest.raises(ModelNotSupported):
        provider.create_completion("mistral", MESSAGES, True)


# -- framing -----------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["ok", "bytewise", "bytewise-close", "packed", "crlf", "cr",
                                      "multiline", "utf8-split"])
def test_stream_framings(fault_server, scenario):
    tokens = collect(equing(fault_server, scenario))
    assert "".join(tokens) == TEXT
    assert tokens == TOKENS


@pytest.mark.parametrize("scenario", ["ok", "bytewise", "packed", "crlf", "utf8-split"])
def test_non_stream_yields_the_whole_answer_once(fault_server, scenario):
    assert collect(equing(fault_server, scenario), stream=False) == [TEXT]


def test_stops_at_finish_reason_without_waiting_for_done(fault_server):
    # The server keeps the stream open after finish_reason; a client that waited for more
    # would hit the 1 s read timeout.
    provider = equing(fault_server, "finish-then-hang", timeout=(2, 1))
    assert "".join(collect(provider)) == TEXT


# -- failures ----------------------------------------------------------------------------

def test_stream_without_done_is_an_error_after_the_partial_text(fault_server):
    text, error = partial_then_error(equing(fault_server, "no-done"), UpstreamStreamError)
    assert text == "".join(TOKENS[:3])
    assert "before the answer was finished" in str(error)


def test_stream_cut_mid_event(fault_server):
    text, error = partial_then_error(equing(fault_server, "cut"), UpstreamStreamError)
    assert text == "".join(TOKENS[:2])
    assert "mid-event" in str(error)


def test_malformed_event(fault_server):
    text, error = partial_then_error(equing(fault_server, "malformed"), MalformedResponse)
    assert text == "".join(TOKENS[:2])
    assert isinstance(error, json.JSONDecodeError)
    assert "this is not json" in str(error)


@pytest.mark.parametrize("scenario, message", [
    ("error-event", "upstream exploded"),
    ("named-error-event", "overloaded, try later"),
])
def test_error_object_mid_stream(fault_server, scenario, message):
    text, error = partial_then_error(equing(fault_server, scenario), UpstreamStreamError)
    assert text == "".join(TOKENS[:2])
    assert error.message == message


@pytest.mark.parametrize("scenario, status, message", [
    ("http500", 500, "The server had an error"),
    ("http503", 503, "no channel is available for model gpt-3.5-turbo"),
    ("http401", 401, "empty access code"),
    ("http403", 403, "you are not allowed to use gpt-4 model"),
    ("html", 502, "502 Bad Gateway"),
    ("plain", 500, "Internal Server Error"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_http_errors_carry_status_and_message(fault_server, scenario, status, message, stream):
    with pytest.raises(UpstreamHTTPError) as info:
        collect(equing(fault_server, scenario), stream=stream)
    assert info.value.status == status
    assert info.value.message == message
    assert f"HTTP {status}" in str(info.value)


def test_error_object_with_200(fault_server):
    with pytest.raises(UpstreamStreamError, match="quota exceeded"):
        collect(equing(fault_server, "json-error-200"), stream=False)


def test_answer_that_is_not_json(fault_server):
    with pytest.raises(json.JSONDecodeError):
        collect(equing(fault_server, "not-json"), stream=False)


def test_read_timeout(fault_server):
    with pytest.raises(UpstreamTimeout):
        collect(equing(fault_server, "hang"), timeout=(2, 0.5))


def test_configured_default_timeout(fault_server):
    with pytest.raises(UpstreamTimeout):
        collect(equing(fault_server, "hang", timeout=(2, 0.5)))


def test_connection_refused():
    with pytest.raises(UpstreamConnectionError, match="cannot reach"):
        collect(Equing.configured(url="http://127.0.0.1:9/"))


def test_connection_reset_mid_stream(fault_server):
    text, error = partial_then_error(equing(fault_server, "reset"), ProviderError)
    assert text == "".join(TOKENS[:3])
    assert isinstance(error, UpstreamConnectionError | UpstreamStreamError)


# -- closing -----------------------------------------------------------------------------

def test_abandoned_generator_closes_the_connection(fault_server):
    before = len(fault_server.closed_at)
    generator = equing(fault_server, "endless").create_completion("gpt-3.5-turbo", MESSAGES, True)
    assert [next(generator) for _ in range(3)] == ["t0 ", "t1 ", "t2 "]
    generator.close()
    assert wait_until(lambda: len(fault_server.closed_at) > before)


def test_cancel_wakes_a_blocked_read(fault_server):
    cancel = Cancellation()
    provider = equing(fault_server, "hang", timeout=(2, 60))
    threading.Timer(0.3, cancel.cancel).start()
    # Ends quietly, long before the 60 s read timeout (pytest-timeout guards the suite).
    assert collect(provider, cancel=cancel) == []


def test_cancel_mid_stream_stops_and_closes(fault_server):
    before = len(fault_server.closed_at)
    cancel = Cancellation()
    received = []
    for token in equing(fault_server, "endless").create_completion(
            "gpt-3.5-turbo", MESSAGES, True, cancel=cancel):
        received.append(token)
        if len(received) == 2:
            cancel.cancel()
    assert received[:2] == ["t0 ", "t1 "]
    assert wait_until(lambda: len(fault_server.closed_at) > before)


def test_proxy_settings_come_from_the_environment(fault_server, monkeypatch):
    """The environment is read once per endpoint (not per request), and still obeyed: a
    request goes through HTTP_PROXY unless NO_PROXY names the upstream's host."""
    monkeypatch.setenv("HTTP_PROXY", fault_server.base)
    monkeypatch.setenv("NO_PROXY", "bypassed.invalid")
    transport._environment.cache_clear()
    try:
        proxied = Equing.configured(url="http://upstream.invalid/ok/")
        before = len(fault_server.requests)
        # The fault server answers any path it does not know as a normal stream.
        assert "".join(collect(proxied)) == TEXT
        assert fault_server.requests[before]["path"].startswith("http://upstream.invalid/ok/")
        assert transport._environment("http://bypassed.invalid/v1")["proxies"] == {}
    finally:
        transport._environment.cache_clear()


def test_a_finished_answer_leaves_its_connection_for_the_next(fault_server):
    """Keep-alive: answers that ended cleanly share one connection, even when the previous
    one's cancellation fires afterwards (as the app's does when a generation ends). An
    upstream that holds the stream open after the answer costs its connection, not the
    answer."""
    ok, hang = equing(fault_server, "ok"), equing(fault_server, "finish-then-hang",
                                                    timeout=(2, 30))
    before = len(fault_server.requests)
    cancel = Cancellation()
    assert "".join(collect(ok, cancel=cancel)) == TEXT
    cancel.cancel()
    assert "".join(collect(ok)) == TEXT
    assert "".join(collect(ok, stream=False)) == TEXT
    assert "".join(collect(hang)) == TEXT  # well before the server ends it, 5 s later
    assert "".join(collect(ok)) == TEXT
    # Reading the tail shortened the socket's timeout; the next answer has its own again.
    assert "".join(collect(equing(fault_server, "slow-first"))) == TEXT  # 1 s to the first
    clients = [r["client"] for r in fault_server.requests[before:]]
    assert clients[0] == clients[1] == clients[2] == clients[3]
    assert clients[4] != clients[3]
    assert clients[5] == clients[4]


@pytest.mark.parametrize("stream", [True, False])
def test_the_finish_reason_is_the_generators_value(fault_server, stream):
    cut = equing(fault_server, "length").create_completion("gpt-3.5-turbo", MESSAGES, stream)
    tokens, reason = run_to_end(cut)
    assert reason == "length" and "".join(tokens) == "".join(TOKENS[:3])
    whole = equing(fault_server, "ok").create_completion("gpt-3.5-turbo", MESSAGES, stream)
    assert run_to_end(whole) == ([TEXT] if not stream else TOKENS, "stop")
