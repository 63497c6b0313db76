"""gunicorn's worker class (financial.serving.JsonThreadWorker) answering what it catches itself, in-process."""
from __future__ import annotations

import json
import os
import socket

from gunicorn.config import Config
from gunicorn.glogging import Logger

from financial.serving import JsonThreadWorker


def answer_to(error: Exception) -> tuple[bytes, dict]:
    config = Config()
    worker = JsonThreadWorker(0, os.getpid(), [], None, 30, config, Logger(config))
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        worker.handle_error(None, server_side, ("127.0.0.1", 5), error)
        server_side.close()
        head, body = client_side.recv(65536).split(b"\r\n\r\n", 1)
    return head, json.loads(body)


def test_an_error_inside_gunicorn_is_a_500_envelope_without_its_text():
    head, body = answer_to(RuntimeError("secret detail"))
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"Content-Type: application/json" in head
    assert body == {"data": None, "info": {"error": "internal error; it has been logged"}}


def test_a_refused_request_quotes_at_most_200_characters_of_the_complaint():
    from gunicorn.http.errors import InvalidRequestMethod
    head, body = answer_to(InvalidRequestMethod("X" * 1000))
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    quoted = ("Invalid HTTP method: '" + "X" * 1000)[:200]
    assert body == {"data": None, "info": {"error": f"bad request: {quoted}..."}}
