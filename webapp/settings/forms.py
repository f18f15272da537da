"""The generation-settings form, used for a person's defaults and a conversation's own.

Its bounds, lengths and provider checks come from ``schema``, the same rules the import and
shared links apply to stored settings.
"""

from __future__ import annotations

import math

from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from .schema import (
    NUMBERS,
    SYSTEM_PROMPT_CHARS,
    Invalid,
    check_characters,
    check_model,
    check_provider,
)

__all__ = ["GenerationForm"]


class NumberField(FloatField):
    """A float field whose errors are in words, and that refuses NaN and infinity."""

    def process_formdata(self, valuelist):
        if not valuelist or valuelist[0].strip() == "":
            self.data = None
            return
        try:
            value = float(valuelist[0].strip().replace(",", "."))
        except ValueError:
            self.data = None
            raise ValueError("Enter a number, like 0.7.") from None
        if not math.isfinite(value):
            self.data = None
            raise ValueError("Enter a finite number.")
        self.data = value


class WholeNumberField(IntegerField):
    """An integer field whose errors are in words."""

    def process_formdata(self, valuelist):
        if not valuelist or valuelist[0].strip() == "":
            self.data = None
            return
        try:
            self.data = int(valuelist[0].strip())
        except ValueError:
            self.data = None
            raise ValueError("Enter a whole number, like 512, or leave it empty.") from None


def _between(name: str) -> NumberRange:
    """The schema's bounds of setting ``name``, as a form validator with the same message."""
    number = NUMBERS[name]
    return NumberRange(number.low, number.high, message=number.message)


def _storable(form, field) -> None:
    """Refuse characters the database cannot hold (NUL), as the import does."""
    try:
        check_characters(field.data or "", field.label.text)
    except Invalid as exc:
        raise ValidationError(f"{exc}.") from None


class GenerationForm(FlaskForm):
    """Provider, model, sampling parameters and system prompt.

    Call ``set_choices(registry)`` before validating: the provider list comes from the
    installation's configuration, and a model must be one its provider offers.
    """

    provider = SelectField("Provider", validate_choice=False)
    model = SelectField("Model", validate_choice=False)
    temperature = NumberField("Temperature", validators=[
        InputRequired("Give a temperature."), _between("temperature")],
        description="0 is focused and repeatable, 2 is very random.")
    top_p = NumberField("Top P", validators=[
        InputRequired("Give a top P."), _between("top_p")],
        description="Sample only from the most likely tokens that add up to this share.")
    presence_penalty = NumberField("Presence penalty", validators=[
        InputRequired("Give a presence penalty."), _between("presence_penalty")],
        description="Above 0 nudges the model towards new topics.")
    frequency_penalty = NumberField("Frequency penalty", validators=[
        InputRequired("Give a frequency penalty."), _between("frequency_penalty")],
        description="Above 0 makes the model repeat itself less.")
    max_tokens = WholeNumberField("Max tokens", validators=[
        Optional(), _between("max_tokens")],
        description="Longest answer in tokens; empty for the provider's own limit.")
    system_prompt = TextAreaField("System prompt", validators=[
        Length(max=SYSTEM_PROMPT_CHARS,
               message=f"The system prompt is too long (at most {SYSTEM_PROMPT_CHARS:,} "
                       "characters)."), _storable],
        description="Instructions the model sees before every conversation.")

    def set_choices(self, registry, provider: str | None = None) -> None:
        """Fill the provider list, and the model list of the chosen (or given) provider."""
        self._registry = registry
        self.provider.choices = [(p.name, p.label) for p in registry]
        chosen = provider or self.provider.data or registry.default
        if chosen not in registry:
            chosen = registry.default
        self.model.choices = [(m, m) for m in registry.models(chosen)]

    def validate_provider(self, field):
        # A form always names one: "" is only a stored value's "the default".
        try:
            check_provider(field.data or "", self._registry, allow_default=False)
        except Invalid as exc:
            raise ValidationError(str(exc)) from None

    def validate_model(self, field):
        if not self.provider.data or self.provider.data not in self._registry:
            return
        try:
            check_model(field.data or "", self.provider.data, self._registry,
                        allow_default=False)
        except Invalid as exc:
            raise ValidationError(str(exc)) from None

    def values(self) -> dict:
        """The validated values, as stored."""
        return {
            "provider": self.provider.data, "model": self.model.data,
            "temperature": self.temperature.data, "top_p": self.top_p.data,
            "presence_penalty": self.presence_penalty.data,
            "frequency_penalty": self.frequency_penalty.data,
            "max_tokens": self.max_tokens.data,
            "system_prompt": (self.system_prompt.data or "").strip(),
        }
