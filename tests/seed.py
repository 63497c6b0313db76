"""Putting known data into the database for API tests, through the same write path as an ingest."""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import pandas as pd

import lib
from financial import ingest
from financial.models import CRYPTO, STOCK


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def store(app, bars: Sequence[lib.Bar], symbol: str, *, interval: lib.Interval = lib.Interval.DAY,
          asset_class: str = STOCK, exchange: str = "", name: str | None = None, base: str | None = None,
          quote: str | None = None) -> int:
    spec = ingest.InstrumentSpec(asset_class, symbol, exchange=exchange, name=name, base=base, quote=quote)
    with app.app_context():
        return ingest.store_series(ingest.Series(spec, interval, list(bars)))


def store_crypto(app, bars: Sequence[lib.Bar], exchange: str, pair: str, **kwargs) -> int:
    return store(app, bars, pair, asset_class=CRYPTO, exchange=exchange, **kwargs)


def frame(series: dict[str, Sequence[lib.Bar]]) -> pd.DataFrame:
    """One row per bar: symbol, date (datetime.date), timestamp, open, high, low, close, volume."""
    rows = [{"symbol": symbol, "date": bar.timestamp.date(), "timestamp": bar.timestamp, "open": bar.open,
             "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume}
            for symbol, bars in series.items() for bar in bars]
    return pd.DataFrame(rows)
