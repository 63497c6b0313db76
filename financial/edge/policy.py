"""What every answer carries, whichever path produced it (a Flask view, an error handler, or a cached
answer served before Flask by `response_cache.CachedAnswers`): security headers (the JSON API's strict
Content-Security-Policy, the web page's and Swagger UI's own), the request id, CORS for the configured
origins, `no-store` on private paths, and the request's log line."""
from __future__ import annotations

import logging
import re
import time
import uuid

from werkzeug.datastructures import Headers

from financial.config import Settings

log = logging.getLogger("financial.requests")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# JSON never needs to run scripts or be framed; the Swagger UI page needs its own scripts and styles.
API_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
               "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; frame-ancestors 'none'")


# The web page (financial.web): its scripts and its API calls only from this origin, no inline script, no
# plugin, no frame. Styles: the page's own stylesheet, plus the two <style> elements Plotly's bundle creates,
# each allowed by the hash of its text rather than by 'unsafe-inline': an empty one, to which it adds its
# rules through the CSSOM (insertRule, which CSP does not govern), and MapLibre's stylesheet, which it adds
# on loading. Style attributes stay refused (Plotly and the page set styles through the CSSOM, allowed).
# The hashes belong to the pinned plotly (a test recomputes them from the installed bundle).
# data: images: the "download plot as PNG" button of Plotly's toolbar renders through one.
PLOTLY_STYLE_HASHES = ("'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # "" (the empty element)
                       "'sha256-ji27qzEtxXZW+7dun6UwjHXJ18e6WAin1VvNtkzIE/o='")  # MapLibre's CSS, plotly 7.1.0
PAGE_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; "
            f"style-src 'self' {' '.join(PLOTLY_STYLE_HASHES)}; img-src 'self' data:; font-src 'self'; "
            "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_PATHS = ("/", "/dashboard", "/account")
PAGE_PREFIXES = ("/instruments/",)


def request_id(offered: str | None) -> str:
    """The client's X-Request-ID when it is a plain token (it goes into logs and headers), else a new one."""
    return offered if offered and _REQUEST_ID.match(offered) else uuid.uuid4().hex


def is_page(path: str) -> bool:
    """The web page's views (financial.web.PAGE_ROUTES): the HTML that runs the page's scripts."""
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


def is_private(path: str) -> bool:
    """Paths whose answers belong to one user or carry tokens: never cached, by us or anyone."""
    return path in ("/api/me", "/api/auth") or path.startswith(("/api/me/", "/api/auth/"))


class Policy:
    def __init__(self, settings: Settings) -> None:
        headers = dict(API_HEADERS)
        if settings.is_production:
            headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        # No answer sets these itself, so they are appended as one block.
        self.security_headers = list(headers.items())
        self.origins = settings.cors_origins

    def apply(self, headers: Headers, *, path: str, method: str, origin: str | None, request_id: str) -> None:
        headers.extend(self.security_headers)
        headers["X-Request-ID"] = request_id
        if path.startswith(("/docs", "/swaggerui")):
            headers["Content-Security-Policy"] = DOCS_CSP
        elif is_page(path):
            headers["Content-Security-Policy"] = PAGE_CSP
        elif is_private(path):
            headers["Cache-Control"] = "no-store"
        if self.origins:
            # Every answer depends on the Origin (CORS headers or none), so a shared cache must key on it
            # even when this one was not allowed: else it may hand an allowed origin's copy to another.
            if "origin" not in {value.strip().lower() for value in headers.get("Vary", "").split(",")}:
                headers.add("Vary", "Origin")
            if origin and ("*" in self.origins or origin in self.origins):
                self._allow_cors(headers, origin, method)

    def _allow_cors(self, headers: Headers, origin: str, method: str) -> None:
        """CORS for the origins of CORS_ORIGINS ("*" for any): browsers on those origins may call the API,
        with a bearer token (no cookies are used, so credentials are never allowed)."""
        headers["Access-Control-Allow-Origin"] = "*" if "*" in self.origins else origin
        if method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-ID"
            headers["Access-Control-Max-Age"] = "600"
        headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"

    @staticmethod
    def log(method: str, full_path: str, status: int, started: float, request_id: str) -> None:
        if log.isEnabledFor(logging.INFO):
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info("%s %s %s %.1fms", method, full_path, status, elapsed_ms,
                     extra={"request_id": request_id, "status": status, "duration_ms": round(elapsed_ms, 2)})
