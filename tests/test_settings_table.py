"""The table of settings: what ``Config``, the start-up checks and the provider registry take
from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webapp.checks import config_problems
from webapp.config import Config
from webapp.providers import ConfigError, Equing, LocalModel, ProviderRegistry
from webapp.settings_table import BY_NAME, SETTINGS, Setting, defaults

ROOT = Path(__file__).resolve().parents[1]


def test_names_are_unique_and_shaped_like_settings():
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)


def test_config_holds_every_flask_setting_of_the_table_and_nothing_else():
    held = {name: getattr(Config, name) for name in dir(Config) if name.isupper()}
    assert held == defaults()
    assert set(held) == {s.name for s in SETTINGS if not s.env}
    assert held["MAX_IMPORT_BYTES"] == 8 * 1024 * 1024 and held["STREAM_COALESCE_MS"] == 45


def test_the_defaults_pass_their_own_checks():
    config = {**defaults(), "SQLALCHEMY_DATABASE_URI": "sqlite://"}
    assert config_problems(config) == []
    assert all(setting.problem(setting.default) is None for setting in SETTINGS)


def test_bounds_belong_to_numbers_and_schemes_to_text():
    for setting in SETTINGS:
        if setting.minimum is not None:
            assert setting.kind is int, setting.name
        if setting.above is not None:
            assert setting.kind is float, setting.name
        if setting.schemes:
            assert setting.kind is str, setting.name


@pytest.mark.parametrize("setting, value, words", [
    (Setting("N", 3, "", minimum=1), 0, "N must be at least 1, not 0"),
    (Setting("N", 3, "", minimum=1), "3", "N must be a whole number, not '3'"),
    (Setting("N", 3, "", minimum=1), True, "N must be a whole number, not True"),
    (Setting("S", 1.0, "", above=0), 0, "S must be a positive number, not 0"),
    (Setting("S", 1.0, "", above=0), "soon", "S must be a positive number, not 'soon'"),
    (Setting("B", False, ""), "yes", "B must be true or false, not 'yes'"),
])
def test_a_value_is_held_to_its_type_and_bounds(setting, value, words):
    assert setting.problem(value) == words


def test_what_is_not_held():
    assert Setting("N", 3, "", minimum=1).problem(None) is None  # Flask's own meaning
    assert Setting("N", 3, "", minimum=1).problem(7) is None
    assert Setting("S", 1.0, "", above=0).problem(45) is None
    assert Setting("T", "", "").problem(5) is None  # text is not held to a type
    assert Setting("B", True, "", checked=False).problem("yes") is None


def test_every_held_setting_is_checked_at_start():
    """Each setting of a checked type gets a problem for a value of another type, except the
    provider registry's, which it checks as it builds."""
    for setting in SETTINGS:
        if setting.env or not setting.checked or setting.kind not in (bool, int, float):
            continue
        problems = config_problems({**defaults(), "SQLALCHEMY_DATABASE_URI": "sqlite://",
                                    "PROVIDERS": "local,equing", setting.name: "wrong"})
        if setting.provider:
            assert problems == [f"{setting.name} must be a whole number, not 'wrong'"]
        else:
            assert [p for p in problems if p.startswith(setting.name + " ")], setting.name


def test_the_registry_reads_the_provider_settings_and_no_other():
    source = (ROOT / "webapp" / "providers" / "registry.py").read_text()
    read = set(re.findall(r'(?:config, |config\.get\()"([A-Z_]+)"', source))
    assert read == {setting.name for setting in SETTINGS if setting.provider}


def test_the_providers_own_defaults_agree_with_the_table():
    assert BY_NAME["EQUING_URL"].shown == f"`{Equing.url}`"
    assert BY_NAME["LOCAL_N_CTX"].default == LocalModel.n_ctx
    assert BY_NAME["LOCAL_THREADS"].default == LocalModel.n_threads
    assert BY_NAME["LOCAL_MAX_TOKENS"].default == LocalModel.default_max_tokens
    local = ProviderRegistry.from_config({"PROVIDERS": "local", "LOCAL_N_CTX": 0}).get("local")
    assert local.n_ctx == 2048 and local.default_max_tokens == 1024


def test_the_registry_takes_text_and_holds_it_to_the_bounds():
    local = ProviderRegistry.from_config({"PROVIDERS": "local", "LOCAL_N_CTX": "4096",
                                          "LOCAL_THREADS": "2"}).get("local")
    assert local.n_ctx == 4096 and local.n_threads == 2
    with pytest.raises(ConfigError, match="LOCAL_THREADS must be at least 0, not -1"):
        ProviderRegistry.from_config({"PROVIDERS": "local", "LOCAL_THREADS": -1})
    # A setting of a provider that is not enabled is not read.
    ProviderRegistry.from_config({"PROVIDERS": "equing", "LOCAL_N_CTX": "big"})
