"""The generation-settings form, used for a person's defaults and a conversation's own."""

from __future__ import annotations

import math

from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

SYSTEM_PROMPT_CHARS = 8000


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


def _between(low: float, high: float, name: str) -> NumberRange:
    return NumberRange(low, high, message=f"{name} must be between {low:g} and {high:g}.")


class GenerationForm(FlaskForm):
    """Provider, model, sampling parameters and system prompt.

    Call ``set_choices(registry)`` before validating: the provider list comes from the
    installation's configuration, and a model must be one its provider offers.
    """

    provider = SelectField("Provider", validate_choice=False)
    model = SelectField("Model", validate_choice=False)
    temperature = NumberField("Temperature", validators=[
        InputRequired("Give a temperature."), _between(0, 2, "Temperature")],
        description="0 is focused and repeatable, 2 is very random.")
    top_p = NumberField("Top P", validators=[
        InputRequired("Give a top P."), _between(0, 1, "Top P")],
        description="Sample only from the most likely tokens that add up to this share.")
    presence_penalty = NumberField("Presence penalty", validators=[
        InputRequired("Give a presence penalty."), _between(-2, 2, "Presence penalty")],
        description="Above 0 nudges the model towards new topics.")
    frequency_penalty = NumberField("Frequency penalty", validators=[
        InputRequired("Give a frequency penalty."), _between(-2, 2, "Frequency penalty")],
        description="Above 0 makes the model repeat itself less.")
    max_tokens = WholeNumberField("Max tokens", validators=[
        Optional(), NumberRange(1, 32768, message="Max tokens must be between 1 and 32768.")],
        description="Longest answer in tokens; empty for the provider's own limit.")
    system_prompt = TextAreaField("System prompt", validators=[
        Length(max=SYSTEM_PROMPT_CHARS,
               message=f"The system prompt is too long (at most {SYSTEM_PROMPT_CHARS:,} "
                       "characters).")],
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
        if field.data not in self._registry:
            raise ValidationError("Choose one of the providers in the list.")

    def validate_model(self, field):
        if self.provider.data not in self._registry:
            return
        offered = self._registry.models(self.provider.data)
        if field.data not in offered:
            label = self._registry.get(self.provider.data).label
            raise ValidationError(f"{label} does not offer “{field.data}”; "
                                  f"choose one of: {', '.join(offered) or 'none'}.")

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
