"""The HTTP servers around the app: gunicorn in production (conf/gunicorn.conf.py names the two classes
below) and werkzeug's in development (`python app.py`).

What a server answers itself, before a request reaches Flask (a request line or headers too long, a
malformed request), is the API's JSON envelope like every other answer, and gunicorn's log lines go
through the app's formatter (JSON in production), so every line an operator reads is one JSON object.

    JsonLogger          gunicorn's `logger_class`: its handlers use the app's formatter and secret filter
    JsonThreadWorker    gunicorn's `worker_class`: the threaded worker, its own error answers as the envelope
    JsonRequestHandler  the development server's request handler, its error answers as the envelope
    CappedRequest       Flask's request class: a body sent without Content-Length (chunked) that runs past
                        MAX_CONTENT_LENGTH is a 413, where werkzeug would silently cut it at the limit
"""
from __future__ import annotations

import http
import ssl
from typing import Any

from flask import Request
from gunicorn import util
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import WSGIRequestHandler
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from financial.api.envelope import dumps
from financial.config import Settings, StartupError
from financial.edge.policy import API_HEADERS
from financial.logs import RedactingFilter, console_formatter, secrets_of

_DETAIL_LIMIT = 200  # characters of a parser's complaint quoted back (it may quote the request itself)
# The statuses of gunicorn's parse errors that are not a plain 400 (its own handle_error's choices).
_STATUS = ((errors.LimitRequestLine, 414), (errors.LimitRequestHeaders, 431), (errors.ExpectationFailed, 417),
           (errors.ForbiddenProxyRequest, 403), (errors.UnsupportedTransferCoding, 501),
           (errors.ConfigurationProblem, 500), (ssl.SSLError, 403))


def error_answer(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response carrying the error envelope; the connection is closed after it."""
    body = dumps({"data": None, "info": {"error": message}})
    head = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in API_HEADERS.items())]
    return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body


def _detail(error: object) -> str:
    text = str(error)
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "..."


def _client_error(exc: BaseException) -> bool:
    """A request gunicorn could not parse or accept, rather than a failure of its own or of the app's answer
    (a header the app tried to send that is not valid)."""
    if isinstance(exc, (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName)):
        return False
    return isinstance(exc, (errors.ParseException, ssl.SSLError))


class JsonLogger(Logger):
    """gunicorn's logger with the app's formatter: JSON lines in production, the app's text lines otherwise."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        try:
            settings = Settings.from_env()
            production, secrets = settings.is_production, secrets_of(settings)
        except StartupError:  # the app refuses to start and says why; until then, log as production does
            production, secrets = True, []
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.setFormatter(console_formatter(production))
            handler.addFilter(RedactingFilter(secrets))


class JsonThreadWorker(ThreadWorker):
    """gunicorn's threaded worker (requests of one process do not wait for each other's CPU-bound work, such
    as password hashing), whose own answers to requests it cannot parse are the JSON envelope."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        addr = addr or ("", -1)  # a unix socket has no address
        if _client_error(exc):
            self.log.warning("Invalid request from ip=%s: %s", addr[0], exc)
            status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
            message = self._message(status, exc)
        else:
            where = f"{req.method} {req.uri}" if hasattr(req, "method") and hasattr(req, "uri") else "(no request)"
            self.log.exception("Error handling request %s", where)
            status, message = 500, "internal error; it has been logged"
        try:
            util.write_nonblock(client, error_answer(status, message))
        except Exception:  # the client is gone: nothing to answer
            self.log.debug("Failed to send error message.")

    def _message(self, status: int, exc: BaseException) -> str:
        if status == 414:
            return f"the request line (method, URL and version) is longer than {self.cfg.limit_request_line} bytes"
        if status == 431:
            return (f"the request headers are too large: at most {self.cfg.limit_request_fields} headers of "
                    f"{self.cfg.limit_request_field_size} bytes each")
        return f"bad request: {_detail(exc)}" if status == 400 else _detail(exc)


class JsonRequestHandler(WSGIRequestHandler):
    """The development server's handler; http.server answers requests it cannot parse with an HTML page."""

    _MESSAGES = {414: "the request line (method, URL and version) is longer than 65536 bytes",
                 431: "the request headers are too large: at most 100 headers of 65536 bytes each"}

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.log_error("code %d, message %s", code, message)
        text = self._MESSAGES.get(code) or f"bad request: {_detail(message or http.HTTPStatus(code).phrase)}"
        self.wfile.write(error_answer(code, text))
        self.close_connection = True


class _CappedStream(LimitedStream):
    """A body stream that raises 413 once more than `cap` bytes arrive (it reads one byte past the cap to
    know; werkzeug's maximum stops reading at the cap, so a longer body looked complete, and truncated)."""

    def __init__(self, stream: Any, cap: int) -> None:
        super().__init__(stream, cap + 1, is_max=True)
        self.cap = cap

    def readinto(self, buffer: Any) -> int | None:
        count = super().readinto(buffer)
        if self._pos > self.cap:
            raise RequestEntityTooLarge()
        return count


class CappedRequest(Request):
    """Flask's request, with the body limit applied while a body of unannounced length is read."""

    @cached_property
    def stream(self) -> Any:
        cap = self.max_content_length
        if cap is not None and self.content_length is None and "wsgi.input_terminated" in self.environ:
            return _CappedStream(self.environ["wsgi.input"], cap)
        return get_input_stream(self.environ, max_content_length=cap)
