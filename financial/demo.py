"""The bundled sample data (`get_raw_data.py --demo`, `make run`), loaded offline.

The files under data/fixtures/ are in the upstreams' own wire formats and go through the same parsers as
live data. Their dates are fixed when the files are generated, so on loading they are moved forward in
one block: the newest daily bar lands on the last weekday before today, keeping the weekday pattern,
and the sample never goes stale. The coins' historical CSV files (data/fixtures/csv/) go through the CSV
import's own reading and checks, and are moved by calendar days (coins trade every day) so that their
newest row is yesterday.
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
from financial.models import STOCK

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


def shift_days(bars: Sequence[lib.Bar], last_day: dt.date) -> list[lib.Bar]:
    """Re-date daily bars by whole calendar days so the newest falls on `last_day`."""
    if not bars:
        return []
    offset = last_day - bars[-1].date
    return [replace(bar, timestamp=bar.timestamp + offset) for bar in bars]


def _stock_task(path: Path, today: dt.date) -> ingest.Task:
    symbol = path.stem.rsplit("_", 1)[-1].upper()

    def fetch() -> ingest.Series:
        bars = lib.alphavantage.parse_daily(json.loads(path.read_text()), symbol=symbol)
        shifted = shift_weekdays(bars, today - dt.timedelta(days=1))
        return ingest.Series(ingest.InstrumentSpec(STOCK, symbol), lib.Interval.DAY, shifted)

    return ingest.Task(symbol, "demo", fetch)


def _coin_task(path: Path, today: dt.date) -> ingest.Task:
    def fetch() -> ingest.Series:
        series = csv_ingest.coin_series(path)
        return replace(series, bars=shift_days(series.bars, today - dt.timedelta(days=1)))

    return ingest.Task(path.name, "demo", fetch)


def demo_tasks(today: dt.date | None = None) -> list[ingest.Task]:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    files = sorted((FIXTURES / "alphavantage").glob("TIME_SERIES_DAILY_*.json"))
    return [_stock_task(path, today) for path in files] + coin_tasks(today)


def coin_tasks(today: dt.date) -> list[ingest.Task]:
    """The sample coins' CSV files, re-dated to end yesterday."""
    return [_coin_task(path, today) for path in csv_ingest.csv_files(FIXTURES / "csv")]
