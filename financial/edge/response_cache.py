"""The cache of public answers: what may be cached, under which key, and both of its sides.

- **Serve** (`CachedAnswers`, a WSGI layer in front of Flask, like a reverse-proxy cache inside the
  process): a hit needs no routing, no request context, no view and no response object; the stored bytes
  go out with the headers and log line every answer gets (`Policy`). That costs a fraction of a trip
  through Flask and Flask-RESTX, and the bulk of the service's traffic is such hits.
- **Store** (`cached_answer`, called by the public GET views): on a miss the view computes the answer
  and stores its bytes. The layer hands the view what its lookup found (`caching.Lookup`, in the WSGI
  environ), so a miss costs one cache round trip for the lookup, not two.

`cacheable` is the one rule both sides follow: GET (and HEAD) answers of public paths under /api, never
those of /api/me or /api/auth, which belong to one user. `key` builds the cache key from the path and the
query's canonical form (`financial.edge.query`: parameters sorted, integers written as numbers), so the
spellings of one query (`limit=5`, `limit=05`, `limit=+5`, another parameter order) share one entry. Only
valid queries are ever stored (an invalid one raises before reaching the cache), and two spellings share a
key only when they are read alike, so a hit can skip validation altogether.

**Conditional requests**: every cacheable 200 carries an `ETag` derived from the data generation and the key
(`etag_of`) and `Cache-Control: no-cache` (a browser may keep it, but asks again each time). A request whose
`If-None-Match` names the current ETag gets a `304 Not Modified` without a body: from the layer, before Flask,
whenever the current generation is known there, else from the view. The generation changes with every
committed data change, and with it every ETag, so a 304 never hides newer data.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable, Iterable, NamedTuple

from flask import Flask, request
from werkzeug.datastructures import Headers

from financial.caching import Lookup
from financial.edge import query as canonical_query
from financial.edge.policy import Policy, is_private, request_id
from financial.extensions import app_state

LOOKUP = "market_data.cache_lookup"  # the WSGI environ entry that hands the layer's lookup to the view


def cacheable(method: str, path: str) -> bool:
    """GET answers (and HEAD's, which Flask gives from the GET view) of public paths under /api."""
    return method in ("GET", "HEAD") and path.startswith("/api/") and not is_private(path)


def key(path: str, query_string: str) -> str:
    """The cache key of a public answer: its path and canonical query (the layer and the views both use it)."""
    return f"{path}?{canonical_query.canonical(query_string)}"


# -- conditional requests (ETag / If-None-Match) ----------------------------------------------------------

def etag_of(generation: str, cache_key: str) -> str:
    """The ETag of the answer to `cache_key` under a data generation: the same answer for as long as the
    generation lasts (answers are computed from the data alone), a new tag with the next generation."""
    digest = hashlib.blake2b(f"{generation}\n{cache_key}".encode(), digest_size=12)
    return f'"{digest.hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as the header asks; `*` matches any)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def revalidation_headers(etag: str) -> list[tuple[str, str]]:
    """What a cacheable answer (200 or 304) carries: its tag, and that it must be revalidated before reuse."""
    return [("ETag", etag), ("Cache-Control", "no-cache")]


# -- serving ------------------------------------------------------------------------------------------

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
            if found is not None and found.generation is not None:
                etag = etag_of(found.generation, found.key)
                if etag_matches(environ.get("HTTP_IF_NONE_MATCH"), etag):
                    return self._answer(environ, start_response, started, "304 Not Modified", b"",
                                        revalidation_headers(etag))
                if found.value is not None:
                    body = found.value
                    return self._answer(environ, start_response, started, "200 OK", body,
                                        [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                         *revalidation_headers(etag)])
            environ[LOOKUP] = found
        return self.wsgi_app(environ, start_response)

    def _answer(self, environ: dict[str, Any], start_response: Callable, started: float, status: str, body: bytes,
                header_list: list[tuple[str, str]]) -> list[bytes]:
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
        headers = Headers(header_list)
        self.policy.apply(headers, path=path, method="GET", origin=environ.get("HTTP_ORIGIN"), request_id=rid)
        start_response(status, headers.to_wsgi_list())
        self.policy.log("GET", f"{path}?{query}" if query else path, int(status[:3]), started, rid)
        return [body]


# -- storing (the views' side) ------------------------------------------------------------------------------

class Answer(NamedTuple):
    """A public answer's body, and its ETag (None when the cache, and so the generation, was unreachable)."""

    body: bytes
    etag: str | None


def cached_answer(compute: Callable[[], bytes]) -> Answer:
    """The answer of the current public GET request: from the cache while the data has not changed, else
    `compute()`d and stored. (A view of another method or path is a bug, refused loudly.)"""
    if not cacheable(request.method, request.path):
        raise RuntimeError(f"{request.method} {request.path} is not cacheable")
    found: Lookup | None = request.environ.get(LOOKUP)
    cache_key = key(request.path, request.query_string.decode("latin-1"))
    body, generation = app_state().cache.get_or_compute_tagged(cache_key, compute, found=found)
    return Answer(body, None if generation is None else etag_of(generation, cache_key))
