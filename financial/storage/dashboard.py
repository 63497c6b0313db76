"""System D: each instrument's daily figures on a date and their changes against earlier dates, in SQL."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

import lib

from financial.models import Bar, Instrument
from financial.storage import dialect

DAILY = lib.Interval.DAY.value
DAY_CHANGES = {"change_1d": 1, "change_7d": 7, "change_30d": 30}  # column -> calendar days back
ORDER = ("crypto", "symbol", "price", "change_1d", "change_7d", "change_30d", "volume", "market_cap")


class Entry(NamedTuple):
    id: int
    crypto: str
    symbol: str
    price: float | None
    change_1d: float | None
    change_7d: float | None
    change_30d: float | None
    volume: float | None
    market_cap: float | None


class Daily(NamedTuple):
    id: int
    symbol: str


def _has_daily_bars() -> Any:
    # A correlated "first one" lookup rather than EXISTS, which MySQL turns into a semi-join that reads
    # the (interval, ts) index of every daily bar.
    first = (sa.select(Bar.ts).where(Bar.instrument_id == Instrument.id, Bar.interval == DAILY)
             .limit(1).scalar_subquery())
    return first.is_not(None)


def _last_daily_times(session: Session, before: dt.datetime) -> sa.Subquery:
    """(instrument_id, ts): the time of each instrument's last daily bar before `before`, as a subquery to
    join. Each dialect gets the form its planner turns into one index seek per instrument:
    - SQLite: a correlated MAX() per instrument, which it answers from the end of the primary-key range;
    - MySQL: MAX() grouped by instrument, which it answers with a loose index scan of the primary key
      (a correlated lookup would scan the instrument's whole series there, since a range on `ts` cannot
      be built from a correlated value).
    """
    if dialect.name(session) == "sqlite":
        bar = sa.orm.aliased(Bar)
        last = (sa.select(sa.func.max(bar.ts))
                .where(bar.instrument_id == Instrument.id, bar.interval == DAILY, bar.ts < before)
                .scalar_subquery())
        return sa.select(Instrument.id.label("instrument_id"), last.label("ts")).subquery()
    return (sa.select(Bar.instrument_id, sa.func.max(Bar.ts).label("ts"))
            .where(Bar.interval == DAILY, Bar.ts < before).group_by(Bar.instrument_id).subquery())


def daily_instruments(session: Session, symbols: Sequence[str]) -> list[Daily]:
    """The instruments with daily bars whose symbol is one of `symbols` (upper-case), compared
    case-insensitively; a symbol shared by several instruments gives each of them."""
    query = (sa.select(Instrument.id, Instrument.symbol)
             .where(sa.func.upper(Instrument.symbol).in_(list(symbols)), _has_daily_bars())
             .order_by(Instrument.id))
    return [Daily._make(row) for row in session.execute(query)]


def _shifted(moment: dt.datetime, days: int) -> dt.datetime:
    """`moment` moved by `days`, held at the calendar's ends: any day may be asked for, and no bar lies
    before its first moment or after its last."""
    try:
        return moment + dt.timedelta(days=days)
    except OverflowError:
        return dt.datetime.max if days > 0 else dt.datetime.min


def latest_daily_date(session: Session, instrument_ids: Sequence[int] | None = None) -> dt.date | None:
    """The date of the newest daily bar of the given instruments (of any instrument, without them)."""
    query = sa.select(sa.func.max(Bar.ts)).where(Bar.interval == DAILY)  # the (interval, ts) index
    if instrument_ids is not None:
        query = query.where(Bar.instrument_id.in_(list(instrument_ids)))
    latest = session.scalar(query)
    return dialect.as_datetime(latest).date() if latest is not None else None


def entries(session: Session, *, day: dt.date, instrument_ids: Sequence[int] | None, order_by: str,
            descending: bool) -> list[Entry]:
    """Each instrument's daily figures on `day`, sorted, in SQL.

    The close, volume and market cap of the last daily bar on or before `day`, and the percent change of
    that close against the last close on or before `day` minus 1, 7 and 30 calendar days (NULL without
    such a bar or when that close is 0). `crypto` is the name, or the symbol when there is none. With
    `instrument_ids` None: every instrument with a daily bar on or before `day`; else those instruments,
    with NULL figures when they have no bar by then. Sorted by `order_by` (one of ORDER), NULLs last in
    both directions, ties by symbol, name and id.

    Each bar is found by looking up its time (`_last_daily_times`) and joined on the whole primary key: a
    few index seeks per instrument, whatever the length of its history.
    """
    end = _shifted(dt.datetime.combine(day, dt.time()), 1)
    crypto = sa.func.coalesce(sa.func.nullif(Instrument.name, ""), Instrument.symbol)
    query = sa.select(Instrument.id, crypto.label("crypto"), Instrument.symbol)

    def last_bar(before: dt.datetime) -> tuple[Any, sa.Subquery]:
        """Join the instrument's last daily bar before `before` (outer: NULLs when there is none)."""
        nonlocal query
        times, bar = _last_daily_times(session, before), sa.orm.aliased(Bar)
        query = (query.outerjoin(times, times.c.instrument_id == Instrument.id)
                 .outerjoin(bar, sa.and_(bar.instrument_id == Instrument.id, bar.interval == DAILY,
                                         bar.ts == times.c.ts)))
        return bar, times

    now, now_times = last_bar(end)
    figures: dict[str, Any] = {"price": now.close, "volume": now.volume, "market_cap": now.market_cap}
    for column, days in DAY_CHANGES.items():
        then, _ = last_bar(_shifted(end, -days))
        figures[column] = (now.close - then.close) / sa.func.nullif(then.close, 0) * 100
    query = query.add_columns(*(figures[column].label(column) for column in ORDER[2:]))
    if instrument_ids is None:
        # On the looked-up time, not on the bar: `bar.ts IS NOT NULL` makes SQLite drive the query from
        # the daily bars of every instrument.
        query = query.where(now_times.c.ts.is_not(None))
    else:
        query = query.where(Instrument.id.in_(list(instrument_ids)))
    keys = {"crypto": sa.func.lower(crypto), "symbol": sa.func.lower(Instrument.symbol), **figures}
    key = keys[order_by]
    query = query.order_by(key.is_(None), key.desc() if descending else key.asc(),
                           sa.func.lower(Instrument.symbol), sa.func.lower(crypto), Instrument.id)
    return [Entry._make(row) for row in session.execute(query)]
