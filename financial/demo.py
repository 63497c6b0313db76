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
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

import lib
from financial import csv_ingest, ingest
from financial.config import DATA_DIR
from financial.models import CRYPTO, STOCK
from lib.http import Response

FIXTURES = DATA_DIR / "fixtures"


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


def _stock_task(path: Path, today: dt.date) -> ingest.Task:
    symbol = path.stem.rsplit("_", 1)[-1].upper()

    def fetch() -> ingest.Series:
        bars = lib.alphavantage.parse_daily(json.loads(path.read_text()), symbol=symbol)
        shifted = shift_weekdays(bars, today - dt.timedelta(days=1))
        return ingest.Series(ingest.InstrumentSpec(STOCK, symbol), lib.Interval.DAY, shifted)

    return ingest.Task(symbol, "demo", fetch)


def shift_to(bars: Sequence[lib.Bar], newest: dt.datetime) -> list[lib.Bar]:
    """Move bars in one block so the newest starts at `newest`, every gap kept."""
    if not bars:
        return []
    delta = newest - bars[-1].timestamp
    return [replace(bar, timestamp=bar.timestamp + delta) for bar in bars]


def _crypto_task(path: Path, now: dt.datetime) -> ingest.Task:
    exchange, pair = path.stem.split("_", 1)[1].split("_", 1)  # OHLC_<exchange>_<pair>

    def fetch() -> ingest.Series:
        info = lib.cryptowatch.market_info(exchange, pair)
        result, _ = lib.cryptowatch.check_response(Response(200, {}, json.loads(path.read_text())), what=info.label)
        bars = shift_to(lib.cryptowatch.parse_ohlc(result, lib.Interval.MIN1, what=info.label),
                        now.astimezone(dt.timezone.utc).replace(second=0, microsecond=0))
        spec = ingest.InstrumentSpec(CRYPTO, pair, exchange=exchange, base=info.base, quote=info.quote,
                                     name=info.name)
        return ingest.Series(spec, lib.Interval.MIN1, bars)

    return ingest.Task(f"{exchange}:{pair}", "demo", fetch)


def _coin_task(path: Path, today: dt.date) -> ingest.Task:
    def fetch() -> ingest.Series:
        series = csv_ingest.coin_series(path)
        return replace(series, bars=shift_to(series.bars, lib.bars.day_start(today - dt.timedelta(days=1))))

    return ingest.Task(path.name, "demo", fetch)


def demo_tasks(today: dt.date | None = None, now: dt.datetime | None = None) -> list[ingest.Task]:
    now = now or dt.datetime.now(dt.timezone.utc)
    today = today or now.date()
    stocks = sorted((FIXTURES / "alphavantage").glob("TIME_SERIES_DAILY_*.json"))
    markets = sorted((FIXTURES / "cryptowatch").glob("OHLC_*.json"))
    coins = csv_ingest.csv_files(FIXTURES / "csv")
    return ([_stock_task(path, today) for path in stocks] + [_crypto_task(path, now) for path in markets]
            + [_coin_task(path, today) for path in coins])
