"""Candles for charts: one series' bars over a time range, downsampled in SQL into buckets of a fixed width.

A bucket is one `width` of seconds since 1970-01-01 UTC; its candle is the OHLCV of the bars inside it: the
first bar's open, the highest high, the lowest low, the last bar's close and the summed volume. The grouping
runs where the data lives (one primary-key range scan); the first open and last close are then read back by
primary key, so a chart of a year of minutes costs one pass over them and returns a few hundred rows.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

import lib
from financial.models import Bar
from financial.storage import dialect

EPOCH = dt.datetime(1970, 1, 1)


class Span(NamedTuple):
    """The bars of a series in a range: how many, the first and the last timestamps (None when there are none)."""

    bars: int
    first: dt.datetime | None
    last: dt.datetime | None


class Bucket(NamedTuple):
    time: dt.datetime  # the bucket's start, naive UTC
    open: float
    high: float
    low: float
    close: float
    volume: float
    bars: int


def stored_intervals(session: Session, instrument_id: int) -> list[str]:
    """The intervals an instrument has bars of, finest first (an index seek each, not a scan of its bars)."""
    return [interval.value for interval in sorted(lib.Interval, key=lambda interval: interval.seconds)
            if session.scalar(sa.select(sa.literal(1))
                              .where(Bar.instrument_id == instrument_id, Bar.interval == interval.value).limit(1))]


def _range(instrument_id: int, interval: str, after: dt.datetime | None) -> list[sa.ColumnElement[bool]]:
    conditions = [Bar.instrument_id == instrument_id, Bar.interval == interval]
    if after is not None:
        conditions.append(Bar.ts > after)
    return conditions


def latest(session: Session, instrument_id: int, interval: str) -> dt.datetime | None:
    value = session.scalar(sa.select(sa.func.max(Bar.ts)).where(*_range(instrument_id, interval, None)))
    return None if value is None else dialect.as_datetime(value)


def span(session: Session, instrument_id: int, interval: str, after: dt.datetime | None) -> Span:
    """How many bars the series has after `after` (all of them for None), and the first and last timestamps."""
    row = session.execute(sa.select(sa.func.count(), sa.func.min(Bar.ts), sa.func.max(Bar.ts))
                          .where(*_range(instrument_id, interval, after))).one()
    count, first, last = row
    return Span(count or 0, None if first is None else dialect.as_datetime(first),
                None if last is None else dialect.as_datetime(last))


def buckets(session: Session, instrument_id: int, interval: str, after: dt.datetime | None,
            width_seconds: int) -> list[Bucket]:
    """The series' bars after `after`, grouped into buckets of `width_seconds`, oldest first."""
    bars, first, last = Bar.__table__, Bar.__table__.alias("first_bar"), Bar.__table__.alias("last_bar")
    number = dialect.epoch_bucket(session, bars.c.ts, width_seconds).label("number")
    grouped = (sa.select(number, sa.func.min(bars.c.ts).label("first_ts"), sa.func.max(bars.c.ts).label("last_ts"),
                         sa.func.max(bars.c.high).label("high"), sa.func.min(bars.c.low).label("low"),
                         sa.func.sum(bars.c.volume).label("volume"), sa.func.count().label("bars"))
               .where(*_range(instrument_id, interval, after))
               .group_by(number)
               .cte("grouped"))

    def bar_at(alias: Any, ts: sa.ColumnElement) -> sa.ColumnElement[bool]:
        return sa.and_(alias.c.instrument_id == instrument_id, alias.c.interval == interval, alias.c.ts == ts)

    query = (sa.select(grouped.c.number, first.c.open, grouped.c.high, grouped.c.low, last.c.close,
                       grouped.c.volume, grouped.c.bars)
             .select_from(grouped.join(first, bar_at(first, grouped.c.first_ts))
                          .join(last, bar_at(last, grouped.c.last_ts)))
             .order_by(grouped.c.number))
    return [Bucket(EPOCH + dt.timedelta(seconds=int(row.number) * width_seconds), float(row.open), float(row.high),
                   float(row.low), float(row.close), float(row.volume), int(row.bars))
            for row in session.execute(query)]
