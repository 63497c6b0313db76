"""HTTP plumbing shared by the upstream clients: one session, timeouts, pacing, retries, redaction.

Each client owns one `HttpClient`. A call goes through the rate limiter (its own `RateLimiter`, or any
`Limiter` given: one shared by several processes, say), then the session with explicit connect and read
timeouts; transport failures become the typed errors of `lib.errors`, and the client's
own `check` turns the decoded body into data or a typed error. Retryable errors are retried with
exponential backoff and jitter; permanent ones are raised at once.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import quote, quote_plus

import requests
from urllib3.exceptions import ReadTimeoutError

from lib import errors

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
USER_AGENT = "market-data-tracker/1.0 (+https://github.com/)"


class Redactor:
    """Replaces every secret that occurs in a text by `***` (upstreams quote API keys back at us).

    URL-encoded spellings are replaced too: error texts quote request URLs, where a key with `+`, `/` or
    spaces appears percent-encoded. The spellings are worked out once, since log lines are redacted by
    the same redactor, line after line. Secrets shorter than 3 characters would match everywhere: ignored.
    """

    def __init__(self, secrets: Iterable[str | None]) -> None:
        spellings = {spelling for secret in secrets if secret and len(secret) >= 3
                     for spelling in (secret, quote_plus(secret), quote(secret, safe=""))}
        self.spellings = sorted(spellings, key=len, reverse=True)  # a longer spelling may contain a shorter

    def __call__(self, text: str) -> str:
        for spelling in self.spellings:
            if spelling in text:
                text = text.replace(spelling, "***")
        return text


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret in it replaced by `***` (see Redactor)."""
    return Redactor(secrets)(text)


class Limiter(Protocol):
    """Paces the calls to one upstream: `wait()` blocks until the next call may go out."""

    def wait(self) -> float:
        """Block until the next call may go out; return how long that took."""


# (upstream key, min interval in seconds) -> the limiter of that upstream: how a caller hands the clients a
# pacing of its own (shared by every process, for instance) instead of each client's `RateLimiter`.
LimiterFactory = Callable[[str, float], Limiter]


class RateLimiter:
    """Spaces calls at least `min_interval` seconds apart within this process; safe to share between threads."""

    def __init__(self, min_interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.min_interval = max(0.0, float(min_interval))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_allowed = 0.0

    def wait(self) -> float:
        """Block until the next call may go out; return how long we slept."""
        with self._lock:
            now = self._clock()
            delay = max(0.0, self._next_allowed - now)
            self._next_allowed = max(now, self._next_allowed) + self.min_interval
        if delay:
            self._sleep(delay)
        return delay


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` calls in all; the n-th retry waits a random time up to `backoff * 2**n`, capped."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy backoffs must not be negative")

    def delay(self, retry_number: int, error: errors.RetryableError) -> float:
        ceiling = min(self.max_backoff, self.backoff * (2 ** retry_number))
        delay = random.uniform(ceiling / 2, ceiling)
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            delay = max(delay, min(float(retry_after), self.max_backoff))
        return delay


NO_RETRY = RetryPolicy(attempts=1)


@dataclass
class Response:
    """What `check` callbacks see: the status, the headers and the decoded JSON body."""

    status: int
    headers: Mapping[str, str]
    payload: Any


class HttpClient:
    """A JSON-over-HTTP client for one upstream.

    `check(response)` is the source's own reading of a decoded response: it returns the useful part
    or raises a typed error. It runs inside the retry loop, so a source-level retryable error (a burst
    rate limit delivered as HTTP 200, say) is retried like a network fault. Calls are spaced `min_interval`
    seconds apart, or paced by `limiter` when one is given.
    """

    def __init__(self, source: str, base_url: str, *, session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, retry: RetryPolicy = RetryPolicy(),
                 min_interval: float = 0.0, limiter: Limiter | None = None, secrets: Iterable[str | None] = (),
                 headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise errors.ConfigurationError(f"{source}: base URL must start with http:// or https://, "
                                            f"got {base_url!r}", source=source)
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self._owns_session = session is None
        self.timeout = timeout
        self.retry = retry
        self.limiter: Limiter = limiter or RateLimiter(min_interval, sleep=sleep)
        self.redact = Redactor(secrets)
        self._sleep = sleep
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def get(self, path: str, params: Mapping[str, Any] | None = None, *,
            check: Callable[[Response], Any], symbol: str = "") -> Any:
        """GET `path`, retrying retryable failures; returns whatever `check` returns."""
        last_error: errors.RetryableError | None = None
        for attempt in range(self.retry.attempts):
            if last_error is not None:
                delay = self.retry.delay(attempt - 1, last_error)
                log.info("%s %s: %s; retry %d/%d in %.1fs", self.source, symbol or path, last_error,
                         attempt, self.retry.attempts - 1, delay)
                self._sleep(delay)
            try:
                return check(self._send(path, params, symbol))
            except errors.RetryableError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def _send(self, path: str, params: Mapping[str, Any] | None, symbol: str) -> Response:
        self.limiter.wait()
        url = f"{self.base_url}/{path.lstrip('/')}"
        context = {"source": self.source, "symbol": symbol}
        try:
            raw = self.session.get(url, params=params, timeout=self.timeout, headers=self._headers)
        except requests.RequestException as exc:
            # A body that stalls half-way arrives as ConnectionError(ReadTimeoutError), not as Timeout.
            if isinstance(exc, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in exc.args):
                raise errors.RequestTimeout(f"{self.source}: no answer within {self.timeout}s",
                                            **context) from None
            # The exception text quotes the URL with its query string, API key included.
            raise errors.NetworkError(f"{self.source}: connection failed: {type(exc).__name__}: "
                                      f"{self.redact(str(exc))[:300]}", **context) from None
        headers = raw.headers
        if raw.status_code == 429:
            raise errors.RateLimitedError(f"{self.source}: rate limited (HTTP 429)",
                                          retry_after=retry_after(headers), **context)
        if raw.status_code >= 500:
            raise errors.ServerError(f"{self.source}: server error (HTTP {raw.status_code})",
                                     status=raw.status_code, **context)
        try:
            payload = raw.json()
        except ValueError:
            if raw.status_code >= 400:
                payload = None
            else:
                snippet = self.redact(raw.text[:80]).replace("\n", " ")
                raise errors.ServerError(f"{self.source}: body is not JSON (HTTP {raw.status_code}, "
                                         f"starts {snippet!r})", status=raw.status_code, **context) from None
        return Response(raw.status_code, headers, payload)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The seconds of a `Retry-After` header, when it carries a number."""
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
