"""The HTTP edge: what every answer carries, and the cache of public answers, in front of the API.

    policy          security headers, the request id, CORS, `no-store` on private paths, the log line
    response_cache  what is cacheable, the cache key, the WSGI layer that answers hits before Flask, and
                    the views' side of the same cache
    query           a query string's canonical form (the key's query part) and what an integer looks like

A request first meets `response_cache.CachedAnswers` (a hit is answered there, with the policy's headers
and log line); anything else goes to Flask, whose `after_request` hook applies the same policy.
"""
from __future__ import annotations

import time

from flask import Flask, Response, g, request

from financial.edge.policy import Policy, request_id
from financial.edge.response_cache import CachedAnswers

__all__ = ["Policy", "register"]


def register(app: Flask, policy: Policy) -> None:
    """Put the cache layer in front of the app and the policy on every answer Flask produces."""
    app.wsgi_app = CachedAnswers(app, policy, app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def start_timer() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-ID"))

    @app.after_request
    def finish(response: Response) -> Response:
        current = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, a hot path
        rid = g.get("request_id") or request_id(None)
        if current.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
            # Flask's automatic answer is an empty text/html 200: say "no content" instead.
            response.status_code = 204
            del response.headers["Content-Type"]
        policy.apply(response.headers, path=current.path, method=current.method,
                     origin=current.headers.get("Origin"), request_id=rid)
        policy.log(current.method, current.full_path.rstrip("?"), response.status_code,
                   g.get("request_started", time.perf_counter()), rid)
        return response
