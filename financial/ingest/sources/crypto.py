"""Minute tracking of crypto markets (system B): one task per market, from a live exchange (through ccxt)
or Cryptowatch.

A task validates the market with its source (an unknown market fails that task alone), picks its window
from what is already stored, and fetches the closed candles of that window:

- first run for a market: the last `first_window` (24 hours by default);
- after that: from the newest stored bar minus `OVERLAP_BARS` periods, so the candles fetched last time
  are fetched again and any the exchange corrected since are rewritten (the upsert keeps one row per
  minute); never further back than the retention, since older bars would be pruned again at once.

Exchanges keep limited history (Kraken: the last 720 candles), so a first run may start later than asked;
the summary says so.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import lib
from financial.ingest.tasks import FetchContext, InstrumentSpec, Series
from financial.models import AssetClass

FIRST_WINDOW = dt.timedelta(hours=24)
OVERLAP_BARS = 5


@dataclass(frozen=True)
class MarketTask:
    market: lib.MarketId
    source: str  # "exchange" or "cryptowatch" (financial.upstreams.CRYPTO_SOURCES)
    interval: lib.Interval = lib.Interval.MIN1
    first_window: dt.timedelta = FIRST_WINDOW
    retention: dt.timedelta | None = None

    @property
    def label(self) -> str:
        return self.market.label

    @property
    def upstream(self) -> str:
        return self.source

    def fetch(self, context: FetchContext) -> Series:
        source = context.upstreams.crypto(self.source)
        info = source.resolve(self.market)
        now = context.clock()
        spec = InstrumentSpec(AssetClass.CRYPTO, info.pair, exchange=info.exchange, base=info.base, quote=info.quote,
                              name=info.name)
        latest = context.stored.latest(spec, self.interval)
        since = window_start(latest, self.interval, now, self.first_window, self.retention)
        bars = source.candles(info, self.interval, since, now)
        note = ""
        if not bars:  # a quiet market (or one not trading yet): nothing new, which is no failure
            note = f"no new bars: no closed candles since {since:%Y-%m-%d %H:%M} UTC"
        elif latest is None and bars and bars[0].timestamp - since > dt.timedelta(seconds=2 * self.interval.seconds):
            note = f"history from {bars[0].timestamp:%Y-%m-%d %H:%M} UTC only (the upstream keeps no older candles)"
        return Series(spec, self.interval, bars, note)


def window_start(latest: dt.datetime | None, interval: lib.Interval, now: dt.datetime, first_window: dt.timedelta,
                 retention: dt.timedelta | None) -> dt.datetime:
    """Where a market's fetch starts: `latest` (naive UTC, as stored) minus the overlap, else now − first_window;
    never before now − retention."""
    if latest is None:
        since = now - first_window
    else:
        since = latest.replace(tzinfo=dt.timezone.utc) - dt.timedelta(seconds=OVERLAP_BARS * interval.seconds)
    if retention is not None:
        since = max(since, now - retention)
    return since
