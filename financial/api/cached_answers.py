"""Answering cached GET requests before Flask, like a reverse-proxy cache inside the process.

A cache hit needs no routing, no request context, no view and no response object: the answer is bytes
the full path stored (`envelope.cached_query`), valid for the current data generation (`caching.peek`).
Serving it here, with the headers and log line every answer gets (`http_policy.Policy`), costs a fraction
of a trip through Flask and Flask-RESTX: the bulk of the service's traffic is such hits. Everything else
(a miss, a stale or missing entry, a cache outage, any private path or other method) goes to the Flask
app, which computes, stores and answers as usual. Only answers of public paths are ever stored, so only
they can be served from here.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from flask import Flask
from werkzeug.datastructures import Headers

from financial import caching
from financial.http_policy import is_private, request_id


class CachedAnswers:
    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "GET" and path.startswith("/api/") and not is_private(path):
            started = time.perf_counter()
            query = environ.get("QUERY_STRING", "")
            body = caching.peek(self.app, caching.response_key(path, query))
            if body is not None:
                rid = request_id(environ.get("HTTP_X_REQUEST_ID"))
                headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                policy = self.app.extensions["http_policy"]
                policy.apply(headers, path=path, method="GET", origin=environ.get("HTTP_ORIGIN"), request_id=rid)
                start_response("200 OK", headers.to_wsgi_list())
                policy.log("GET", f"{path}?{query}" if query else path, 200, started, rid)
                return [body]
        return self.wsgi_app(environ, start_response)
