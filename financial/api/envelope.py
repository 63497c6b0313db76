"""The response envelope of every API answer, success or error, and its Swagger models.

    {"data": ..., "info": {"error": ""}}                      success
    {"data": [...], "info": {...}, "pagination": {...}}       list
    {"data": null, "info": {"error": "what was wrong"}}        error

Bodies are serialized once and cached as bytes, so a cache hit costs no marshalling.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Callable

from flask import Response, current_app, request
from flask_restx import Model, Namespace, fields
from marshmallow import Schema
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from financial import breaker, errors
from financial.api import params
from financial.edge.response_cache import cached_answer, etag_matches, revalidation_headers
from financial.paging import Page

log = logging.getLogger(__name__)

INFO = Model("Info", {"error": fields.String(description="Empty on success, else what was wrong", example="")})
PAGINATION = Model("Pagination", {
    "count": fields.Integer(description="All matching records", example=20),
    "page": fields.Integer(example=2),
    "limit": fields.Integer(example=3),
    "pages": fields.Integer(description="ceil(count / limit)", example=7),
})


def nullable(field: fields.Raw) -> fields.Raw:
    """Document a response field that may be null. Swagger 2.0 has no `nullable`; `x-nullable` is the
    extension its tools (and schemathesis's response checks) understand."""
    schema = field.schema
    field.schema = lambda: {**schema(), "x-nullable": True}
    return field


ERROR = Model("Error", {
    "data": nullable(fields.Raw(description="Always null on errors", example=None)),
    "info": fields.Nested(INFO),
})
ERROR_DESCRIPTIONS = {
    400: "Bad input; info.error names the parameter",
    401: "Not signed in: no token, or one that is malformed, unknown, expired or revoked",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "The request body is too large",
    429: "Rate limited; Retry-After says when to try again",
    503: "Database or cache unavailable",
}


def namespace(name: str, description: str, path: str) -> Namespace:
    """A namespace with the shared envelope models registered."""
    ns = Namespace(name, description=description, path=path)
    for model in (INFO, PAGINATION, ERROR):
        ns.add_model(model.name, model)
    return ns


def envelope_model(ns: Namespace, name: str, data: fields.Raw, *, paginated: bool = False) -> Model:
    body = {"data": data, "info": fields.Nested(INFO)}
    if paginated:
        body["pagination"] = fields.Nested(PAGINATION)
    return ns.model(name, body)


def responds(ns: Namespace, *codes: int) -> Callable:
    """Document the error answers an operation can give (503 on every one)."""
    def decorate(func: Callable) -> Callable:
        for code in sorted({*codes, 503}):
            func = ns.response(code, ERROR_DESCRIPTIONS[code], ERROR)(func)
        return func
    return decorate


# -- serialization ----------------------------------------------------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def iso_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z; naive values are stored UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


def dumps(body: Any) -> bytes:
    return json.dumps(body, default=_default, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def envelope(data: Any, pagination: dict | None = None) -> dict:
    body = {"data": data, "info": {"error": ""}}
    if pagination is not None:
        body["pagination"] = pagination
    return body


def paginated(items: list, count: int, page: Page) -> dict:
    return envelope(items, page.describe(count))


def json_response(body: bytes | dict, status: int = 200, headers: dict | None = None) -> Response:
    if not isinstance(body, bytes):
        body = dumps(body)
    return current_app.response_class(body, status=status, mimetype="application/json", headers=headers)


def no_content() -> Response:
    """204 No Content: no body, so no Content-Type either."""
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]
    return response


def cached_query(query_schema: Schema, build: Callable[[dict], dict]) -> Response:
    """The JSON response of `build(parsed query)`, from the response cache while the data has not changed
    (financial.edge.response_cache). Only public GET operations use it: their answers are the same for
    everyone."""
    answer = cached_answer(lambda: dumps(build(params.parse_query(query_schema))))
    if answer.etag is None:
        return json_response(answer.body)
    if etag_matches(request.headers.get("If-None-Match"), answer.etag):
        response = current_app.response_class(status=304)
        del response.headers["Content-Type"]
    else:
        response = json_response(answer.body)
    response.headers.extend(revalidation_headers(answer.etag))
    return response


# -- errors -----------------------------------------------------------------------------------------

def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    return json_response({"data": None, "info": {"error": message}}, status, headers)


def handle_exception(error: Exception) -> Response:
    """Turn any exception into the envelope: known errors keep their status, the rest are a 500 that
    is logged with its traceback but never shows it."""
    if isinstance(error, errors.AppError):
        return error_response(error.status, error.message, error.headers)
    if isinstance(error, HTTPException):
        return _http_error(error)
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)) or (
            isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated):
        log.warning("database unavailable: %s", type(error.orig if hasattr(error, "orig") else error).__name__)
        unavailable = breaker.unavailable()
        return error_response(unavailable.status, unavailable.message, unavailable.headers)
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal error; it has been logged")


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    headers = {}
    if status == 404:
        message = f"not found: {request.path}"
    elif status == 405:
        valid = getattr(error, "valid_methods", None) or []  # a MethodNotAllowed's
        allowed = sorted(m for m in valid if m not in ("HEAD", "OPTIONS"))
        message = f"method {request.method} not allowed on {request.path}; allowed: {', '.join(allowed)}"
        headers["Allow"] = ", ".join(valid)
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is too large; at most {limit} bytes" if limit else "the request body is too large"
    else:
        message = error.description or error.name
    if status >= 500:
        log.error("HTTP %s on %s %s: %s", status, request.method, request.path, message)
    return error_response(status, message, headers)
