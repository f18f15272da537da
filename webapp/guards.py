"""Input guards: values no database can store or look up are refused before any view runs.

Two kinds reach the database from a request and make it fail (a 500) instead of answering:

- numbers past the signed 64-bit range: SQLite raises ``OverflowError`` and PostgreSQL an
  out-of-range error. An id that large names nothing, so ``<int:...>`` in a route is bounded and
  answers 404 beyond it; an integer read from the query string or a form with ``type=int``
  falls back to its default, as any other value that is not a usable number does;
- text with a NUL character (PostgreSQL refuses it in text; SQLite's full-text search chokes
  on it) or an unpaired surrogate (neither database can encode it): the request answers 400
  with a message before a view sees it.

And one kind that fails before the database: a JSON body. No view reads JSON, but Flask-WTF
takes a JSON body as the form's data, and a list, a number, deep nesting or a value that is not
text there breaks the form (a 500). A JSON body must have the shape of a form: an object whose
values are text (or lists of text).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, Request, request
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter, ValidationError

#: The largest id any database here can hold (BIGINT, SQLite INTEGER).
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

#: Characters no database here can store: NUL, and UTF-16 surrogates (never valid alone).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

JSON_MESSAGE = ("A JSON body must be an object whose values are text, like the fields of a "
                "form.")

MESSAGE = ("The request contains a character that cannot be stored (a NUL character or a "
           "broken Unicode sequence): remove it and try again.")


class Int64Converter(IntegerConverter):
    """``<int:...>`` whose values fit the database's 64-bit ids; a larger number matches no
    route (404), as an id that does not exist would."""

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = INT64_MAX, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> Any:
        # Python's int() refuses more than 4,300 digits with a ValueError (a 500 here), and
        # 20 significant digits are already past the range: refuse by length first.
        if len(value.lstrip("-").lstrip("0")) > 19:
            raise ValidationError()
        return super().to_python(value)


class BoundedMultiDict(ImmutableMultiDict):
    """Query and form values whose ``get(..., type=int)`` keeps to the 64-bit range: a larger
    number is treated like any other unusable value (the default), not handed to the database."""

    def get(self, key, default=None, type=None):
        value = super().get(key, default, type)
        if type is int and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            return default
        return value


class GuardedRequest(Request):
    """The app's request: query and form values come as :class:`BoundedMultiDict`."""

    parameter_storage_class = BoundedMultiDict


def unstorable_input() -> str | None:
    """Where the current request carries a character no database can store (the path, a
    query or form field, an uploaded file's name), or None when it carries none.

    A scan of the few strings a request has: cheap enough for every chat turn and stream.
    """
    if UNSTORABLE.search(request.path):
        return "the address"
    for source, values in (("the query", request.args), ("the form", request.form)):
        for key, value in values.items(multi=True):
            if UNSTORABLE.search(key) or UNSTORABLE.search(value):
                return f"{source} field {key!r}"[:80]
    for key, upload in request.files.items(multi=True):
        if UNSTORABLE.search(key) or (upload.filename and UNSTORABLE.search(upload.filename)):
            return "an uploaded file's name"
    return None


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
    if not request.is_json:
        return None
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
            if UNSTORABLE.search(key) or UNSTORABLE.search(item):
                return f"{MESSAGE} (In the JSON field {key!r}.)"[:300]
    return None


def init_app(app: Flask) -> None:
    """Bound ``<int:...>`` and integer arguments, and refuse unstorable text with a 400.

    Call before the blueprints are registered: their rules take the converter at that time,
    and the check must run before the views' own ``before_request`` hooks.
    """
    app.url_map.converters["int"] = Int64Converter
    app.request_class = GuardedRequest

    from .errors import render_error

    @app.before_request
    def refuse_unstorable_input():
        if request.routing_exception is not None:
            return None  # a 404 or 405 answers first, as it would without the guard
        where = unstorable_input()
        if where is not None:
            return render_error(400, f"{MESSAGE} (In {where}.)")
        problem = json_problem()
        if problem is not None:
            return render_error(400, problem)
        return None
