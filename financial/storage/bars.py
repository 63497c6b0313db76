"""Bars: the one table of every series, keyed by (instrument, interval, ts), in naive UTC.

Upserts are native to each dialect (a re-ingest adds nothing twice and updates corrected figures);
retention deletes old intraday bars in short transactions. Both keep the hourly rollups of the series they
touch in step, in the same transaction (`storage.rollups`).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

import lib
from financial.models import AssetClass, Bar, Instrument
from financial.storage import dialect, rollups

BATCH = 5000
KEY = ("instrument_id", "interval", "ts")


class Candle(NamedTuple):
    ts: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def _new(column: str) -> Callable[[Any, Any], Any]:
    return lambda new, current: getattr(new, column)


def _new_or_kept(column: str) -> Callable[[Any, Any], Any]:
    # A source that lacks an optional figure must not erase the one another source stored.
    return lambda new, current: sa.func.coalesce(getattr(new, column), getattr(current, column))


_UPDATE: dialect.Update = {
    **{column: _new(column) for column in ("open", "high", "low", "close", "volume")},
    **{column: _new_or_kept(column) for column in ("adjusted_close", "market_cap")},
}


def rows(instrument_id: int, interval: lib.Interval | str, bars: Iterable[lib.Bar]) -> list[dict[str, Any]]:
    """Rows for `upsert`: timestamps converted to naive UTC, the storage convention."""
    interval = str(interval)
    # A lib.Bar's timestamp has a zero UTC offset (checked when it is built), so dropping the zone
    # leaves its UTC wall time; astimezone() would cost more than the rest of the row.
    return [
        {"instrument_id": instrument_id, "interval": interval, "ts": bar.timestamp.replace(tzinfo=None),
         "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume,
         "adjusted_close": bar.adjusted_close, "market_cap": bar.market_cap}
        for bar in bars
    ]


def upsert(session: Session, bar_rows: Sequence[dict[str, Any]], *, batch_size: int = BATCH) -> int:
    """Insert or update bar rows (see `rows`) by their (instrument, interval, ts) key, and re-summarise the
    hours they fall in; returns the count."""
    if not bar_rows:
        return 0
    connection = session.connection()
    dialect.execute_in_batches(connection, dialect.upsert(session, Bar, KEY, _UPDATE), bar_rows, batch_size)
    spans: dict[tuple[int, str], tuple[dt.datetime, dt.datetime]] = {}
    for row in bar_rows:
        series, ts = (row["instrument_id"], row["interval"]), row["ts"]
        first, last = spans.get(series, (ts, ts))
        spans[series] = (min(first, ts), max(last, ts))
    for (instrument_id, interval), (first, last) in spans.items():
        rollups.after_writing(connection, instrument_id, interval, first, last)
    return len(bar_rows)


def latest_time(bind: dialect.Bind, asset_class: AssetClass, symbol: str, *, exchange: str = "",
                interval: lib.Interval | str) -> dt.datetime | None:
    """The newest bar of an instrument known by its identity (None when it or its bars do not exist yet)."""
    latest = bind.scalar(
        sa.select(sa.func.max(Bar.ts)).join(Instrument, Instrument.id == Bar.instrument_id)
        .where(Instrument.asset_class == asset_class, Instrument.exchange == exchange, Instrument.symbol == symbol,
               Bar.interval == str(interval)))
    return None if latest is None else dialect.as_datetime(latest)


def candles(session: Session, instrument_id: int, interval: str, start: dt.datetime,
            end: dt.datetime) -> list[Candle]:
    """One series' bars with start < ts <= end, oldest first (a primary-key range)."""
    query = (sa.select(Bar.ts, Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume)
             .where(Bar.instrument_id == instrument_id, Bar.interval == interval, Bar.ts > start, Bar.ts <= end)
             .order_by(Bar.ts))
    return [Candle._make(row) for row in session.execute(query)]


def prune(engine: sa.Engine, intervals: Iterable[lib.Interval | str], before: dt.datetime, *,
          batch_size: int = BATCH, on_batch: Callable[[int], None] | None = None,
          touched: set[int] | None = None) -> int:
    """Delete the bars of `intervals` older than `before` (naive UTC), a batch per short transaction.

    Unlike the other functions of the storage it commits, batch by batch: that is its point. Each batch
    is one primary-key range of one series (instrument, interval), bounded by the batch's last timestamp,
    so it needs no DELETE ... LIMIT (which SQLite lacks) and locks only the rows it removes; readers go on
    reading (MVCC on InnoDB, WAL on SQLite) and an ingest waits at most one batch for its turn to write.
    `on_batch(rows)` is called after each commit; the instruments that lost bars are added to `touched`.
    Returns how many rows were deleted.
    """
    names = [str(interval) for interval in intervals]
    with engine.connect() as connection:
        # The series that have anything to delete, from the (interval, ts) index: it reads only the old
        # rows, so a run with little to prune costs little, however many series there are.
        old = connection.execute(
            sa.select(Bar.instrument_id, Bar.interval).where(Bar.interval.in_(names), Bar.ts < before)
            .distinct().order_by(Bar.instrument_id, Bar.interval)).all()
    deleted = 0
    for instrument_id, interval in old:
        series = [Bar.instrument_id == instrument_id, Bar.interval == interval]
        while True:
            with engine.begin() as connection:
                boundary = connection.scalar(sa.select(Bar.ts).where(*series, Bar.ts < before).order_by(Bar.ts)
                                             .limit(1).offset(batch_size - 1))
                last = Bar.ts <= boundary if boundary is not None else Bar.ts < before
                removed = dialect.rowcount(connection.execute(sa.delete(Bar).where(*series, last)))
                if removed:
                    rollups.after_pruning(connection, instrument_id, interval,
                                          boundary if boundary is not None else before)
            deleted += removed
            if removed and touched is not None:
                touched.add(instrument_id)
            if removed and on_batch is not None:
                on_batch(removed)
            if boundary is None:
                break
    return deleted
