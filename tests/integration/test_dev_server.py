"""The development server (`python app.py`, werkzeug's) answers what it refuses itself with the JSON envelope
too, and a request body of unannounced length (chunked) is held to the 64 KiB limit while it is read, on
every server and stack."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Iterator

import pytest
import requests

from tests.conftest import base_settings, env_for
from tests.integration.test_gunicorn import (LIMIT_BODY, ROOT, assert_envelope, chunks, free_port, raw_request,
                                             wait_answering)

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dev")
    port = free_port()
    env = env_for(base_settings(database_url=f"sqlite:///{tmp / 'dev.db'}"), HOST="127.0.0.1", PORT=str(port))
    with open(tmp / "output.log", "w") as output:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_answering(url, process, lambda: (tmp / "output.log").read_text())
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_the_dev_server_refuses_a_long_request_line_with_the_envelope(dev_server):
    response = requests.get(dev_server + "/healthz?" + "a" * 70_000, timeout=10)
    assert_envelope(response, 414, "the request line (method, URL and version) is longer than 65536 bytes")


def test_the_dev_server_refuses_large_headers_with_the_envelope(dev_server):
    expected = "the request headers are too large: at most 100 headers of 65536 bytes each"
    assert_envelope(requests.get(dev_server + "/healthz", headers={"X-Padding": "a" * 70_000}, timeout=10), 431,
                    expected)
    many = {f"X-Header-{number}": "1" for number in range(120)}
    assert_envelope(requests.get(dev_server + "/healthz", headers=many, timeout=10), 431, expected)


def test_the_dev_server_refuses_a_malformed_request_with_the_envelope(dev_server):
    port = int(dev_server.rsplit(":", 1)[1])
    head, body = raw_request(port, b"GET /healthz HTTP/1.1.1\r\n\r\n").split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Content-Type: application/json" in head
    assert json.loads(body) == {"data": None, "info": {"error": "bad request: Bad request version ('HTTP/1.1.1')"}}


def test_the_dev_server_refuses_a_10_mb_chunked_body_with_a_413(dev_server):
    response = requests.post(dev_server + "/api/auth/signup", data=chunks(10 * 1024 * 1024),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert_envelope(response, 413, LIMIT_BODY)


def signup_body(size: int) -> bytes:
    """A JSON sign-up body of exactly `size` bytes, its one problem a field the schema does not know."""
    empty = json.dumps({"email": "a@example.com", "password": "long enough password", "unexpected": ""}).encode()
    body = json.dumps({"email": "a@example.com", "password": "long enough password",
                       "unexpected": "x" * (size - len(empty))}).encode()
    assert len(body) == size
    return body


@pytest.mark.parametrize("size, status", [(LIMIT, 400), (LIMIT + 1, 413)])
def test_a_chunked_body_is_limited_to_the_byte(client, size, status):
    """As the servers pass it: no Content-Length, the server ends the stream (wsgi.input_terminated). At the
    limit the body is read whole (the answer names its unknown field); one byte more is a 413."""
    response = client.post("/api/auth/signup", input_stream=io.BytesIO(signup_body(size)),
                           headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == status
    expected = "unknown field 'unexpected'" if status == 400 else LIMIT_BODY
    assert response.get_json() == {"data": None, "info": {"error": expected}}
