"""Errors that services raise and the API turns into an HTTP status with the envelope.

Services speak in these terms ("not found", "conflict") and know nothing else of HTTP; every message
names what was wrong, because it goes to the client as `info.error`.
"""
from __future__ import annotations


class AppError(Exception):
    status = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(AppError):
    status = 400


class Unauthorized(AppError):
    status = 401


class Forbidden(AppError):
    status = 403


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class TooManyRequests(AppError):
    status = 429


class Unavailable(AppError):
    status = 503
