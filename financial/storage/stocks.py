"""System A: daily stock bars as records, and their averages over a date range."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

import lib

from financial.models import AssetClass, Bar, Instrument

DAILY = lib.Interval.DAY.value


class Record(NamedTuple):
    symbol: str
    ts: dt.datetime
    open: float
    close: float
    volume: float


class Averages(NamedTuple):
    points: int
    open: float | None
    close: float | None
    volume: float | None


def day_range(column: Any, start: dt.date | None, end: dt.date | None) -> list[Any]:
    """Conditions on a timestamp column for the inclusive date range [start, end], written so the index is
    used. A range ending on the calendar's last day has no upper bound: no later day can be written."""
    conditions = []
    if start is not None:
        conditions.append(column >= dt.datetime.combine(start, dt.time()))
    if end is not None and end < dt.date.max:
        conditions.append(column < dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
    return conditions


def _daily_stock_bars(symbol: str | None, start: dt.date | None, end: dt.date | None) -> list[Any]:
    conditions = [Instrument.asset_class == AssetClass.STOCK, Bar.interval == DAILY, *day_range(Bar.ts, start, end)]
    if symbol is not None:
        # The whole unique key pins one instrument, so MySQL reads that series by primary-key range
        # instead of scanning every instrument's daily bars through the (interval, ts) index.
        conditions += [Instrument.exchange == "", Instrument.symbol == symbol]
    return conditions


def records(session: Session, *, symbol: str | None, start: dt.date | None, end: dt.date | None,
            limit: int, offset: int) -> list[Record]:
    """One page of daily stock bars, by date then symbol."""
    query = (sa.select(Instrument.symbol, Bar.ts, Bar.open, Bar.close, Bar.volume)
             .join(Instrument, Instrument.id == Bar.instrument_id)
             .where(*_daily_stock_bars(symbol, start, end))
             .order_by(Bar.ts, Instrument.symbol)
             .limit(limit).offset(offset))
    return [Record._make(row) for row in session.execute(query)]


def count_records(session: Session, *, symbol: str | None, start: dt.date | None, end: dt.date | None) -> int:
    query = (sa.select(sa.func.count())
             .select_from(Bar).join(Instrument, Instrument.id == Bar.instrument_id)
             .where(*_daily_stock_bars(symbol, start, end)))
    return session.scalar(query) or 0


def averages(session: Session, *, symbol: str, start: dt.date, end: dt.date) -> Averages:
    """Points and mean open, close and volume of one stock's daily bars in [start, end]."""
    query = (sa.select(sa.func.count(), sa.func.avg(Bar.open), sa.func.avg(Bar.close), sa.func.avg(Bar.volume))
             .select_from(Bar).join(Instrument, Instrument.id == Bar.instrument_id)
             .where(*_daily_stock_bars(symbol, start, end)))
    return Averages._make(session.execute(query).one())
