"""The bundled sample data (`get_raw_data.py --demo`, `make run`), loaded offline.

The files under data/fixtures/ are in the upstreams' own wire formats and go through the same parsers as
live data. Their dates are fixed when the files are generated, so on loading they are moved forward in
one block: the newest daily bar lands on the last weekday before today, keeping the weekday pattern; the
newest minute bar of the crypto markets (Cryptowatch OHLC bodies, 24 hours of minutes) lands on the
current minute. The coins' historical CSV files (data/fixtures/csv/) go through the CSV import's own
reading and checks, and are moved by whole calendar days (coins trade every day) so that their newest
row is yesterday. The sample never goes stale.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

import lib
from financial.config import DATA_DIR
from financial.ingest.sources.coins import coin_series, csv_files
from financial.ingest.tasks import FetchContext, InstrumentSpec, Series, Task
from financial.models import AssetClass
from lib.http import Response

FIXTURES = DATA_DIR / "fixtures"
UPSTREAM = "demo"


def shift_weekdays(bars: Sequence[lib.Bar], last_day: dt.date) -> list[lib.Bar]:
    """Re-date daily bars so the newest falls on the last weekday on or before `last_day`, each bar keeping
    its distance in weekdays from the newest (weekend gaps stay weekend gaps)."""
    if not bars:
        return []
    newest = np.datetime64(bars[-1].date)
    anchor = np.busday_offset(np.datetime64(last_day), 0, roll="backward")
    shifted = []
    for bar in bars:
        back = int(np.busday_count(np.datetime64(bar.date), newest))
        day = np.busday_offset(anchor, -back, roll="backward").astype(dt.date)
        shifted.append(replace(bar, timestamp=lib.bars.day_start(day)))
    return shifted


def shift_to(bars: Sequence[lib.Bar], newest: dt.datetime) -> list[lib.Bar]:
    """Move bars in one block so the newest starts at `newest`, every gap kept."""
    if not bars:
        return []
    delta = newest - bars[-1].timestamp
    return [replace(bar, timestamp=bar.timestamp + delta) for bar in bars]


@dataclass(frozen=True)
class _DailyFile:
    """A file of daily bars, moved to end yesterday."""

    path: Path
    today: dt.date
    upstream = UPSTREAM

    @property
    def yesterday(self) -> dt.date:
        return self.today - dt.timedelta(days=1)


class DemoStock(_DailyFile):
    """An AlphaVantage daily body, `TIME_SERIES_DAILY_<SYMBOL>.json`."""

    @property
    def label(self) -> str:
        return self.path.stem.rsplit("_", 1)[-1].upper()

    def fetch(self, context: FetchContext) -> Series:
        bars = lib.alphavantage.parse_daily(json.loads(self.path.read_text()), symbol=self.label)
        shifted = shift_weekdays(bars, self.yesterday)
        return Series(InstrumentSpec(AssetClass.STOCK, self.label), lib.Interval.DAY, shifted)


@dataclass(frozen=True)
class DemoMarket:
    """A Cryptowatch OHLC body, `OHLC_<exchange>_<pair>.json`, of minute bars ending at the current minute."""

    path: Path
    now: dt.datetime
    upstream = UPSTREAM

    @property
    def market(self) -> lib.MarketId:
        exchange, pair = self.path.stem.split("_", 1)[1].split("_", 1)
        return lib.MarketId(exchange, pair)

    @property
    def label(self) -> str:
        return self.market.label

    def fetch(self, context: FetchContext) -> Series:
        info = lib.cryptowatch.market_info(self.market.exchange, self.market.pair)
        result, _ = lib.cryptowatch.check_response(Response(200, {}, json.loads(self.path.read_text())),
                                                   what=info.label)
        bars = shift_to(lib.cryptowatch.parse_ohlc(result, lib.Interval.MIN1, what=info.label),
                        self.now.astimezone(dt.timezone.utc).replace(second=0, microsecond=0))
        spec = InstrumentSpec(AssetClass.CRYPTO, info.pair, exchange=info.exchange, base=info.base, quote=info.quote,
                              name=info.name)
        return Series(spec, lib.Interval.MIN1, bars)


class DemoCoin(_DailyFile):
    """A historical coin CSV file."""

    @property
    def label(self) -> str:
        return self.path.name

    def fetch(self, context: FetchContext) -> Series:
        series = coin_series(self.path, context)
        return replace(series, bars=shift_to(series.bars, lib.bars.day_start(self.yesterday)))


def demo_tasks(today: dt.date | None = None, now: dt.datetime | None = None) -> list[Task]:
    now = now or dt.datetime.now(dt.timezone.utc)
    today = today or now.date()
    stocks: list[Task] = [DemoStock(path, today)
                          for path in sorted((FIXTURES / "alphavantage").glob("TIME_SERIES_DAILY_*.json"))]
    markets: list[Task] = [DemoMarket(path, now) for path in sorted((FIXTURES / "cryptowatch").glob("OHLC_*.json"))]
    coins: list[Task] = [DemoCoin(path, today) for path in csv_files(FIXTURES / "csv")]
    return stocks + markets + coins
