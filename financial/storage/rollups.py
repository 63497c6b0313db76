"""Hourly rollups of intraday series: what the figures of a window need, kept in step with the bars.

Each hour of each intraday series has one `BarRollup` row: the count, mean and M2 (sum of squared
deviations) of its closes, its first and last bar, and the same moments of the simple returns between
consecutive bars inside the hour. A window's figures then combine whole hours with the raw bars at its
two edges (`storage.metrics.window_figures`), so their cost follows the window's hours, not its minutes.

The rows are computed from the raw bars of their hour, in SQL (two passes: the mean first, then the
squared deviations from it, so nothing cancels), and rewritten in the transaction that writes or deletes
those bars: a corrected bar re-summarises its whole hour (at most 60 rows of 1-minute bars). Daily series
have no rollups: a window holds a few hundred of their bars at most.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

import lib
from financial.models import Bar, BarRollup
from financial.storage import dialect

BUCKET = dt.timedelta(hours=1)
_COLUMNS = ("instrument_id", "interval", "bucket", "points", "mean", "m2", "first_time", "first_close", "last_time",
            "last_close", "returns", "return_mean", "return_m2")


def kept_for(interval: lib.Interval | str) -> bool:
    """Whether series of this interval have rollups (intraday ones do)."""
    return lib.Interval(str(interval)).is_intraday


def floor(ts: dt.datetime) -> dt.datetime:
    """The start of the hour `ts` falls in."""
    return ts.replace(minute=0, second=0, microsecond=0)


def ceil(ts: dt.datetime) -> dt.datetime:
    start = floor(ts)
    return start if start == ts else start + BUCKET


def whole_hours(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """[lo, hi): the hours lying wholly inside the window [start, end] (every bar of them is in it), or None."""
    lo, hi = ceil(start), floor(end)
    return (lo, hi) if lo < hi else None


def _hour_of(bind: dialect.Bind, ts: Any) -> Any:
    """The hour a bar's timestamp falls in, as an SQL expression of the stored DATETIME."""
    if dialect.name(bind) == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format): keep the hour, zero the rest.
        return sa.type_coerce(sa.func.substr(ts, 1, 13).concat(":00:00.000000"), sa.DateTime)
    return sa.cast(sa.func.date_format(ts, "%Y-%m-%d %H:00:00"), sa.DateTime)


def summarize(bind: dialect.Bind, instrument_id: int, interval: str, lo: dt.datetime,
              hi: dt.datetime) -> list[dict[str, Any]]:
    """The rollup rows of one series' hours in [lo, hi), from its raw bars."""
    bars = dialect.table_of(Bar)
    hour = _hour_of(bind, bars.c.ts)
    points = (sa.select(bars.c.ts, bars.c.close, hour.label("hour"),
                        sa.func.lag(bars.c.close).over(partition_by=hour, order_by=bars.c.ts).label("previous"))
              .where(bars.c.instrument_id == instrument_id, bars.c.interval == interval, bars.c.ts >= lo,
                     bars.c.ts < hi)
              .subquery("points"))
    ret = points.c.close / sa.func.nullif(points.c.previous, 0) - 1
    whole: dict[str, Any] = {"partition_by": points.c.hour, "order_by": points.c.ts, "rows": (None, None)}
    moments = (sa.select(points.c.hour, points.c.ts, points.c.close, ret.label("ret"),
                         sa.func.avg(points.c.close).over(partition_by=points.c.hour).label("mean"),
                         sa.func.avg(ret).over(partition_by=points.c.hour).label("return_mean"),
                         sa.func.first_value(points.c.close).over(**whole).label("first_close"),
                         sa.func.last_value(points.c.close).over(**whole).label("last_close"))
               .subquery("moments"))
    m = moments.c
    deviation, return_deviation = m.close - m.mean, m.ret - m.return_mean
    query = (sa.select(m.hour, sa.func.count(), sa.func.max(m.mean), sa.func.sum(deviation * deviation),
                       sa.func.min(m.ts), sa.func.max(m.first_close), sa.func.max(m.ts), sa.func.max(m.last_close),
                       sa.func.count(m.ret), sa.func.max(m.return_mean),
                       sa.func.sum(return_deviation * return_deviation))
             .group_by(m.hour).order_by(m.hour))
    return [dict(zip(_COLUMNS, (instrument_id, interval, *row))) for row in bind.execute(query)]


def resummarize(bind: dialect.Bind, instrument_id: int, interval: str, lo: dt.datetime, hi: dt.datetime) -> int:
    """Rewrite the rollups of one series' hours in [lo, hi) (lo and hi on hour boundaries) from its raw bars,
    in the caller's transaction; hours without bars lose their row. Returns the rows written."""
    rollups = dialect.table_of(BarRollup)
    bind.execute(sa.delete(rollups).where(rollups.c.instrument_id == instrument_id, rollups.c.interval == interval,
                                          rollups.c.bucket >= lo, rollups.c.bucket < hi))
    rows = summarize(bind, instrument_id, interval, lo, hi)
    if rows:
        bind.execute(sa.insert(rollups), rows)
    return len(rows)


def after_writing(bind: dialect.Bind, instrument_id: int, interval: str, first: dt.datetime,
                  last: dt.datetime) -> int:
    """Re-summarise the hours that bars written between `first` and `last` (naive UTC) fall in."""
    if not kept_for(interval):
        return 0
    return resummarize(bind, instrument_id, interval, floor(first), floor(last) + BUCKET)


def after_pruning(bind: dialect.Bind, instrument_id: int, interval: str, before: dt.datetime) -> None:
    """Drop the rollups of the hours wholly older than `before`, whose bars were deleted, and re-summarise the
    hour `before` falls in (partly deleted)."""
    if not kept_for(interval):
        return
    rollups = dialect.table_of(BarRollup)
    bind.execute(sa.delete(rollups).where(rollups.c.instrument_id == instrument_id, rollups.c.interval == interval,
                                          rollups.c.bucket < floor(before)))
    resummarize(bind, instrument_id, interval, floor(before), floor(before) + BUCKET)


def backfill(bind: dialect.Bind, *, chunk: dt.timedelta = dt.timedelta(days=7)) -> int:
    """Build the rollups of every intraday series already stored (a database filled before rollups existed:
    migration 0004 runs this), a week of hours per statement. Returns the rows written."""
    bars = dialect.table_of(Bar)
    intraday = [interval.value for interval in lib.Interval if interval.is_intraday]
    series = bind.execute(
        sa.select(bars.c.instrument_id, bars.c.interval, sa.func.min(bars.c.ts), sa.func.max(bars.c.ts))
        .where(bars.c.interval.in_(intraday)).group_by(bars.c.instrument_id, bars.c.interval)).all()
    written = 0
    for instrument_id, interval, first, last in series:
        lo, end = floor(dialect.as_datetime(first)), floor(dialect.as_datetime(last)) + BUCKET
        while lo < end:
            hi = min(lo + chunk, end)
            written += resummarize(bind, instrument_id, interval, lo, hi)
            lo = hi
    return written
