"""Rollups of intraday series, by the hour and by the day: what a window's figures need, kept with the bars.

Each hour of each intraday series has one row of `bar_rollups`: the count, mean and M2 (sum of squared
deviations) of its closes, its first and last bar, and the same moments of the simple returns between
consecutive bars inside it (a zero previous close gives none). Each day has one row of `bar_day_rollups`,
the same figures combined from the day's hours. A window's figures then combine whole days, whole hours
at its ends and the raw bars at its two edges (`storage.metrics.window_figures`): a 30-day window of minute
bars is some 30 days, 46 hours and 118 bars per market instead of 43,200 bars.

The hour rows are computed from the raw bars in SQL in two passes (the mean, then the squared deviations
from it, so nothing cancels); the day rows, and every window, by `combine`: segments joined in time order,
the return from one segment's last close to the next one's first counted between them, the totals' mean
first, then each segment's M2 plus its count times the squared distance of its mean from the total's
(Chan et al.'s parallel formula). Both levels are rewritten in the transaction that writes or deletes the
bars they summarise: a corrected bar re-summarises its hour (at most 60 rows) and its day (24 hours).
Daily series have no rollups: a window holds a few hundred of their bars at most.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

import lib
from financial.models import Bar, BarDayRollup, BarRollup
from financial.storage import dialect

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
COLUMNS = ("points", "mean", "m2", "first_time", "first_close", "last_time", "last_close", "returns", "return_mean",
           "return_m2")


def kept_for(interval: lib.Interval | str) -> bool:
    """Whether series of this interval have rollups (intraday ones do)."""
    return lib.Interval(str(interval)).is_intraday


def floor(ts: dt.datetime, span: dt.timedelta = HOUR) -> dt.datetime:
    """The start of the hour (or day) `ts` falls in."""
    hour = ts.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if span == DAY else hour


def ceil(ts: dt.datetime, span: dt.timedelta = HOUR) -> dt.datetime:
    start = floor(ts, span)
    return start if start == ts else start + span


def whole(start: dt.datetime, end: dt.datetime, span: dt.timedelta) -> tuple[dt.datetime, dt.datetime] | None:
    """[lo, hi): the hours (or days) lying wholly inside the window [start, end] (every bar of them is in it),
    or None."""
    lo, hi = ceil(start, span), floor(end, span)
    return (lo, hi) if lo < hi else None


# -- combining segments -------------------------------------------------------------------------------------

def segment(instrument_id: Any, group: Any, first_time: Any, last_time: Any, points: Any, mean: Any, m2: Any,
            first_close: Any, last_close: Any, returns: Any, return_mean: Any, return_m2: Any) -> list[Any]:
    """The columns of a segment, named as `combine` reads them."""
    names = ("instrument_id", "grp", "first_time", "last_time", "n", "mean", "m2", "first_close", "last_close",
             "rn", "rmean", "rm2")
    values = (instrument_id, group, first_time, last_time, points, mean, m2, first_close, last_close, returns,
              return_mean, return_m2)
    return [value.label(name) for name, value in zip(names, values)]


def raw_bars(instrument_ids: list[int], interval: str, group: Any, *bounds: Any) -> sa.Select:
    """Raw bars as segments of one bar each."""
    c = dialect.table_of(Bar).c
    return sa.select(*segment(c.instrument_id, group, c.ts, c.ts, sa.literal(1), c.close, sa.literal(0.0), c.close,
                              c.close, sa.literal(0), sa.null(), sa.null())) \
        .where(c.instrument_id.in_(instrument_ids), c.interval == interval, *bounds)


def rollup_rows(model: type[BarRollup] | type[BarDayRollup], instrument_ids: list[int], interval: str, group: Any,
                lo: dt.datetime, hi: dt.datetime) -> sa.Select:
    """Rollup rows of buckets in [lo, hi) as segments."""
    c = dialect.table_of(model).c
    return sa.select(*segment(c.instrument_id, group, c.first_time, c.last_time, c.points, c.mean, c.m2,
                              c.first_close, c.last_close, c.returns, c.return_mean, c.return_m2)) \
        .where(c.instrument_id.in_(instrument_ids), c.interval == interval, c.bucket >= lo, c.bucket < hi)


def combine(segments: sa.Subquery) -> sa.Select:
    """Per (instrument_id, grp): the figures of its segments taken together, as `COLUMNS` (plus the two keys).

    In time order, the return from each segment's last close to the next one's first joins them (none from a
    zero close); the moments of the closes and of the returns are then combined exactly, means first.
    """
    s = segments.c
    in_order: dict[str, Any] = {"partition_by": (s.instrument_id, s.grp), "order_by": s.first_time}
    previous_last = sa.func.lag(s.last_close).over(**in_order)
    frame: dict[str, Any] = {**in_order, "rows": (None, None)}
    joined = sa.select(segments, (s.first_close / sa.func.nullif(previous_last, 0) - 1).label("boundary"),
                       sa.func.first_value(s.first_close).over(**frame).label("first_price"),
                       sa.func.last_value(s.last_close).over(**frame).label("last_price")).subquery("joined")
    j = joined.c
    # Sums in time order, so that the same bars always add up the same, to the last digit.
    per: dict[str, Any] = {"partition_by": (j.instrument_id, j.grp), "order_by": j.first_time, "rows": (None, None)}
    count = sa.func.sum(j.n).over(**per)
    returns = sa.func.sum(j.rn).over(**per) + sa.func.count(j.boundary).over(**per)
    return_sum = (sa.func.sum(j.rn * sa.func.coalesce(j.rmean, 0)).over(**per)
                  + sa.func.coalesce(sa.func.sum(j.boundary).over(**per), 0))
    totals = sa.select(
        j.instrument_id, j.grp, j.n, j.mean, j.m2, j.rn, j.rmean, j.rm2, j.boundary, j.first_time, j.last_time,
        j.first_price, j.last_price, count.label("total_n"),
        (sa.func.sum(j.n * j.mean).over(**per) / count).label("total_mean"), returns.label("total_rn"),
        (return_sum / sa.func.nullif(returns, 0)).label("total_rmean")).subquery("totals")
    t = totals.c
    deviation = t.mean - t.total_mean
    return_deviation = sa.func.coalesce(t.rmean, 0) - t.total_rmean
    boundary_deviation = t.boundary - t.total_rmean
    return_m2 = (sa.func.sum(sa.func.coalesce(t.rm2, 0) + t.rn * return_deviation * return_deviation)
                 + sa.func.coalesce(sa.func.sum(boundary_deviation * boundary_deviation), 0))
    total_returns = sa.func.max(t.total_rn)
    return (sa.select(t.instrument_id, t.grp, sa.func.max(t.total_n), sa.func.max(t.total_mean),
                      sa.func.sum(t.m2 + t.n * deviation * deviation), sa.func.min(t.first_time),
                      sa.func.max(t.first_price), sa.func.max(t.last_time), sa.func.max(t.last_price), total_returns,
                      sa.case((total_returns > 0, sa.func.max(t.total_rmean))),
                      sa.case((total_returns > 0, return_m2)))
            .group_by(t.instrument_id, t.grp))


# -- the hours and the days of one series ---------------------------------------------------------------------

def _hour_of(bind: dialect.Bind, ts: Any) -> Any:
    """The hour a bar's timestamp falls in, as an SQL expression of the stored DATETIME."""
    if dialect.name(bind) == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format): keep the hour, zero the rest.
        return sa.type_coerce(sa.func.substr(ts, 1, 13).concat(":00:00.000000"), sa.DateTime)
    return sa.cast(sa.func.date_format(ts, "%Y-%m-%d %H:00:00"), sa.DateTime)


def _day_of(bind: dialect.Bind, ts: Any) -> Any:
    if dialect.name(bind) == "sqlite":
        return sa.type_coerce(sa.func.substr(ts, 1, 10).concat(" 00:00:00.000000"), sa.DateTime)
    return sa.cast(sa.func.date(ts), sa.DateTime)


def summarize_hours(bind: dialect.Bind, instrument_id: int, interval: str, lo: dt.datetime,
                    hi: dt.datetime) -> list[dict[str, Any]]:
    """The hour rows of one series' hours in [lo, hi), from its raw bars."""
    bars = dialect.table_of(Bar)
    hour = _hour_of(bind, bars.c.ts)
    points = (sa.select(bars.c.ts, bars.c.close, hour.label("hour"),
                        sa.func.lag(bars.c.close).over(partition_by=hour, order_by=bars.c.ts).label("previous"))
              .where(bars.c.instrument_id == instrument_id, bars.c.interval == interval, bars.c.ts >= lo,
                     bars.c.ts < hi)
              .subquery("points"))
    ret = points.c.close / sa.func.nullif(points.c.previous, 0) - 1
    frame: dict[str, Any] = {"partition_by": points.c.hour, "order_by": points.c.ts, "rows": (None, None)}
    moments = (sa.select(points.c.hour, points.c.ts, points.c.close, ret.label("ret"),
                         sa.func.avg(points.c.close).over(partition_by=points.c.hour).label("mean"),
                         sa.func.avg(ret).over(partition_by=points.c.hour).label("return_mean"),
                         sa.func.first_value(points.c.close).over(**frame).label("first_close"),
                         sa.func.last_value(points.c.close).over(**frame).label("last_close"))
               .subquery("moments"))
    m = moments.c
    deviation, return_deviation = m.close - m.mean, m.ret - m.return_mean
    query = (sa.select(m.hour, sa.func.count(), sa.func.max(m.mean), sa.func.sum(deviation * deviation),
                       sa.func.min(m.ts), sa.func.max(m.first_close), sa.func.max(m.ts), sa.func.max(m.last_close),
                       sa.func.count(m.ret), sa.func.max(m.return_mean),
                       sa.func.sum(return_deviation * return_deviation))
             .group_by(m.hour))
    return [_row(instrument_id, interval, bucket, figures) for bucket, *figures in bind.execute(query)]


def summarize_days(bind: dialect.Bind, instrument_id: int, interval: str, lo: dt.datetime,
                   hi: dt.datetime) -> list[dict[str, Any]]:
    """The day rows of one series' days in [lo, hi), combined from its hour rows."""
    hours = dialect.table_of(BarRollup)
    day = _day_of(bind, hours.c.bucket)
    segments = rollup_rows(BarRollup, [instrument_id], interval, day, lo, hi).subquery("segments")
    return [_row(instrument_id, interval, bucket, figures)
            for _, bucket, *figures in bind.execute(combine(segments))]


def _row(instrument_id: int, interval: str, bucket: Any, figures: list[Any]) -> dict[str, Any]:
    return {"instrument_id": instrument_id, "interval": interval, "bucket": dialect.as_datetime(bucket),
            **dict(zip(COLUMNS, figures))}


def _rewrite(bind: dialect.Bind, model: type[BarRollup] | type[BarDayRollup], instrument_id: int, interval: str,
             lo: dt.datetime, hi: dt.datetime, rows: list[dict[str, Any]]) -> None:
    table = dialect.table_of(model)
    bind.execute(sa.delete(table).where(table.c.instrument_id == instrument_id, table.c.interval == interval,
                                        table.c.bucket >= lo, table.c.bucket < hi))
    if rows:
        bind.execute(sa.insert(table), rows)


def resummarize(bind: dialect.Bind, instrument_id: int, interval: str, lo: dt.datetime, hi: dt.datetime) -> int:
    """Rewrite one series' rollups over [lo, hi) from its raw bars, in the caller's transaction: its hours
    there, then the days they fall in. Buckets left without bars lose their row. Returns the hours written."""
    lo, hi = floor(lo), ceil(hi)
    hours = summarize_hours(bind, instrument_id, interval, lo, hi)
    _rewrite(bind, BarRollup, instrument_id, interval, lo, hi, hours)
    day_lo, day_hi = floor(lo, DAY), ceil(hi, DAY)
    _rewrite(bind, BarDayRollup, instrument_id, interval, day_lo, day_hi,
             summarize_days(bind, instrument_id, interval, day_lo, day_hi))
    return len(hours)


def after_writing(bind: dialect.Bind, instrument_id: int, interval: str, first: dt.datetime,
                  last: dt.datetime) -> int:
    """Re-summarise the hours and days that bars written between `first` and `last` (naive UTC) fall in."""
    if not kept_for(interval):
        return 0
    return resummarize(bind, instrument_id, interval, first, last + dt.timedelta(microseconds=1))


def after_pruning(bind: dialect.Bind, instrument_id: int, interval: str, before: dt.datetime) -> None:
    """Drop the rollups of the hours and days wholly older than `before`, whose bars were deleted, and
    re-summarise those that `before` falls in (partly deleted)."""
    if not kept_for(interval):
        return
    for model, span in ((BarRollup, HOUR), (BarDayRollup, DAY)):
        table = dialect.table_of(model)
        bind.execute(sa.delete(table).where(table.c.instrument_id == instrument_id, table.c.interval == interval,
                                            table.c.bucket < floor(before, span)))
    resummarize(bind, instrument_id, interval, floor(before, DAY), floor(before, DAY) + DAY)


def backfill(bind: dialect.Bind, *, chunk: dt.timedelta = dt.timedelta(days=7)) -> int:
    """Build the rollups of every intraday series already stored (a database filled before rollups existed:
    the migrations that add them run this), a week per statement. Returns the hour rows written."""
    bars = dialect.table_of(Bar)
    intraday = [interval.value for interval in lib.Interval if interval.is_intraday]
    series = bind.execute(
        sa.select(bars.c.instrument_id, bars.c.interval, sa.func.min(bars.c.ts), sa.func.max(bars.c.ts))
        .where(bars.c.interval.in_(intraday)).group_by(bars.c.instrument_id, bars.c.interval)).all()
    written = 0
    for instrument_id, interval, first, last in series:
        lo, end = floor(dialect.as_datetime(first), DAY), ceil(dialect.as_datetime(last), DAY) + DAY
        while lo < end:
            hi = min(lo + chunk, end)
            written += resummarize(bind, instrument_id, interval, lo, hi)
            lo = hi
    return written
