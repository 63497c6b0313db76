"""System B: each instrument's figures over a time window, and the stored rankings of the standard windows."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from financial.models import Bar, BarRollup, Ranking
from financial.storage import dialect, rollups


class WindowFigures(NamedTuple):
    """Sufficient figures of one series over a window: variances, not deviations (see `window_figures`)."""

    instrument_id: int
    points: int
    mean: float
    last_time: dt.datetime
    last_price: float
    variance: float
    return_variance: float | None


class Price(NamedTuple):
    ts: dt.datetime
    close: float


def window_figures(session: Session, instrument_ids: Sequence[int], interval: str, start: dt.datetime,
                   end: dt.datetime) -> list[WindowFigures]:
    """Per instrument with bars of `interval` in [start, end]: points, mean close, variance of the close,
    variance of the simple returns between consecutive bars, last time and last close.

    The window is cut into segments: the hours wholly inside it, each one hourly rollup, and the raw bars
    at its two edges, each a segment of one bar (a daily series, or a window shorter than two hours, is
    raw bars only). Consecutive segments are joined by the return from one's last close to the next one's
    first. The segments are combined exactly, in SQL: the window's mean first, then each segment's sum of
    squared deviations from its own mean plus its count times the squared distance of its mean from the
    window's (Chan et al.'s parallel formula), for the closes and for the returns alike; nothing is a raw
    sum of squares, so nothing cancels. Variances are population variances; a zero previous close gives no
    return. SQLite has no STDDEV_POP, so both dialects run the same SQL.
    """
    if not instrument_ids:
        return []
    segments = _segments(list(instrument_ids), interval, start, end).subquery("segments")
    s = segments.c
    previous_last = sa.func.lag(s.last_close).over(partition_by=s.instrument_id, order_by=s.first_time)
    joined = sa.select(segments, (s.first_close / sa.func.nullif(previous_last, 0) - 1).label("boundary")) \
        .subquery("joined")
    j = joined.c
    per: dict[str, Any] = {"partition_by": j.instrument_id}
    count = sa.func.sum(j.n).over(**per)
    returns = sa.func.sum(j.rn).over(**per) + sa.func.count(j.boundary).over(**per)
    return_sum = (sa.func.sum(j.rn * sa.func.coalesce(j.rmean, 0)).over(**per)
                  + sa.func.coalesce(sa.func.sum(j.boundary).over(**per), 0))
    totals = sa.select(
        j.instrument_id, j.n, j.mean, j.m2, j.rn, j.rmean, j.rm2, j.boundary, j.last_time,
        count.label("total_n"), (sa.func.sum(j.n * j.mean).over(**per) / count).label("total_mean"),
        returns.label("total_rn"), (return_sum / sa.func.nullif(returns, 0)).label("total_rmean"),
        sa.func.last_value(j.last_close).over(partition_by=j.instrument_id, order_by=j.first_time,
                                              rows=(None, None)).label("last_price"),
    ).subquery("totals")
    t = totals.c
    deviation = t.mean - t.total_mean
    return_deviation = sa.func.coalesce(t.rmean, 0) - t.total_rmean
    boundary_deviation = t.boundary - t.total_rmean
    query = (sa.select(
        t.instrument_id, sa.func.max(t.total_n), sa.func.max(t.total_mean), sa.func.max(t.last_time),
        sa.func.max(t.last_price), sa.func.sum(t.m2 + t.n * deviation * deviation) / sa.func.max(t.total_n),
        (sa.func.sum(sa.func.coalesce(t.rm2, 0) + t.rn * return_deviation * return_deviation)
         + sa.func.coalesce(sa.func.sum(boundary_deviation * boundary_deviation), 0))
        / sa.func.nullif(sa.func.max(t.total_rn), 0))
        .group_by(t.instrument_id))
    return [WindowFigures(instrument_id, int(points), float(mean), dialect.as_datetime(last_time), float(last_price),
                          float(variance), None if return_variance is None else float(return_variance))
            for instrument_id, points, mean, last_time, last_price, variance, return_variance
            in session.execute(query)]


def _segments(instrument_ids: list[int], interval: str, start: dt.datetime, end: dt.datetime) -> Any:
    """The window's segments (see `window_figures`): whole hours from the rollups, raw bars around them."""
    bars, rollups_table = dialect.table_of(Bar), dialect.table_of(BarRollup)
    series = [bars.c.instrument_id.in_(instrument_ids), bars.c.interval == interval]

    def raw(*bounds: Any) -> Any:
        c = bars.c
        return sa.select(c.instrument_id, c.ts.label("first_time"), c.ts.label("last_time"), sa.literal(1).label("n"),
                         c.close.label("mean"), sa.literal(0.0).label("m2"), c.close.label("first_close"),
                         c.close.label("last_close"), sa.literal(0).label("rn"), sa.null().label("rmean"),
                         sa.null().label("rm2")).where(*series, *bounds)

    hours = rollups.whole_hours(start, end) if rollups.kept_for(interval) else None
    if hours is None:
        return raw(bars.c.ts >= start, bars.c.ts <= end)
    lo, hi = hours
    r = rollups_table.c
    whole = sa.select(r.instrument_id, r.first_time, r.last_time, r.points, r.mean, r.m2, r.first_close,
                      r.last_close, r.returns, r.return_mean, r.return_m2) \
        .where(r.instrument_id.in_(instrument_ids), r.interval == interval, r.bucket >= lo, r.bucket < hi)
    # Each edge a range of its own, so that each reads only its few bars of the primary key.
    return sa.union_all(raw(bars.c.ts >= start, bars.c.ts < lo), whole, raw(bars.c.ts >= hi, bars.c.ts <= end))


def _window(instrument_id: int, interval: str, start: dt.datetime, end: dt.datetime) -> list[Any]:
    return [Bar.instrument_id == instrument_id, Bar.interval == interval, Bar.ts >= start, Bar.ts <= end]


def window_prices(session: Session, instrument_id: int, interval: str, start: dt.datetime, end: dt.datetime, *,
                  limit: int, offset: int) -> list[Price]:
    """One page of a series' closes in [start, end], oldest first."""
    query = (sa.select(Bar.ts, Bar.close).where(*_window(instrument_id, interval, start, end))
             .order_by(Bar.ts).limit(limit).offset(offset))
    return [Price._make(row) for row in session.execute(query)]


def count_window_prices(session: Session, instrument_id: int, interval: str, start: dt.datetime,
                        end: dt.datetime) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Bar)
                          .where(*_window(instrument_id, interval, start, end))) or 0


def replace_rankings(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Replace every stored ranking by `rows` (dicts of Ranking's columns)."""
    session.execute(sa.delete(Ranking))
    if rows:
        session.execute(sa.insert(Ranking), list(rows))


def rankings(session: Session, window_hours: int | None = None) -> list[Ranking]:
    """The stored rankings of one window (of every window, without one)."""
    query = sa.select(Ranking)
    if window_hours is not None:
        query = query.where(Ranking.window_hours == window_hours)
    return list(session.scalars(query))


def rankings_as_of(session: Session) -> dt.datetime | None:
    """The moment the newest stored rankings' windows end: the last ingest's."""
    as_of = session.scalar(sa.select(sa.func.max(Ranking.as_of)))
    return None if as_of is None else dialect.as_datetime(as_of)
