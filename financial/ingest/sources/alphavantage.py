"""AlphaVantage stock series: one task per symbol, the bars of the last `days` days (daily or intraday).

The compact output (the latest 100 points) is asked for when it covers the window, the full history
otherwise; a key that may not have the full history (a premium feature) gets the compact one, and the
report says so.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import lib
from financial.ingest.tasks import FetchContext, InstrumentSpec, Series
from financial.models import AssetClass

UPSTREAM = "alphavantage"
COMPACT_DAILY_DAYS = 140  # outputsize=compact returns 100 trading days, about 140 calendar days
TRADING_HOURS = 16  # an intraday day: pre-market, session and after-hours, 04:00-20:00 US/Eastern


@dataclass(frozen=True)
class StockTask:
    symbol: str
    interval: lib.Interval
    days: int
    upstream = UPSTREAM

    @property
    def label(self) -> str:
        return self.symbol

    def fetch(self, context: FetchContext) -> Series:
        client = context.upstreams.alphavantage
        cutoff = context.clock() - dt.timedelta(days=self.days)
        get: Callable[[str], list[lib.Bar]]
        if self.interval is lib.Interval.DAY:
            cutoff = lib.bars.day_start(cutoff.date())
            full = self.days > COMPACT_DAILY_DAYS
            get = lambda size: client.daily(self.symbol, outputsize=size)  # noqa: E731
        else:
            full = self.days * TRADING_HOURS * 3600 / self.interval.seconds > lib.alphavantage.COMPACT_POINTS
            get = lambda size: client.intraday(self.symbol, self.interval, outputsize=size)  # noqa: E731
        note = ""
        try:
            bars = get("full" if full else "compact")
        except lib.errors.PremiumRequiredError:
            if not full:
                raise
            bars = get("compact")
            note = "only the latest 100 points: the full history is a premium feature for this key"
        if not bars:
            raise lib.errors.NotFoundError(f"no bars for {self.symbol}", source=UPSTREAM, symbol=self.symbol)
        recent = [bar for bar in bars if bar.timestamp >= cutoff]
        if not recent:
            note = note or f"no bars in the last {self.days} days (latest {bars[-1].timestamp:%Y-%m-%d %H:%M} UTC)"
        return Series(InstrumentSpec(AssetClass.STOCK, self.symbol.upper()), self.interval, recent, note)
