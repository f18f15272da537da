"""Account forms (Flask-WTF: validated on the server, CSRF-protected)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError

USERNAME = Regexp(r"^[A-Za-z0-9_.-]+$",
                  message="Use letters, digits, dots, dashes and underscores only.")


def storable(form, field) -> None:
    """Refuse NUL, which PostgreSQL cannot store or even compare with (a 500 there). Lone
    surrogates cannot arrive here: form decoding replaces undecodable bytes."""
    if "\x00" in (field.data or ""):
        raise ValidationError("This cannot hold a NUL character.")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64), storable])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256), storable])
    remember = BooleanField("Keep me signed in")


class SignupForm(FlaskForm):
    username = StringField("Username", validators=[
        DataRequired(), Length(min=2, max=64), USERNAME])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=8, max=256, message="Use 8 to 256 characters."), storable])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The two passwords differ.")])
