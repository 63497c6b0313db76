"""System B: each instrument's figures over a time window, and the stored rankings of the standard windows."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from financial.models import Bar, Ranking
from financial.storage import dialect


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

    Variances are population variances in two passes (the mean first, then the mean squared deviation
    from it), which stays accurate where the one-pass E[x²] − E[x]² cancels catastrophically; SQLite has
    no STDDEV_POP, so both dialects run the same SQL. Returns are close / previous close − 1 (LAG within
    the window; a zero previous close gives no return).
    """
    if not instrument_ids:
        return []
    bars, last = Bar.__table__, Bar.__table__.alias("last_bar")
    previous = sa.func.lag(bars.c.close).over(partition_by=bars.c.instrument_id, order_by=bars.c.ts)
    points = (sa.select(bars.c.instrument_id, bars.c.ts, bars.c.close,
                        (bars.c.close / sa.func.nullif(previous, 0) - 1).label("ret"))
              .where(bars.c.instrument_id.in_(instrument_ids), bars.c.interval == interval,
                     bars.c.ts >= start, bars.c.ts <= end)
              .cte("points"))
    means = (sa.select(points.c.instrument_id, sa.func.count().label("points"),
                       sa.func.avg(points.c.close).label("mean"), sa.func.avg(points.c.ret).label("mean_return"),
                       sa.func.max(points.c.ts).label("last_time"))
             .group_by(points.c.instrument_id)
             .cte("means"))
    deviation = points.c.close - means.c.mean
    return_deviation = points.c.ret - means.c.mean_return
    query = (sa.select(means.c.instrument_id, means.c.points, means.c.mean, means.c.last_time,
                       last.c.close.label("last_price"),
                       sa.func.avg(deviation * deviation).label("variance"),
                       sa.func.avg(return_deviation * return_deviation).label("return_variance"))
             .select_from(points.join(means, means.c.instrument_id == points.c.instrument_id)
                          .join(last, sa.and_(last.c.instrument_id == means.c.instrument_id,
                                              last.c.interval == interval, last.c.ts == means.c.last_time)))
             .group_by(means.c.instrument_id, means.c.points, means.c.mean, means.c.last_time, last.c.close))
    return [WindowFigures(row.instrument_id, row.points, float(row.mean), dialect.as_datetime(row.last_time),
                          float(row.last_price), float(row.variance),
                          None if row.return_variance is None else float(row.return_variance))
            for row in session.execute(query)]


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


def rankings(session: Session, window_hours: int) -> list[Ranking]:
    """The stored rankings of one window."""
    return list(session.scalars(sa.select(Ranking).where(Ranking.window_hours == window_hours)))


def rankings_as_of(session: Session) -> dt.datetime | None:
    """The moment the stored rankings' windows end: the last ingest's."""
    as_of = session.scalar(sa.select(sa.func.max(Ranking.as_of)))
    return None if as_of is None else dialect.as_datetime(as_of)
