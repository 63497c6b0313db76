"""Deterministic, realistic synthetic price series for tests and sample data.

The same seed (any str or int) always yields the same bars, on every machine and Python run: the
generator is `random.Random(seed)`, which hashes str seeds with SHA-512 rather than `hash()`.
Prices follow a geometric random walk; every bar satisfies low <= min(open, close) <= max(open, close)
<= high, and volumes scatter log-normally around a level drawn from the seed.
"""
from __future__ import annotations

import datetime as dt
import math
import random

from lib.bars import Bar, day_start

DAILY_SIGMA = 0.015  # daily log-return standard deviation, about that of a large-cap stock
MINUTE_SIGMA = 0.0008  # per-minute log-return standard deviation


def _rng(kind: str, seed: str | int) -> random.Random:
    return random.Random(f"{kind}:{type(seed).__name__}:{seed}")


def last_weekday(day: dt.date) -> dt.date:
    """`day` itself on Monday..Friday, else the Friday before it."""
    return day - dt.timedelta(days=max(0, day.weekday() - 4))


def weekdays_ending(end: dt.date, count: int) -> list[dt.date]:
    """The `count` weekdays up to and including the last weekday <= `end`, oldest first."""
    days: list[dt.date] = []
    day = last_weekday(end)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[::-1]


def _candle(rng: random.Random, open_: float, sigma: float, decimals: int) -> tuple[float, float, float, float]:
    """One OHLC quadruple from `open_`: close by a log-normal step, wicks beyond the body."""
    close = open_ * math.exp(rng.gauss(0.0, sigma))
    open_r, close_r = round(open_, decimals), round(close, decimals)
    # round() is monotonic, so rounding the widened body keeps high >= max and low <= min.
    high = round(max(open_r, close_r) * (1 + abs(rng.gauss(0.0, sigma / 2))), decimals)
    low = round(min(open_r, close_r) * (1 - min(0.5, abs(rng.gauss(0.0, sigma / 2)))), decimals)
    return open_r, high, low, close_r


def daily_bars(seed: str | int, *, end: dt.date, count: int, start_price: float = 100.0) -> list[Bar]:
    """`count` weekday bars ending on the last weekday <= `end`, oldest first, stamped midnight UTC.

    Prices have 4 decimals, volumes are whole numbers (as floats) in the millions; each day opens
    with a small gap from the previous close.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = _rng("daily", seed)
    base_volume = rng.uniform(2e6, 3e7)
    price = float(start_price)
    bars = []
    for day in weekdays_ending(end, count):
        open_ = price * math.exp(rng.gauss(0.0, DAILY_SIGMA / 4))  # overnight gap
        o, h, low, c = _candle(rng, open_, DAILY_SIGMA, 4)
        volume = float(round(base_volume * math.exp(rng.gauss(0.0, 0.35))))
        bars.append(Bar(timestamp=day_start(day), open=o, high=h, low=low, close=c, volume=volume))
        price = c
    return bars


def floor_time(moment: dt.datetime, seconds: int) -> dt.datetime:
    """`moment` (aware) in UTC, floored to a multiple of `seconds` since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    epoch = int(moment.timestamp()) // seconds * seconds
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def minute_bars(seed: str | int, *, end: dt.datetime, count: int, start_price: float = 100.0,
                interval_seconds: int = 60, price_decimals: int | None = None,
                volume_decimals: int = 4) -> list[Bar]:
    """`count` consecutive bars of `interval_seconds`, the last starting at `end` floored, oldest first.

    Each bar opens at the previous close. Prices are rounded to `price_decimals` (default 4, or 8 below a
    start price of 1); volumes to `volume_decimals` (pass 0 for whole-number volumes, as stock feeds have).
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be positive")
    decimals = price_decimals if price_decimals is not None else (4 if start_price >= 1 else 8)
    rng = _rng(f"minute{interval_seconds}", seed)
    sigma = MINUTE_SIGMA * math.sqrt(interval_seconds / 60)
    base_volume = rng.uniform(5.0, 500.0) * interval_seconds / 60
    last = floor_time(end, interval_seconds)
    step = dt.timedelta(seconds=interval_seconds)
    price = float(start_price)
    bars = []
    for i in range(count):
        stamp = last - step * (count - 1 - i)
        o, h, low, c = _candle(rng, price, sigma, decimals)
        volume = round(base_volume * math.exp(rng.gauss(0.0, 0.6)), volume_decimals)
        bars.append(Bar(timestamp=stamp, open=o, high=h, low=low, close=c, volume=float(volume)))
        price = c
    return bars
