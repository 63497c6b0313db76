"""The plan of a run, decided once from the command line: which tasks, and what follows them.

`IngestRequest` is the command line, typed and checked; `plan_for` turns it into the run's tasks (one per
symbol, market or file) and its after-run steps (retention, rankings, alerts). Minute ingests also track
every market on any watchlist: `plan_run` reads them from the database and adds them.

- stocks (the default): AlphaVantage, IBM and AAPL, the last 14 days, daily or intraday;
- crypto (`--markets`, or a crypto `--source`): the source named, or CRYPTO_SOURCE; the first run of a
  market stores `--days` (default 1) of candles;
- a CSV file or folder (`--source csv`): one task per file; the bundled sample (`--demo`).

Intraday runs keep intraday bars for MINUTE_RETENTION_DAYS: the same retention bounds how far back a
market's fetch reaches and what the run prunes afterwards. Every run ends by recomputing the rankings;
minute runs (not the sample) then evaluate the alerts.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import lib
from financial.config import Settings
from financial.extensions import db
from financial.ingest.after import AfterRun
from financial.ingest.sources import coins, crypto, demo
from financial.ingest.sources.alphavantage import StockTask
from financial.ingest.tasks import Task
from financial.storage import watchlists
from financial.upstreams import CRYPTO_SOURCES

DEFAULT_SYMBOLS = ("IBM", "AAPL")
DEFAULT_STOCK_DAYS = 14
SOURCES = ("alphavantage", "csv", *CRYPTO_SOURCES)


@dataclass(frozen=True)
class IngestRequest:
    """What the command line asks for. `source` None means stocks, or CRYPTO_SOURCE when markets are given."""

    source: str | None = None
    symbols: tuple[str, ...] = ()
    markets: tuple[lib.MarketId, ...] = ()
    path: Path | None = None
    days: int | None = None
    interval: lib.Interval = lib.Interval.DAY
    demo: bool = False

    @property
    def crypto(self) -> bool:
        return self.source in CRYPTO_SOURCES or (self.source is None and bool(self.markets))

    @property
    def tracks_watchlists(self) -> bool:
        """Minute ingests also fetch every watched market."""
        return self.interval is lib.Interval.MIN1 and not self.demo and self.source != "csv"


@dataclass(frozen=True)
class Plan:
    tasks: tuple[Task, ...]
    after: AfterRun = field(default_factory=AfterRun)


def plan_for(request: IngestRequest, settings: Settings, *, watched: Sequence[lib.MarketId] = (),
             now: dt.datetime | None = None) -> Plan:
    """The run `request` asks for; `watched` are the markets on watchlists (added to minute ingests)."""
    if request.demo:
        return Plan(tuple(demo.demo_tasks(now=now)))
    if request.source == "csv":
        assert request.path is not None  # the command line requires it
        return Plan(tuple(coins.CoinFileTask(path) for path in coins.csv_files(request.path)))
    retention = dt.timedelta(days=settings.minute_retention_days) if request.interval.is_intraday else None
    tasks: list[Task] = []
    if not request.crypto:
        tasks += [StockTask(symbol, request.interval, request.days or DEFAULT_STOCK_DAYS)
                  for symbol in request.symbols or DEFAULT_SYMBOLS]
    markets = list(request.markets)
    if request.tracks_watchlists:
        markets += [market for market in watched if market not in markets]
    if markets:
        source = request.source if request.crypto and request.source else settings.crypto_source
        first_window = dt.timedelta(days=request.days) if request.crypto and request.days else crypto.FIRST_WINDOW
        tasks += [crypto.MarketTask(market, source, request.interval, first_window, retention) for market in markets]
    return Plan(tuple(tasks), AfterRun(retention=retention, rankings=True,
                                       alerts=request.interval is lib.Interval.MIN1))


def plan_run(request: IngestRequest, settings: Settings) -> Plan:
    """`plan_for`, with the watched markets read from the database when the run tracks them."""
    watched: list[lib.MarketId] = []
    if request.tracks_watchlists:
        with db.engine.connect() as connection:
            watched = watchlists.watched_markets(connection)
    return plan_for(request, settings, watched=watched)
