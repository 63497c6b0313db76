"""Market-data client library: typed bars from AlphaVantage (stocks) and crypto sources, and pandas frames.

    import lib
    frame = lib.history("IBM", start="2026-01-02")   # one call: a DataFrame of daily bars (see lib.history)
    both = lib.history(["IBM", "kraken:btcusd"])       # several: a (symbol, timestamp) MultiIndex

    with lib.AlphaVantageClient(api_key="...") as client:
        bars = client.daily("IBM")          # list[lib.Bar], oldest first, UTC
    frame = lib.to_frame(bars)              # and lib.from_frame(frame) == bars

    source = lib.ExchangeSource()           # live crypto markets through ccxt (or lib.CryptowatchClient())
    info = source.resolve(lib.parse_market("kraken:btcusd"))
    minutes = source.candles(info, lib.Interval.MIN1, since)

Historical coin CSV files: `lib.coincsv.read(path)` gives the coin, its daily bars and the skipped rows.
Settings (keys, base URLs, pacing, the response cache) come from the service's environment variables:
`lib.Settings.from_env()`.

Errors are the classes of `lib.errors`; `error.retryable` says whether trying later may help.
Nothing here imports Flask; pandas, ccxt and requests-cache are imported only when first used.
"""
from lib import cache, coincsv, errors, stats
from lib.alphavantage import AlphaVantageClient
from lib.bars import Bar, Interval
from lib.cryptowatch import CryptowatchClient
from lib.errors import (HistoryError, MarketDataError, NotFoundError, PermanentError, QuotaExhaustedError,
                        RateLimitedError, RetryableError)
from lib.exchange import ExchangeClient, ExchangeSource
from lib.frames import from_frame, to_frame
from lib.series import history
from lib.http import RetryPolicy
from lib.markets import MarketId, MarketInfo, parse_market, parse_markets
from lib.settings import Settings

__all__ = [
    "AlphaVantageClient", "Bar", "CryptowatchClient", "ExchangeClient", "ExchangeSource", "HistoryError",
    "Interval", "MarketDataError", "MarketId", "MarketInfo", "NotFoundError", "PermanentError",
    "QuotaExhaustedError", "RateLimitedError", "RetryPolicy", "RetryableError", "Settings", "cache", "coincsv",
    "errors", "from_frame", "history", "parse_market", "parse_markets", "stats", "to_frame",
]
