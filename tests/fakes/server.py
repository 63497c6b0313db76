"""Run a WSGI app on 127.0.0.1 in a background thread, for tests that talk real HTTP to a fake upstream.

    with FakeServer(FakeAlphaVantage()) as server:
        client = AlphaVantageClient(api_key="test-key", base_url=server.url)
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

POLL_INTERVAL = 0.02  # how often serve_forever checks for stop(); bounds how long stop() takes


class _QuietHandler(WSGIRequestHandler):
    """Keeps test output clean: no access log line per request, no noise for dropped connections."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeServer:
    """A threaded werkzeug server for `app` on a free port of 127.0.0.1; usable as a context manager."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeServer is not running; call start() first")
        return f"http://{self.host}:{self._server.port}"

    def start(self) -> "FakeServer":
        if self._server is not None:
            return self
        server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler)
        # Handler threads are daemons (ThreadedWSGIServer), so a request still sleeping in a "slow"
        # scenario never holds up stop() or interpreter exit.
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                                  name=f"FakeServer:{server.port}", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()  # returns once serve_forever has left its loop (within POLL_INTERVAL)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def send(start_response: Any, status: str, body: Any, *, content_type: str = "application/json",
         headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    """Answer a WSGI request: dicts and lists as compact JSON, text as UTF-8, bytes as they are."""
    if isinstance(body, (dict, list)):
        data = json.dumps(body, separators=(",", ":")).encode()
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])])
    return [data]


HTML_ERROR_PAGE = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad "
                   "Gateway</h1></center><hr><center>cloudflare</center></body></html>\n")


class Scenarios(dict):
    """Failure switches by key (a symbol, a market): `"name"` applies to every call, `"name:N"` to the first N
    calls for that key, after which the key is served normally (an outage, then recovery)."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def active(self, key: str) -> str | None:
        spec = self.get(key)
        if not spec:
            return None
        name, _, count = spec.partition(":")
        if not count:
            return name
        with self._lock:
            seen = self._calls.get(key, 0)
            self._calls[key] = seen + 1
        return name if seen < int(count) else None


class Timed:
    """A WSGI app wrapped to record when each request arrived (`times`: time.monotonic(), path) and to answer
    `delay` seconds late (`slow[path]` seconds for the paths in `slow`): an upstream whose every call costs
    a round trip, and a clock at the upstream's end to measure pacing by."""

    def __init__(self, app: Any, delay: float = 0.0) -> None:
        self.app = app
        self.delay = delay
        self.slow: dict[str, float] = {}
        self.times: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        with self._lock:
            self.times.append((time.monotonic(), path))
        pause = self.slow.get(path, self.delay)
        if pause:
            time.sleep(pause)
        return self.app(environ, start_response)

    def arrivals(self, path_prefix: str = "") -> list[float]:
        with self._lock:
            return sorted(stamp for stamp, path in self.times if path.startswith(path_prefix))


def most_in_any_window(stamps: list[float], seconds: float = 1.0) -> int:
    """The largest number of `stamps` that fall within one window of `seconds` (closed at both ends)."""
    stamps = sorted(stamps)
    most, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] > seconds:
            start += 1
        most = max(most, end - start + 1)
    return most
