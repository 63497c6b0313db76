"""The upstream clients of `lib`, configured from the settings (never from the process environment).

`Upstreams` holds the clients of one owner, created on first use and kept: a scheduler keeps its clients
for the life of the process (an exchange's market list loads once, connections are reused), a single
run for the run. `close()` closes them all. Several threads may share one `Upstreams` (a worker's).

The clients pace their calls themselves, each within its own process, unless `limiter_for` hands them a
pacing of the caller's: the workers' one, shared by every worker through Redis.
"""
from __future__ import annotations

import threading
from typing import Any

import lib
from financial.config import Settings
from lib.http import LimiterFactory
from lib.markets import CryptoSource

CRYPTO_SOURCES = ("cryptowatch", "exchange")


def alphavantage_client(settings: Settings, *, limiter_for: LimiterFactory | None = None,
                        **options: Any) -> lib.AlphaVantageClient:
    """ConfigurationError (naming ALPHAVANTAGE_API_KEY) when no key is set."""
    if limiter_for is not None:
        options["limiter"] = limiter_for(lib.alphavantage.SOURCE, settings.alphavantage_min_interval)
    return lib.AlphaVantageClient(settings.alphavantage_api_key, settings.alphavantage_base_url,
                                  min_interval=settings.alphavantage_min_interval, environ={}, **options)


def crypto_source(name: str, settings: Settings, *, limiter_for: LimiterFactory | None = None,
                  **options: Any) -> CryptoSource:
    """The crypto source called `name`; `options` (timeout, retry) go to its clients."""
    if name == "cryptowatch":
        return lib.CryptowatchClient(settings.cryptowatch_api_key, settings.cryptowatch_base_url, environ={},
                                     **options)
    if name == "exchange":
        return lib.ExchangeSource(lib.exchange.parse_base_urls(settings.exchange_base_urls),
                                  min_interval=settings.exchange_min_interval, limiter_for=limiter_for, **options)
    raise ValueError(f"unknown crypto source {name!r}; expected one of {', '.join(CRYPTO_SOURCES)}")


class Upstreams:
    """The clients of one owner, made on first use from `settings` (or given: tests pass stubs)."""

    def __init__(self, settings: Settings, *, alphavantage: lib.AlphaVantageClient | None = None,
                 crypto: dict[str, CryptoSource] | None = None, limiter_for: LimiterFactory | None = None) -> None:
        self.settings = settings
        self.limiter_for = limiter_for
        self._alphavantage = alphavantage
        self._crypto: dict[str, CryptoSource] = dict(crypto or {})
        self._lock = threading.Lock()

    @property
    def alphavantage(self) -> lib.AlphaVantageClient:
        with self._lock:
            if self._alphavantage is None:
                self._alphavantage = alphavantage_client(self.settings, limiter_for=self.limiter_for)
            return self._alphavantage

    def crypto(self, name: str) -> CryptoSource:
        with self._lock:
            if name not in self._crypto:
                self._crypto[name] = crypto_source(name, self.settings, limiter_for=self.limiter_for)
            return self._crypto[name]

    def close(self) -> None:
        with self._lock:
            if self._alphavantage is not None:
                self._alphavantage.close()
            for source in self._crypto.values():
                source.close()
            self._alphavantage, self._crypto = None, {}

    def __enter__(self) -> "Upstreams":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
