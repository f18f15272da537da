"""Operator commands: users, providers, chat."""

from __future__ import annotations

from sqlalchemy import select

from webapp.extensions import app_state, db
from webapp.models import User
from webapp.providers import ProviderRegistry


def test_users_create(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "ops", "--password", "long enough", "--admin"])
    assert result.exit_code == 0 and "created administrator ops" in result.output
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username="ops"))
        assert user.is_admin and user.check_password("long enough")
        assert user.settings.temperature == 0.5 and user.settings.top_p == 1.0
    again = runner.invoke(args=["users", "create", "ops", "--password", "long enough"])
    assert again.exit_code != 0 and "taken" in again.output
    short = runner.invoke(args=["users", "create", "x", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output


def test_providers_lists_flags_models_url_and_health(app, fault_server):
    app.config["EQUING_URL"] = fault_server.url("ok")
    registry = ProviderRegistry.from_config({"PROVIDERS": "equing",
                                             "EQUING_URL": fault_server.url("ok")})
    app_state(app).providers = registry
    result = app.test_cli_runner().invoke(args=["providers"])
    assert result.exit_code == 0, result.output
    assert "equing [default]: Equing (next.eqing.tech)" in result.output
    assert f"url: {fault_server.url('ok')}" in result.output
    assert "models: gpt-3.5-turbo" in result.output
    assert "supports_stream=True supports_gpt_35_turbo=True supports_gpt_4=False" in result.output
    assert "working: yes" in result.output
    broken = ProviderRegistry.from_config({"PROVIDERS": "equing",
                                           "EQUING_URL": fault_server.url("http503")})
    app_state(app).providers = broken
    result = app.test_cli_runner().invoke(args=["providers"])
    assert "working: no (equing: HTTP 503: no channel" in result.output


def test_chat_streams_to_the_terminal(app, fault_server):
    app_state(app).providers = ProviderRegistry.from_config(
        {"PROVIDERS": "equing", "EQUING_URL": fault_server.url("ok")})
    runner = app.test_cli_runner()
    result = runner.invoke(args=["chat", "Hello", "--provider", "equing", "--temperature", "0.2"])
    assert result.exit_code == 0 and result.output == "Hello, wörld 🌍 日本!\n"
    assert fault_server.requests[-1]["body"]["temperature"] == 0.2
    missing = runner.invoke(args=["chat", "Hello", "--provider", "nope"])
    assert missing.exit_code != 0 and "no enabled provider" in missing.output
    gpt4 = runner.invoke(args=["chat", "Hello", "--provider", "equing", "--model", "gpt-4"])
    assert gpt4.exit_code != 0 and "not supported" in gpt4.output


def test_chat_reports_upstream_errors(app, fault_server):
    app_state(app).providers = ProviderRegistry.from_config(
        {"PROVIDERS": "equing", "EQUING_URL": fault_server.url("http401")})
    result = app.test_cli_runner().invoke(args=["chat", "Hello"])
    assert result.exit_code == 1 and "empty access code" in result.output
