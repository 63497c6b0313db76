"""OHLCV candles of one instrument for charts, over a range ending at its newest bar, in a bounded number.

The candle width asked for (`interval`, default the finest stored) is read from the coarsest stored series
that is not coarser than it (5-minute candles from minute bars, daily candles from daily bars or from
minutes); when the range holds more candles of that width than `points`, the width grows to the smallest
"round" width (2, 5, 10, 15, 30 minutes, 1, 2, 4, 6, 12 hours, 1, 2, 7, 14, 28 days...) that fits, so a
chart never receives more than `points` candles, however long the range. Buckets start at whole multiples
of their width since 1970-01-01 UTC (a daily candle is a UTC calendar day).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import lib
from financial.errors import NotFound
from financial.extensions import db_session
from financial.models import Instrument
from financial.storage import candles as storage

RANGES = {"1d": 1, "7d": 7, "1m": 30, "1y": 365, "all": None}  # days back from the newest bar
DEFAULT_POINTS, MIN_POINTS, MAX_POINTS = 500, 10, 2000
DAY = 86_400
ROUND_WIDTHS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 21_600, 43_200,
                DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 182 * DAY, 364 * DAY)
MAX_ID = 2**31 - 1  # instrument ids are INTEGER columns: a larger id cannot exist (nor be bound on SQLite)
INTERVALS = [interval.value for interval in sorted(lib.Interval, key=lambda interval: interval.seconds)]


def parse_range(text: str) -> str:
    """1d, 7d, 1m (30 days), 1y (365 days) or all, case-insensitive."""
    value = text.strip().lower()
    if value not in RANGES:
        raise ValueError(f"must be one of {', '.join(RANGES)}")
    return value


def _seconds(interval: str) -> int:
    return lib.Interval(interval).seconds


def bucket_count(first: dt.datetime, last: dt.datetime, width: int) -> int:
    """How many buckets of `width` seconds (aligned on the epoch) hold bars from `first` to `last`."""
    def number(moment: dt.datetime) -> int:
        return int((moment - storage.EPOCH).total_seconds()) // width
    return number(last) - number(first) + 1


def bucket_width(width: int, first: dt.datetime, last: dt.datetime, points: int) -> int:
    """`width` when the bars from `first` to `last` fit in `points` buckets of it, else the smallest round
    multiple of it that fits (beyond the round widths, whole multiples of the longest one)."""
    for candidate in (width, *(wider for wider in ROUND_WIDTHS if wider > width and wider % width == 0)):
        if bucket_count(first, last, candidate) <= points:
            return candidate
    longest = ROUND_WIDTHS[-1] if ROUND_WIDTHS[-1] % width == 0 else width
    multiple = max(1, int((last - first).total_seconds()) // ((points - 1) * longest))
    while bucket_count(first, last, multiple * longest) > points:
        multiple += 1
    return multiple * longest


def candles(instrument_id: int, *, interval: str | None, period: str, points: int) -> dict[str, Any]:
    """The instrument, its stored intervals, and its candles over the `period` (a key of RANGES) before its
    newest bar (see the module's docstring)."""
    session = db_session()
    instrument = session.get(Instrument, instrument_id) if instrument_id <= MAX_ID else None
    if instrument is None:
        raise NotFound(f"no tracked instrument with id {instrument_id}")
    stored = storage.stored_intervals(session, instrument_id)
    answer: dict[str, Any] = {
        "id": instrument.id, "asset_class": instrument.asset_class, "exchange": instrument.exchange or None,
        "symbol": instrument.symbol, "name": instrument.name or instrument.symbol, "intervals": stored,
        "interval": interval, "source_interval": None, "range": period, "bucket_seconds": None, "bars": 0,
        "last_time": None, "candles": []}
    if not stored:
        return answer
    width = _seconds(interval) if interval else _seconds(stored[0])
    usable = [name for name in stored if _seconds(name) <= width]
    if not usable:  # a well-formed request for candles that this instrument's bars cannot make
        raise NotFound(f"interval: no {interval} candles for this instrument: its finest stored bars are "
                       f"{stored[0]}")
    source = usable[-1]
    newest = storage.latest(session, instrument_id, source)
    assert newest is not None  # the series exists
    days = RANGES[period]
    after = None if days is None else newest - dt.timedelta(days=days)
    found = storage.span(session, instrument_id, source, after)
    assert found.first is not None and found.last is not None
    bucket = bucket_width(width, found.first, found.last, points)
    rows = storage.buckets(session, instrument_id, source, after, bucket)
    answer.update(interval=interval or stored[0], source_interval=source, bucket_seconds=bucket, bars=found.bars,
                  last_time=newest,
                  candles=[{"time": row.time, "open": row.open, "high": row.high, "low": row.low, "close": row.close,
                            "volume": row.volume} for row in rows])
    return answer
