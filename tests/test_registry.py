"""The provider registry: configuration, defaults and the health probe."""

from __future__ import annotations

import pytest

from webapp.providers import ConfigError, Equing, ProviderRegistry
from webapp.providers.registry import parse_timeout


def test_defaults_enable_local_and_equing():
    registry = ProviderRegistry.from_config({})
    assert registry.names() == ["local", "equing"]
    assert registry.default == "local"
    assert registry.get("equing").url == "https://next.eqing.tech/"
    assert registry.models("equing") == ["gpt-3.5-turbo"]


def test_equing_url_and_openai_from_configuration():
    registry = ProviderRegistry.from_config({
        "EQUING_URL": "http://127.0.0.1:9999", "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
        "OPENAI_MODELS": "llama3, qwen2", "OPENAI_API_KEY": "k", "PROVIDER_TIMEOUT": "3,30",
        "DEFAULT_PROVIDER": "openai"})
    assert registry.names() == ["local", "equing", "openai"]
    equing = registry.get("equing")
    assert equing.endpoint() == "http://127.0.0.1:9999/api/openai/v1/chat/completions"
    assert equing.timeout == (3.0, 30.0)
    openai = registry.get("openai")
    assert openai.endpoint() == "http://127.0.0.1:11434/v1/chat/completions"
    assert openai.models == ("llama3", "qwen2") and openai.api_key == "k"
    assert registry.default_provider() is openai
    # Configuring a registry never changes the classes themselves.
    assert Equing.url == "https://next.eqing.tech/"


@pytest.mark.parametrize("config, message", [
    ({"PROVIDERS": "equing,nope"}, "unknown providers: nope"),
    ({"EQUING_URL": "ftp://x"}, "EQUING_URL must be an http"),
    ({"EQUING_URL": "file:///etc/passwd"}, "EQUING_URL must be an http"),
    ({"PROVIDERS": "openai"}, "needs OPENAI_BASE_URL"),
    ({"DEFAULT_PROVIDER": "openai"}, "not enabled"),
    ({"PROVIDER_TIMEOUT": "soon"}, "PROVIDER_TIMEOUT"),
    ({"PROVIDER_TIMEOUT": "0"}, "positive"),
    ({"LOCAL_N_CTX": "big"}, "LOCAL_N_CTX"),
])
def test_wrong_settings_say_what_is_wrong(config, message):
    with pytest.raises(ConfigError, match=message):
        ProviderRegistry.from_config(config)


def test_parse_timeout():
    assert parse_timeout("5,120") == (5.0, 120.0)
    assert parse_timeout(30) == 30.0
    assert parse_timeout((1, 2)) == (1.0, 2.0)


def test_probe_sets_working(fault_server):
    registry = ProviderRegistry.from_config({"PROVIDERS": "equing",
                                             "EQUING_URL": fault_server.url("ok")})
    result = registry.probe("equing")
    assert result.working and registry.get("equing").working is True
    broken = ProviderRegistry.from_config({"PROVIDERS": "equing",
                                           "EQUING_URL": fault_server.url("http503")})
    result = broken.probe("equing")
    assert not result.working and "no channel" in result.detail
    assert broken.get("equing").working is False


@pytest.mark.slow
def test_probe_of_the_local_model():
    registry = ProviderRegistry.from_config({"PROVIDERS": "local"})
    assert registry.probe("local").working
