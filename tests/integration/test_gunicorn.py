"""The service as production runs it: real gunicorn with the shipped conf/gunicorn.conf.py and
APP_ENV=production (and nginx with conf/nginx.conf in front, where nginx is installed).

What an operator reads (every line on gunicorn's stderr and the app's stdout is one JSON object, the
arbiter's included), and what a client gets for requests the servers refuse before the app sees them
(the JSON envelope with the right status, never gunicorn's or nginx's HTML page).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests
from gunicorn import __version__ as gunicorn_version

from tests.conftest import base_settings, env_for, missing_server

ROOT = Path(__file__).resolve().parents[2]
LIMIT_BODY = "the request body is too large; at most 65536 bytes"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`gunicorn -c conf/gunicorn.conf.py app:app` in production mode on a fresh SQLite file, one worker."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path, self.stderr_path = tmp / "stdout.log", tmp / "stderr.log"
        settings = base_settings(database_url=f"sqlite:///{tmp / 'gunicorn.db'}")
        # No control socket: its default path is one per user, shared by every gunicorn on the machine.
        environ = env_for(settings, APP_ENV="production", LOG_LEVEL="info", GUNICORN_BIND=f"127.0.0.1:{self.port}",
                          WEB_CONCURRENCY="1", GUNICORN_CMD_ARGS="--no-control-socket", **env)
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py",
                                             "app:app"], cwd=ROOT, env=environ, stdout=out, stderr=err)
        self.wait_until(lambda: self.answers("/healthz"), "answers /healthz")

    def answers(self, path: str) -> bool:
        try:
            return requests.get(self.url + path, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_until(self, condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.stderr()}")
            if condition():
                return
            time.sleep(0.1)
        raise AssertionError(f"gunicorn never {what} within {timeout}s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def wait_answering(url: str, process: subprocess.Popen, output, timeout: float = 60) -> None:
    """Until `url`/healthz answers 200; `output()` is what the failure shows when the server exits or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(f"{process.args} did not answer {url}/healthz:\n{output()}")
        time.sleep(0.1)


def json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed as one JSON object (a line that is not fails the test with the line)."""
    entries = []
    for line in text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}\n--- all of it:\n{text}") from None
    return entries


def raw_request(port: int, data: bytes) -> bytes:
    """Send `data` as it is and read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body of `total` bytes for `requests`, which sends a generator chunked (no Content-Length)."""
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b"x" * part


def assert_envelope(response: requests.Response, status: int, error: str) -> None:
    assert (response.status_code, response.headers["Content-Type"]) == (status, "application/json")
    assert response.json() == {"data": None, "info": {"error": error}}


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path_factory.mktemp("gunicorn"))
    yield server
    server.stop()


# -- item: operators can read the production logs ---------------------------------------------------

def test_every_line_gunicorn_and_the_app_write_is_one_json_object(tmp_path):
    """The arbiter's lines (start, "Booting worker", a hung worker's "WORKER TIMEOUT" and "was sent SIGKILL",
    shutdown) and the workers' are JSON on stderr, the app's on stdout, each with its process id."""
    server = Gunicorn(tmp_path, GUNICORN_TIMEOUT="2")
    try:
        booting = [entry["message"] for entry in json_lines(server.stderr()) if "Booting worker" in entry["message"]]
        first = int(booting[0].rsplit(" ", 1)[1])
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        os.kill(first, signal.SIGSTOP)  # a hung worker: no heartbeat, so the arbiter times it out and kills it
        server.wait_until(lambda: server.stderr().count("Booting worker") >= 2, "booted a second worker", 30)
        assert server.answers("/healthz")
    finally:
        assert server.stop() == 0
    errors, out = json_lines(server.stderr()), json_lines(server.stdout())
    assert "Logging error" not in server.stderr()
    messages = [entry["message"] for entry in errors]
    arbiter = server.process.pid
    assert {f"Starting gunicorn {gunicorn_version}", f"WORKER TIMEOUT (pid:{first})",
            f"Worker (pid:{first}) was sent SIGKILL! Perhaps out of memory?", "Shutting down: Master"} <= set(messages)
    booted = [entry for entry in errors if entry["message"].startswith("Booting worker with pid: ")]
    assert len(booted) >= 2 and booted[0]["message"] == f"Booting worker with pid: {first}"
    assert all(entry["message"].endswith(f": {entry['pid']}") for entry in booted)  # said by the new worker
    from_arbiter = [entry for entry in errors if entry["message"].startswith(("WORKER TIMEOUT", "Worker ("))]
    assert from_arbiter and all(entry["pid"] == arbiter for entry in from_arbiter)
    for entry in errors + out:
        assert set(entry) >= {"time", "level", "logger", "pid", "message"}
        assert entry["time"].endswith("+00:00") and isinstance(entry["pid"], int)
    timeout = next(entry for entry in errors if entry["message"].startswith("WORKER TIMEOUT"))
    assert (timeout["level"], timeout["logger"]) == ("critical", "gunicorn.error")
    health = [entry for entry in out if entry["logger"] == "financial.requests" and "/healthz" in entry["message"]]
    assert health[0]["status"] == 200 and health[0]["pid"] == first  # the request line, from the worker
    assert health[-1]["pid"] != first  # the last answer came from a new worker


def test_a_service_that_cannot_start_says_why_in_one_json_line(tmp_path):
    env = env_for(base_settings(database_url=f"sqlite:///{tmp_path / 'never.db'}"), APP_ENV="production",
                  SECRET_KEY="", GUNICORN_BIND=f"127.0.0.1:{free_port()}", GUNICORN_CMD_ARGS="--no-control-socket")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py", "app:app"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    [entry] = json_lines(result.stderr)
    assert (entry["level"], entry["logger"]) == ("critical", "financial.startup")
    assert entry["message"] == "configuration error: SECRET_KEY is required when APP_ENV=production"


# -- item: JSON at every edge -----------------------------------------------------------------------

def test_a_long_request_line_is_a_414_envelope(gunicorn):
    response = requests.get(gunicorn.url + "/api/financial_data?symbol=" + "A" * 5000, timeout=10)
    assert_envelope(response, 414, "the request line (method, URL and version) is longer than 4094 bytes")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_large_header_is_a_431_envelope(gunicorn):
    response = requests.get(gunicorn.url + "/healthz", headers={"X-Padding": "a" * 9 * 1024}, timeout=10)
    assert_envelope(response, 431, "the request headers are too large: at most 100 headers of 8190 bytes each")
    many = {f"X-Header-{number}": "1" for number in range(120)}
    assert requests.get(gunicorn.url + "/healthz", headers=many, timeout=10).status_code == 431


def test_a_malformed_request_is_a_400_envelope(gunicorn):
    answer = raw_request(gunicorn.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Content-Type: application/json" in head
    assert json.loads(body) == {"data": None, "info": {"error": "bad request: Invalid HTTP header name: 'Bad Header'"}}


def test_a_10_mb_chunked_body_is_a_413_envelope(gunicorn):
    """A body without Content-Length is limited while it is read (werkzeug cut it at the limit: a 400)."""
    response = requests.post(gunicorn.url + "/api/auth/signup", data=chunks(10 * 1024 * 1024),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert_envelope(response, 413, LIMIT_BODY)


def test_a_chunked_body_within_the_limit_is_read_whole(gunicorn):
    body = json.dumps({"email": "a@example.com", "password": "long enough password", "extra": "x" * 60_000})
    response = requests.post(gunicorn.url + "/api/auth/signup", data=iter([body[:1000].encode(), body[1000:].encode()]),
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert_envelope(response, 400, "unknown field 'extra'")


def test_gunicorn_errors_are_logged_as_json(gunicorn):
    requests.get(gunicorn.url + "/healthz?" + "a" * 5000, timeout=10)
    warnings = [entry for entry in json_lines(gunicorn.stderr()) if entry["level"] == "warning"]
    assert any(entry["message"].startswith("Invalid request from ip=127.0.0.1: Request Line is too large (")
               and entry["message"].endswith(" > 4094)") and entry["logger"] == "gunicorn.error" for entry in warnings)


# -- nginx in front (conf/nginx.conf): its own refusals are the envelope too --------------------------

@pytest.fixture(scope="module")
def nginx(gunicorn, tmp_path_factory) -> Iterator[str]:
    """nginx with conf/nginx.conf, its upstream the gunicorn above, on a free port."""
    if not shutil.which("nginx"):
        missing_server("nginx is not installed (apt-get install nginx-core)")
    tmp = tmp_path_factory.mktemp("nginx")
    port = free_port()
    site = (ROOT / "conf" / "nginx.conf").read_text()
    assert "listen 80;" in site and "http://api:5000" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("http://api:5000", gunicorn.url)
    site = site.replace("/tmp/nginx-static-cache", str(tmp / "static-cache"))
    (tmp / "site.conf").write_text(site)
    temp_paths = "".join(f"  {kind}_temp_path {tmp / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # Its workers run as this user (as root, nginx would switch them to nobody, who cannot write under tmp).
    user = pwd.getpwuid(os.getuid()).pw_name
    (tmp / "nginx.conf").write_text(f"daemon off;\nuser {user};\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
                                    f"events {{}}\nhttp {{\n  access_log off;\n{temp_paths}"
                                    f"  include {tmp / 'site.conf'};\n}}\n")
    process = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    url = f"http://127.0.0.1:{port}"
    wait_answering(url, process, lambda: (tmp / "error.log").read_text())
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_nginx_refuses_what_gunicorn_would_with_the_same_envelope(nginx):
    long_line = requests.get(nginx + "/healthz?" + "a" * 9000, timeout=10)
    assert_envelope(long_line, 414, "the request line (method, URL and version) is longer than 8192 bytes")
    between = requests.get(nginx + "/healthz?" + "a" * 5000, timeout=10)  # passes nginx, not gunicorn
    assert_envelope(between, 414, "the request line (method, URL and version) is longer than 4094 bytes")
    header = requests.get(nginx + "/healthz", headers={"X-Padding": "a" * 9 * 1024}, timeout=10)
    assert_envelope(header, 431, "the request headers are too large: at most 8 KiB per header line")
    body = requests.post(nginx + "/api/auth/signup", data=chunks(10 * 1024 * 1024),
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert_envelope(body, 413, LIMIT_BODY)


def test_nginx_answers_a_malformed_request_with_the_envelope(nginx):
    port = int(nginx.rsplit(":", 1)[1])
    answer = raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad\x01Header: 1\r\n\r\n")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 ") and b"Content-Type: application/json" in head
    assert json.loads(body) == {"data": None,
                                "info": {"error": "bad request: the request line or a header is malformed"}}
