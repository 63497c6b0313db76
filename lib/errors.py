"""The error tree of the market-data clients.

Callers decide what to do from the class alone:

    MarketDataError
    ├── RetryableError            try again later; the clients already retried with backoff
    │   ├── NetworkError          connection refused or reset, DNS failure
    │   │   └── RequestTimeout    no answer within the timeout
    │   ├── ServerError           HTTP 5xx, or a body that is not JSON (HTML error pages)
    │   └── RateLimitedError      the upstream asked us to slow down (has `retry_after`)
    └── PermanentError            retrying the same call cannot help
        ├── ConfigurationError    no API key, bad base URL
        ├── AuthenticationError   the upstream rejected the API key
        ├── NotFoundError         unknown symbol or market
        ├── PremiumRequiredError  the endpoint or a parameter needs a paid plan
        ├── QuotaExhaustedError   the daily quota is spent: stop calling until it resets
        ├── BadRequestError       the upstream rejected the request's parameters
        └── MalformedPayloadError JSON that does not have the documented shape

`lib.history` of several names raises `HistoryError` when some of them failed: it names each failure,
keeps each error (`failures`) and the frame of the names that worked (`frame`).
"""
from __future__ import annotations

from typing import Any, Mapping


class MarketDataError(Exception):
    """Base of every error raised by `lib`. `source` names the upstream, `symbol` the instrument."""

    retryable = False

    def __init__(self, message: str, *, source: str = "", symbol: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.symbol = symbol

    def __str__(self) -> str:
        return self.message


class RetryableError(MarketDataError):
    retryable = True


class NetworkError(RetryableError):
    pass


class RequestTimeout(NetworkError):
    pass


class ServerError(RetryableError):
    def __init__(self, message: str, *, status: int | None = None, **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class RateLimitedError(RetryableError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentError(MarketDataError):
    pass


class ConfigurationError(PermanentError):
    pass


class AuthenticationError(PermanentError):
    pass


class NotFoundError(PermanentError):
    pass


class PremiumRequiredError(PermanentError):
    pass


class QuotaExhaustedError(PermanentError):
    pass


class BadRequestError(PermanentError):
    pass


class MalformedPayloadError(PermanentError):
    pass


class HistoryError(MarketDataError):
    """Some of the series asked of `lib.history` failed. `failures` maps each failed name to its error;
    `frame` holds the series that were fetched, so a notebook does not spend its calls again."""

    def __init__(self, failures: Mapping[str, MarketDataError], *, asked: int, frame: Any = None) -> None:
        details = "; ".join(f"{name}: {type(error).__name__}: {error}" for name, error in failures.items())
        super().__init__(f"{len(failures)} of {asked} series failed: {details}")
        self.failures = dict(failures)
        self.frame = frame
        self.retryable = all(error.retryable for error in self.failures.values())  # trying again helps them all
