"""Typed price bars: the one shape every upstream source is turned into.

A `Bar` is one OHLCV candle. Its `timestamp` is always timezone-aware UTC and marks the start of the
candle; daily bars carry midnight UTC of their trading date, so the date survives storage unchanged.
"""
from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass


class Interval(str, enum.Enum):
    """Bar resolutions. The value is the spelling used on the command line, in the API and in storage."""

    MIN1 = "1min"
    MIN5 = "5min"
    MIN15 = "15min"
    MIN30 = "30min"
    MIN60 = "60min"
    DAY = "1day"

    @property
    def seconds(self) -> int:
        return _SECONDS[self]

    @property
    def is_intraday(self) -> bool:
        return self is not Interval.DAY

    @classmethod
    def parse(cls, text: str) -> "Interval":
        """Accept the canonical spelling plus the common aliases (`daily`, `1d`, `1m`, `1h`)."""
        key = text.strip().lower()
        try:
            return cls(_ALIASES.get(key, key))
        except ValueError:
            choices = ", ".join(i.value for i in cls)
            raise ValueError(f"unknown interval {text!r}; expected one of {choices}") from None

    def __str__(self) -> str:
        return self.value


_SECONDS = {
    Interval.MIN1: 60,
    Interval.MIN5: 300,
    Interval.MIN15: 900,
    Interval.MIN30: 1800,
    Interval.MIN60: 3600,
    Interval.DAY: 86400,
}
_UTC = dt.timezone.utc
_ZERO = dt.timedelta(0)
_INF = math.inf
_ALIASES = {"daily": "1day", "1d": "1day", "day": "1day", "1m": "1min", "5m": "5min", "15m": "15min",
            "30m": "30min", "1h": "60min", "60m": "60min"}


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV candle. Prices are in the instrument's quote currency; volume in base units."""

    timestamp: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    adjusted_close: float | None = None
    market_cap: float | None = None

    def __post_init__(self) -> None:
        # Every ingested row passes here, so the common case is a handful of comparisons. Chained
        # comparisons are False for NaN, so `0 <= x < inf` also rejects NaN.
        stamp = self.timestamp
        if stamp.tzinfo is not _UTC and (stamp.tzinfo is None or stamp.utcoffset() != _ZERO):
            raise ValueError(f"bar timestamp must be timezone-aware UTC, got {stamp!r}")
        if not (0 <= self.low <= self.high < _INF and 0 <= self.open < _INF and 0 <= self.close < _INF
                and 0 <= self.volume < _INF and (self.adjusted_close is None or 0 <= self.adjusted_close < _INF)
                and (self.market_cap is None or 0 <= self.market_cap < _INF)):
            self._explain()

    def _explain(self) -> None:
        """Raise the ValueError that names what is wrong (the slow path of validation)."""
        for name in ("open", "high", "low", "close", "volume"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"bar {name} must be a finite non-negative number, got {value!r}")
        if self.low > self.high:
            raise ValueError(f"bar low {self.low} is above its high {self.high}")
        for name in ("adjusted_close", "market_cap"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ValueError(f"bar {name} must be a finite non-negative number or None, got {value!r}")
        raise ValueError(f"invalid bar {self!r}")

    @property
    def date(self) -> dt.date:
        return self.timestamp.date()


def utc(value: dt.datetime) -> dt.datetime:
    """Return `value` as aware UTC; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def day_start(day: dt.date) -> dt.datetime:
    """The timestamp a daily bar of `day` carries: midnight UTC of that date."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
