"""Market-data client library: typed bars from AlphaVantage (stocks) and crypto sources.

    import lib
    with lib.AlphaVantageClient(api_key="...") as client:
        bars = client.daily("IBM")          # list[lib.Bar], oldest first, UTC

    source = lib.ExchangeSource()           # live crypto markets through ccxt (or lib.CryptowatchClient())
    info = source.resolve(lib.parse_market("kraken:btcusd"))
    minutes = source.candles(info, lib.Interval.MIN1, since)

Historical coin CSV files: `lib.coincsv.read(path)` gives the coin, its daily bars and the skipped rows.

Errors are the classes of `lib.errors`; `error.retryable` says whether trying later may help.
Nothing here imports Flask.
"""
from lib import coincsv, errors, stats
from lib.alphavantage import AlphaVantageClient
from lib.bars import Bar, Interval
from lib.cryptowatch import CryptowatchClient
from lib.errors import (MarketDataError, NotFoundError, PermanentError, QuotaExhaustedError, RateLimitedError,
                        RetryableError)
from lib.exchange import ExchangeClient, ExchangeSource
from lib.http import RetryPolicy
from lib.markets import MarketId, MarketInfo, parse_market, parse_markets

__all__ = [
    "AlphaVantageClient", "Bar", "CryptowatchClient", "ExchangeClient", "ExchangeSource", "Interval", "MarketDataError",
    "MarketId", "MarketInfo", "NotFoundError", "PermanentError", "QuotaExhaustedError", "RateLimitedError",
    "RetryPolicy", "RetryableError", "coincsv", "errors", "parse_market", "parse_markets", "stats",
]
