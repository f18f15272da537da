"""Input guards: values no database can store or look up are refused before any view runs.

Two kinds reach the database from a request and make it fail (a 500) instead of answering:

- numbers past what an id column holds: SQLite raises ``OverflowError`` past 2^63, and
  PostgreSQL an out-of-range error past 2^31 (ids are ``INTEGER`` there). An id that large names
  nothing, so ``<int:...>`` in a route is bounded by the schema's id columns and answers 404
  beyond it; an integer read from the query string or a form with ``type=int`` (a page number)
  falls back to its default past 2^31, as any other value that is not a usable number does;
- text with a NUL character (PostgreSQL refuses it in text; SQLite's full-text search chokes
  on it) or an unpaired surrogate (neither database can encode it): the request answers 400
  with a message before a view sees it.

And one kind that fails before the database: a JSON body. No view reads JSON, but Flask-WTF
takes a JSON body as the form's data, and a list, a number, deep nesting or a value that is not
text there breaks the form (a 500). A JSON body must have the shape of a form: an object whose
values are text (or lists of text).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, abort, request
from sqlalchemy import BigInteger
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, ValidationError

from . import models  # noqa: F401 - the tables whose id columns bound <int:...>
from .errors import render_error
from .extensions import db

#: The largest id a ``BigInteger`` column holds, and an ``Integer`` one (32-bit on PostgreSQL).
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1

#: Views that answer a NUL in their fields themselves, next to the field (422): the account
#: forms, and the generation-settings form (issue 14 point 4); sign-in also cleans ``next=``
#: to a path on this site. None of it is stored.
SELF_CHECKED = frozenset({"auth.login", "auth.signup", "auth.setup", "settings.defaults",
                          "manage.conversation_settings"})

#: Views whose JSON body is not a form's: the API reads and checks its own (and answers in
#: OpenAI's shape, saying which field is wrong).
OWN_JSON = frozenset({"api.chat_completions"})

MESSAGE = ("The request contains a character that cannot be stored (a NUL character or a "
           "broken Unicode sequence): remove it and try again.")
JSON_MESSAGE = ("A JSON body must be an object whose values are text, like the fields of a "
                "form.")


def unstorable(text: str) -> bool:
    """Whether ``text`` holds what no database here can store: NUL, or a lone surrogate.

    C-speed checks, not a regular expression (a regex scan of a 32,000-character message took
    180-330 µs): NUL by ``in``; ASCII text has no surrogates; other text must encode as UTF-8.
    """
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def largest_id() -> int:
    """The largest id every table's primary key can hold: 2^31 - 1 while any is ``Integer``
    (PostgreSQL's INTEGER), 2^63 - 1 once all are ``BigInteger``."""
    columns = [column for table in db.metadata.tables.values()
               for column in table.primary_key.columns]
    return INT64_MAX if all(isinstance(c.type, BigInteger) for c in columns) else INT32_MAX


class IdConverter(IntegerConverter):
    """``<int:...>`` whose values fit the database's id columns; a larger number matches no
    route (404), as an id that does not exist would."""

    #: Set by :func:`init_app` from the schema.
    largest = INT64_MAX

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min,
                         max=self.largest if max is None else max, signed=signed)

    def to_python(self, value: str) -> Any:
        # Python's int() refuses more than 4,300 digits with a ValueError (a 500 here), and
        # 20 significant digits are already past the range: refuse by length first.
        if len(value.lstrip("-").lstrip("0")) > 19:
            raise ValidationError()
        return super().to_python(value)


class BoundedMultiDict(ImmutableMultiDict):
    """Query and form values whose ``get(..., type=int)`` keeps to the 32-bit range (ids, page
    numbers: a page times its size stays far inside SQLite's 64 bits): a larger number is
    treated like any other unusable value (the default), not handed to the database."""

    def get(self, key, default=None, type=None):
        value = super().get(key, default, type)
        if type is int and isinstance(value, int) and not -INT32_MAX <= value <= INT32_MAX:
            return default
        return value


class RefusedInput(BadRequest):
    """A request refused for a value no database can store: 400 with the reason in words."""


def field_problem(source: str, values) -> str | None:
    """Why the fields in ``values`` cannot be taken (a name or value no database can store),
    or None: a scan of the few strings a request has, cheap enough for every chat turn."""
    for key, value in values.items(multi=True):
        if unstorable(key) or unstorable(value):
            return f"{MESSAGE} (In {source} field {key!r}.)"[:300]
    return None


class GuardedRequest(Request):
    """The app's request: query and form values come as :class:`BoundedMultiDict`, and the
    form is checked for unstorable text when it is parsed.

    The check runs where the form is read, not before every view: a view may first raise its
    own body limit (the import does) and only then parse the form.
    """

    parameter_storage_class = BoundedMultiDict

    def _load_form_data(self) -> None:
        super()._load_form_data()
        if self.url_rule is not None and self.url_rule.endpoint in SELF_CHECKED:
            return
        problem = field_problem("the form", self.form)
        if problem is None:
            for key, upload in self.files.items(multi=True):
                if unstorable(key) or (upload.filename and unstorable(upload.filename)):
                    problem = f"{MESSAGE} (In an uploaded file's name.)"
        if problem is not None:
            raise RefusedInput(problem)


def _form_shaped(data: Any) -> bool:
    """Whether a parsed JSON body is what a form could have sent: text values by name."""
    if not isinstance(data, dict):
        return False
    for value in data.values():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(item, str) for item in values):
            return False
    return True


def json_problem() -> str | None:
    """What is wrong with the request's JSON body, or None when it has none or a usable one."""
    if not request.is_json or not request.get_data(cache=True):
        return None  # (a body-less request that names JSON as its type has nothing to read)
    try:
        data = request.get_json()
    except BadRequest:
        return "The JSON body could not be read."
    except RecursionError:
        return "The JSON body is nested too deeply."
    if not _form_shaped(data):
        return JSON_MESSAGE
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if unstorable(key) or unstorable(item):
                return f"{MESSAGE} (In the JSON field {key!r}.)"[:300]
    return None


def init_app(app: Flask) -> None:
    """Bound ``<int:...>`` and integer arguments, and refuse unstorable text with a 400.

    Call before the blueprints are registered: their rules take the converter at that time,
    and the check must run before the views' own ``before_request`` hooks.
    """
    IdConverter.largest = largest_id()
    app.url_map.converters["int"] = IdConverter
    app.request_class = GuardedRequest

    @app.before_request
    def refuse_unstorable_input():
        if request.routing_exception is not None:
            return None  # a 404 or 405 answers first, as it would without the guard
        if unstorable(request.path):
            abort(404)  # no id, token or file name holds such a character: nothing is here
        problem = (None if request.endpoint in SELF_CHECKED
                   else field_problem("the query", request.args)) or \
            (None if request.endpoint in OWN_JSON else json_problem())
        if problem is not None:
            return render_error(400, problem)
        return None

    @app.errorhandler(RefusedInput)
    def refused_input(error: RefusedInput):
        return render_error(400, error.description)
