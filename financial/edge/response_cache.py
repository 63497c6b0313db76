"""The cache of public answers: what may be cached, under which key, and both of its sides.

- **Serve** (`CachedAnswers`, a WSGI layer in front of Flask, like a reverse-proxy cache inside the
  process): a hit needs no routing, no request context, no view and no response object; the stored bytes
  go out with the headers and log line every answer gets (`Policy`). That costs a fraction of a trip
  through Flask and Flask-RESTX, and the bulk of the service's traffic is such hits.
- **Store** (`cached_answer`, called by the public GET views): on a miss the view computes the answer
  and stores its bytes. The layer hands the view what its lookup found (`caching.Lookup`, in the WSGI
  environ), so a miss costs one cache round trip for the lookup, not two.

`cacheable` is the one rule both sides follow: GET (and HEAD) answers of public paths under /api, never
those of /api/me or /api/auth, which belong to one user. `key` builds the cache key from the path and the raw
query string, exactly as sent: only valid queries are ever stored (an invalid one raises before reaching
the cache), so a hit can skip validation altogether. Spellings of the same query, such as another
parameter order, are cached separately.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from flask import Flask, request
from werkzeug.datastructures import Headers

from financial.caching import Lookup
from financial.edge.policy import Policy, is_private, request_id
from financial.extensions import app_state

LOOKUP = "market_data.cache_lookup"  # the WSGI environ entry that hands the layer's lookup to the view


def cacheable(method: str, path: str) -> bool:
    """GET answers (and HEAD's, which Flask gives from the GET view) of public paths under /api."""
    return method in ("GET", "HEAD") and path.startswith("/api/") and not is_private(path)


def key(path: str, query_string: str) -> str:
    return f"{path}?{query_string}"


class CachedAnswers:
    def __init__(self, app: Flask, policy: Policy, wsgi_app: Callable) -> None:
        self.app = app
        self.policy = policy
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if method == "GET" and cacheable(method, path):  # (a HEAD goes through Flask, which drops the body)
            started = time.perf_counter()
            query = environ.get("QUERY_STRING", "")
            found = app_state(self.app).cache.peek(key(path, query))
            if found is not None and found.value is not None:
                body = found.value
                rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
                headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                self.policy.apply(headers, path=path, method="GET", origin=environ.get("HTTP_ORIGIN"),
                                  request_id=rid)
                start_response("200 OK", headers.to_wsgi_list())
                self.policy.log("GET", f"{path}?{query}" if query else path, 200, started, rid)
                return [body]
            environ[LOOKUP] = found
        return self.wsgi_app(environ, start_response)


def cached_answer(compute: Callable[[], bytes]) -> bytes:
    """The answer of the current public GET request: from the cache while the data has not changed, else
    `compute()`d and stored. (A view of another method or path is a bug, refused loudly.)"""
    if not cacheable(request.method, request.path):
        raise RuntimeError(f"{request.method} {request.path} is not cacheable")
    found: Lookup | None = request.environ.get(LOOKUP)
    return app_state().cache.get_or_compute(key(request.path, request.query_string.decode("latin-1")), compute,
                                            found=found)
