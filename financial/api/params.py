"""Query parameters: declared once with webargs, validated strictly, documented in Swagger from the same
declaration. A bad or unknown parameter is a 400 whose message names it and quotes what was sent.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Callable, Mapping, NoReturn

import werkzeug.exceptions
from flask import request
from flask_restx import Model, Namespace, fields as doc_fields
from marshmallow import RAISE, Schema, ValidationError, missing
from webargs import fields, validate
from webargs.flaskparser import FlaskParser

import lib.symbols
from financial.edge.query import INTEGER_PARAMETERS, ascii_integer
from financial.errors import BadRequest
from financial.paging import Page

DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: \d would take any script's
MAX_PAGE = 10_000_000
_DECLARED: set[str] = set()  # every parameter name declared so far (see `schema`)


class StrictDate(fields.Field):
    """A calendar date written exactly as YYYY-MM-DD."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping | None, **kwargs: Any) -> dt.date:
        if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
            raise ValidationError("must be a date as YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValidationError("is not a real calendar date") from None


class AsciiInteger(fields.Integer):
    """A whole number written in ASCII digits (an optional sign, surrounding spaces): the cache key reads
    integers by the same rule (`financial.edge.query`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping | None, **kwargs: Any) -> int:
        number = ascii_integer(value) if isinstance(value, str) else None
        if number is None:
            raise self.make_error("invalid")
        return number


class Parsed(fields.Field):
    """Text turned into a value by `parse`, whose ValueError says what was wrong (e.g. a window like 7d)."""

    def __init__(self, parse: Callable[[str], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parse = parse

    def _deserialize(self, value: Any, attr: str | None, data: Mapping | None, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("must be text")
        try:
            return self.parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class _Parser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION = {"query": RAISE}

    def handle_error(self, error: ValidationError, req: Any, schema: Any, *, error_status_code: Any,
                     error_headers: Any) -> NoReturn:
        raise BadRequest(describe(error.messages))


parser = _Parser()


def describe(messages: Any) -> str:
    """One line naming each bad parameter: "limit: must be between 1 and 1000 (got '0')"."""
    problems = []
    for name, texts in _flatten(messages):
        sent = request.args.getlist(name) if name in request.args else None
        if texts == ["Unknown field."]:
            problems.append(f"unknown parameter {quoted(name)}")
            continue
        detail = "; ".join(str(t).rstrip(".") for t in texts)
        got = f" (got {quoted(sent[0])})" if sent else ""
        problems.append(f"{name}: {detail}{got}")
    return "; ".join(problems) or "invalid parameters"


def quoted(value: str, limit: int = 60) -> str:
    """The value as sent, shortened when long: a message names what was wrong, it need not repeat it."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, list]]:
    if isinstance(messages, dict):
        if set(messages) <= {"query", "json", "form", "view_args", "headers", "path"}:
            return [item for value in messages.values() for item in _flatten(value)]
        return [(str(key), value if isinstance(value, list) else [value]) for key, value in messages.items()]
    return [("", messages if isinstance(messages, list) else [messages])]


def parse_body(body: Body) -> dict[str, Any]:
    """The JSON object of the request body, validated by `body_schema` (unknown fields refused). Every
    problem is a 400 that names the field; values are never quoted back, since a body may hold a password.
    (A body over MAX_CONTENT_LENGTH is refused with 413 before it is read.)"""
    if not request.is_json:
        raise BadRequest("the body must be a JSON object, sent with Content-Type: application/json")
    try:
        data = request.get_json()
    except werkzeug.exceptions.BadRequest:  # unreadable JSON (a body too large is a 413, raised as it is)
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:  # thousands of nested brackets: valid JSON, but not a body anyone means
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, not {_json_type(data)}")
    try:
        loaded = body.schema.load(data, unknown=RAISE)
    except ValidationError as error:
        problems = []
        for name, texts in _flatten(error.messages):
            if texts == ["Unknown field."]:
                problems.append(f"unknown field {quoted(name)}")
            else:
                problems.append(f"{name}: " + "; ".join(str(t).rstrip(".") for t in texts))
        raise BadRequest("; ".join(problems) or "invalid body") from None
    for name, value in loaded.items():
        # JSON's \ud800 escapes decode to lone surrogates, which no database, hash or e-mail can encode.
        if isinstance(value, str) and not _encodable(value):
            raise BadRequest(f"{name}: must be valid Unicode text (it holds a lone surrogate)")
    return loaded


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "null")


def text(description: str | None, *, max_length: int, example: str, min_length: int | None = None,
         pattern: str | None = None) -> fields.Field:
    """A required JSON string field of at most `max_length` characters (a number or null is refused).
    `min_length` and `pattern` are documented only: the service checks them, with its own messages."""
    return fields.String(required=True, validate=validate.Length(max=max_length, error=f"must be at most "
                                                                                       f"{max_length} characters"),
                         metadata={"description": description, "example": example, "max_length": max_length,
                                   "min_length": min_length, "pattern": pattern},
                         error_messages={"required": "is required", "invalid": "must be a string",
                                         "null": "must be a string"})


class Body:
    """A JSON request body declared once: validated by the schema of its fields (`parse_body`) and
    documented by the Flask-RESTX model built from the same fields (`@ns.expect(body.model)`). The model is
    strict (`additionalProperties: false`), as the schema is: an unknown field is a 400."""

    def __init__(self, ns: Namespace, name: str, declared: dict[str, fields.Field]) -> None:
        self.schema = schema(declared)
        self.model: Model = ns.model(name, {
            field_name: doc_fields.String(required=field.required, **{
                key: value for key, value in field.metadata.items() if value is not None})
            for field_name, field in declared.items()}, strict=True)


def schema(declared: dict[str, fields.Field]) -> Schema:
    """A schema instance built once at import (building one per request costs more than the request).
    Its integer parameters are registered for the cache key, which normalises them by name: a name is an
    integer everywhere in the API or nowhere."""
    for name, field in declared.items():
        if isinstance(field, fields.Integer) != (name in INTEGER_PARAMETERS) and name in _DECLARED:
            raise TypeError(f"parameter {name!r} is declared as an integer in one place and not in another")
        _DECLARED.add(name)
        if isinstance(field, fields.Integer):
            INTEGER_PARAMETERS.add(name)
    instance = Schema.from_dict(declared)()
    instance.declared_for_docs = declared  # type: ignore[attr-defined]  # read by doc_params
    return instance


def parse_query(query_schema: Schema) -> dict[str, Any]:
    return parser.parse(query_schema, location="query")


def date(description: str, *, required: bool = False) -> fields.Field:
    return StrictDate(required=required, metadata={"description": description, "format": "date",
                                                   "pattern": f"^{DATE_PATTERN.pattern}$"},
                      error_messages={"required": "is required"})


def integer(description: str, *, default: int, low: int, high: int | None = None) -> fields.Field:
    bound = validate.Range(min=low, max=high, error=f"must be between {low} and {high}" if high
                           else f"must be at least {low}")
    return AsciiInteger(load_default=default, validate=bound,
                        metadata={"description": description, "minimum": low, "maximum": high},
                        error_messages={"invalid": "must be a whole number"})


def symbol(description: str, *, required: bool = False) -> fields.Field:
    return fields.String(required=required,
                         validate=validate.Regexp(lib.symbols.PATTERN, error="is not a valid symbol"),
                         metadata={"description": description, "pattern": lib.symbols.PATTERN},
                         error_messages={"required": "is required"})


def paging(description: str, *, default: int, high: int) -> dict[str, fields.Field]:
    """The `limit` and `page` parameters of a list (see `page`)."""
    return {"limit": integer(description, default=default, low=1, high=high),
            "page": integer("Page number, from 1", default=1, low=1, high=MAX_PAGE)}


def page(args: dict[str, Any]) -> Page:
    """The page that parsed `limit` and `page` parameters ask for; they are taken out of `args`."""
    return Page(args.pop("page"), args.pop("limit"))


def choice(description: str, choices: list[str], *, default: str | None) -> fields.Field:
    """One of `choices`; absent, `default` (None: left out of the parsed arguments)."""
    one_of = validate.OneOf(choices, error=f"must be one of {', '.join(choices)}")
    return fields.String(load_default=missing if default is None else default, validate=one_of,
                         metadata={"description": description, "enum": choices})


def parsed(description: str, parse: Callable[[str], Any], *, default: str, **documented: Any) -> fields.Field:
    """A text parameter read by `parse`; `default` is given as a user would write it. `documented` says in
    Swagger terms (`pattern`, `enum`) which texts `parse` accepts."""
    return Parsed(parse, load_default=parse(default),
                  metadata={"description": description, "default": default, **documented})


def doc_params(query_schema: Schema) -> dict[str, dict]:
    """The Swagger description of a query schema's parameters."""
    documented = {}
    for name, field in query_schema.declared_for_docs.items():  # type: ignore[attr-defined]
        meta = dict(field.metadata)
        param = {"in": "query", "description": meta.pop("description", ""), "required": field.required,
                 "type": "integer" if isinstance(field, fields.Integer) else "string"}
        if field.load_default is not missing and not callable(field.load_default):
            param["default"] = field.load_default
        param.update({key: value for key, value in meta.items() if value is not None})
        documented[name] = param
    return documented
