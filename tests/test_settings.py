"""Generation settings: every form rule, and the values reaching the provider."""

from __future__ import annotations

import pytest
from sqlalchemy import select

# The good form, beside the BAD values below.
from tests.helpers import SETTINGS_FORM as GOOD
from tests.helpers import events, read_stream, rows, send, start_chat
from webapp.extensions import app_state, db
from webapp.models import Conversation, Message, User, UserSettings


def settings_of(app, username="alice"):
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(username=username))
        settings = db.session.get(UserSettings, user.id)
        db.session.expunge_all()
        return settings


def test_new_people_get_the_seeds_defaults(alice, app):
    settings = settings_of(app)
    assert (settings.temperature, settings.top_p, settings.presence_penalty,
            settings.frequency_penalty, settings.max_tokens) == (0.5, 1.0, 0.0, 0.0, None)
    page = alice.get("/settings").get_data(as_text=True)
    assert 'name="temperature"' in page and 'value="0.5"' in page


@pytest.mark.parametrize("htmx", [False, True])
def test_good_settings_are_saved(alice, app, htmx):
    response = alice.post("/settings", GOOD, htmx=htmx)
    assert response.status_code == (200 if htmx else 303)
    settings = settings_of(app)
    assert (settings.provider, settings.model, settings.temperature, settings.top_p,
            settings.presence_penalty, settings.frequency_penalty, settings.max_tokens,
            settings.system_prompt) == ("scripted", "script-2", 0.7, 0.9, 0.5, -0.5, 256,
                                        "You are a pirate.")


BAD = [
    ("temperature", "2.5", "Temperature must be between 0 and 2."),
    ("temperature", "-0.1", "Temperature must be between 0 and 2."),
    ("temperature", "hot", "Enter a number, like 0.7."),
    ("temperature", "nan", "Enter a finite number."),
    ("temperature", "inf", "Enter a finite number."),
    ("temperature", "", "Give a temperature."),
    ("top_p", "1.5", "Top P must be between 0 and 1."),
    ("top_p", "-1", "Top P must be between 0 and 1."),
    ("presence_penalty", "3", "Presence penalty must be between -2 and 2."),
    ("frequency_penalty", "-2.01", "Frequency penalty must be between -2 and 2."),
    ("max_tokens", "0", "Max tokens must be between 1 and 32768."),
    ("max_tokens", "1.5", "Enter a whole number, like 512, or leave it empty."),
    ("max_tokens", "99999", "Max tokens must be between 1 and 32768."),
    ("model", "gpt-4", "does not offer “gpt-4”"),
    ("provider", "nope", "Choose one of the providers in the list."),
    ("system_prompt", "x" * 8001, "The system prompt is too long"),
]


@pytest.mark.parametrize("field, value, message", BAD)
@pytest.mark.parametrize("htmx", [False, True])
def test_each_bad_value_is_refused_in_words(alice, app, field, value, message, htmx):
    before = settings_of(app)
    response = alice.post("/settings", {**GOOD, field: value}, htmx=htmx)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert "Nothing was saved" in html
    # What the person typed is still there: the other fields, and the wrong value itself.
    keep = "top_p" if field != "top_p" else "temperature"
    assert f'value="{GOOD[keep]}"' in html
    if field != "system_prompt":
        assert "You are a pirate." in html
    if field in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens"):
        assert f'value="{value}"' in html
    after = settings_of(app)
    assert (after.temperature, after.model, after.system_prompt) == (
        before.temperature, before.model, before.system_prompt)


def test_equing_offers_gpt35_and_never_gpt4(alice, app):
    good = alice.post("/settings", {**GOOD, "provider": "equing", "model": "gpt-3.5-turbo"})
    assert good.status_code == 200
    bad = alice.post("/settings", {**GOOD, "provider": "equing", "model": "gpt-4"})
    assert bad.status_code == 422 and "does not offer “gpt-4”" in bad.get_data(as_text=True)
    field = alice.get("/settings/models?provider=equing").get_data(as_text=True)
    assert "gpt-3.5-turbo" in field and "gpt-4" not in field


def test_settings_reach_the_provider_and_are_recorded(alice, app, scripted):
    alice.post("/settings", GOOD)
    _, message_id = start_chat(alice)
    final = events(read_stream(alice, message_id))[-1]
    call = scripted.calls[-1]
    assert call["model"] == "script-2"
    assert call["params"] == {"temperature": 0.7, "top_p": 0.9, "presence_penalty": 0.5,
                              "frequency_penalty": -0.5, "max_tokens": 256}
    assert call["messages"][0] == {"role": "system", "content": "You are a pirate."}
    (answer,) = rows(app, Message, id=message_id)
    assert (answer.provider, answer.model) == ("scripted", "script-2")
    assert answer.params == {"temperature": 0.7, "top_p": 0.9, "presence_penalty": 0.5,
                             "frequency_penalty": -0.5, "max_tokens": 256,
                             "system_prompt": "You are a pirate."}
    # The page says which settings applied.
    for shown in ("script-2", "temperature", "0.7", "max_tokens", "256", "You are a pirate."):
        assert shown in final


def test_conversation_override_applies_from_the_next_message(alice, app, scripted):
    conversation_id, first = start_chat(alice)
    read_stream(alice, first)
    response = alice.post(f"/c/{conversation_id}/settings",
                          {**GOOD, "temperature": "1.3", "system_prompt": "Only this chat."})
    assert response.status_code == 200
    read_stream(alice, send(alice, conversation_id, "next"))
    assert scripted.calls[-1]["params"]["temperature"] == 1.3
    assert scripted.calls[-1]["messages"][0]["content"] == "Only this chat."
    assert scripted.calls[0]["params"]["temperature"] == 0.5  # the first answer kept its own
    # Another conversation still uses the person's defaults.
    _, other = start_chat(alice, "elsewhere")
    read_stream(alice, other)
    assert scripted.calls[-1]["params"]["temperature"] == 0.5
    # Back to the defaults.
    assert alice.post(f"/c/{conversation_id}/settings/reset", htmx=False).status_code == 303
    (conversation,) = rows(app, Conversation, id=conversation_id)
    assert conversation.settings is None


def test_conversation_override_rejects_bad_values(alice, app):
    conversation_id, _ = start_chat(alice)
    response = alice.post(f"/c/{conversation_id}/settings", {**GOOD, "top_p": "2"})
    assert response.status_code == 422
    assert "Top P must be between 0 and 1." in response.get_data(as_text=True)
    no_js = alice.post(f"/c/{conversation_id}/settings", {**GOOD, "top_p": "2"}, htmx=False)
    assert no_js.status_code == 422
    page = no_js.get_data(as_text=True)
    assert "Top P must be between 0 and 1." in page and 'id="chat-settings" open' in page
    (conversation,) = rows(app, Conversation, id=conversation_id)
    assert conversation.settings is None


def test_a_provider_no_longer_enabled_falls_back_to_the_default(alice, app, scripted):
    alice.post("/settings", {**GOOD, "provider": "equing", "model": "gpt-3.5-turbo"})
    app_state(app).providers._providers.pop("equing")
    _, message_id = start_chat(alice)
    (answer,) = rows(app, Message, id=message_id)
    assert (answer.provider, answer.model) == ("scripted", "script-1")


def test_a_provider_that_lists_no_models_takes_any_model_id(alice, app, scripted):
    """A server set up without a model list (OPENAI_MODELS empty: any model) takes the id the
    person types, on the defaults page and a conversation's own settings alike."""
    scripted.models = ()
    response = alice.post("/settings", {**GOOD, "model": "llama3"}, htmx=False)
    assert response.status_code == 303
    assert settings_of(app).model == "llama3"
    conversation_id, _ = start_chat(alice, "hello")
    response = alice.post(f"/c/{conversation_id}/settings", {**GOOD, "model": "qwen2.5:7b"},
                          htmx=False)
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Conversation, conversation_id).settings["model"] == "qwen2.5:7b"
