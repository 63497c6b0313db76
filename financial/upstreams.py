"""The upstream clients of `lib`, configured from the settings (never from the process environment).

`Upstreams` holds the clients of one owner, created on first use and kept: a scheduler keeps its clients
for the life of the process (an exchange's market list loads once, connections are reused), a single
run for the run. `close()` closes them all.
"""
from __future__ import annotations

from typing import Any

import lib
from financial.config import Settings
from lib.markets import CryptoSource

CRYPTO_SOURCES = ("cryptowatch", "exchange")


def alphavantage_client(settings: Settings, **options: Any) -> lib.AlphaVantageClient:
    """ConfigurationError (naming ALPHAVANTAGE_API_KEY) when no key is set."""
    return lib.AlphaVantageClient(settings.alphavantage_api_key, settings.alphavantage_base_url,
                                  min_interval=settings.alphavantage_min_interval, environ={}, **options)


def crypto_source(name: str, settings: Settings, **options: Any) -> CryptoSource:
    """The crypto source called `name`; `options` (timeout, retry) go to its clients."""
    if name == "cryptowatch":
        return lib.CryptowatchClient(settings.cryptowatch_api_key, settings.cryptowatch_base_url, environ={},
                                     **options)
    if name == "exchange":
        return lib.ExchangeSource(lib.exchange.parse_base_urls(settings.exchange_base_urls),
                                  min_interval=settings.exchange_min_interval, **options)
    raise ValueError(f"unknown crypto source {name!r}; expected one of {', '.join(CRYPTO_SOURCES)}")


class Upstreams:
    """The clients of one owner, made on first use from `settings` (or given: tests pass stubs)."""

    def __init__(self, settings: Settings, *, alphavantage: lib.AlphaVantageClient | None = None,
                 crypto: dict[str, CryptoSource] | None = None) -> None:
        self.settings = settings
        self._alphavantage = alphavantage
        self._crypto: dict[str, CryptoSource] = dict(crypto or {})

    @property
    def alphavantage(self) -> lib.AlphaVantageClient:
        if self._alphavantage is None:
            self._alphavantage = alphavantage_client(self.settings)
        return self._alphavantage

    def crypto(self, name: str) -> CryptoSource:
        if name not in self._crypto:
            self._crypto[name] = crypto_source(name, self.settings)
        return self._crypto[name]

    def close(self) -> None:
        if self._alphavantage is not None:
            self._alphavantage.close()
        for source in self._crypto.values():
            source.close()
        self._alphavantage, self._crypto = None, {}

    def __enter__(self) -> "Upstreams":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
