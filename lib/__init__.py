"""Market-data client library: typed bars from AlphaVantage (stocks) and crypto sources.

    import lib
    with lib.AlphaVantageClient(api_key="...") as client:
        bars = client.daily("IBM")          # list[lib.Bar], oldest first, UTC

Historical coin CSV files: `lib.coincsv.read(path)` gives the coin, its daily bars and the skipped rows.

Errors are the classes of `lib.errors`; `error.retryable` says whether trying later may help.
Nothing here imports Flask.
"""
from lib import coincsv, errors, stats
from lib.alphavantage import AlphaVantageClient
from lib.bars import Bar, Interval
from lib.errors import (MarketDataError, NotFoundError, PermanentError, QuotaExhaustedError, RateLimitedError,
                        RetryableError)
from lib.http import RetryPolicy

__all__ = [
    "AlphaVantageClient", "Bar", "Interval", "MarketDataError", "NotFoundError", "PermanentError",
    "QuotaExhaustedError", "RateLimitedError", "RetryPolicy", "RetryableError", "coincsv", "errors", "stats",
]
