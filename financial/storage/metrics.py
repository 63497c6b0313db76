"""System B: each instrument's figures over a time window, and the stored rankings of the standard windows."""
from __future__ import annotations

import datetime as dt
import operator
from typing import Any, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from financial.models import Bar, BarDayRollup, BarRollup, Ranking
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


class StoredFigures(NamedTuple):
    """One stored ranking row: an instrument's figures over a standard window (see `models.Ranking`)."""

    window_hours: int
    instrument_id: int
    interval: str | None
    points: int
    mean: float | None
    stdev: float | None
    volatility: float | None
    last_price: float | None
    last_time: dt.datetime | None
    rank_stdev: int | None
    rank_volatility: int | None
    as_of: dt.datetime


class Price(NamedTuple):
    ts: dt.datetime
    close: float


def window_figures(session: Session, instrument_ids: Sequence[int], interval: str, start: dt.datetime,
                   end: dt.datetime) -> list[WindowFigures]:
    """Per instrument with bars of `interval` in [start, end]: points, mean close, variance of the close,
    variance of the simple returns between consecutive bars, last time and last close.

    The window is cut into segments: the days wholly inside it (one day rollup each), the hours wholly inside
    it around them (one hour rollup each), and the raw bars at its two edges (a segment of one bar each); a
    daily series, or a window shorter than two hours, is raw bars only. `rollups.combine` takes them together
    exactly, in SQL. Variances are population variances; a zero previous close gives no return. SQLite has no
    STDDEV_POP, so both dialects run the same SQL.
    """
    if not instrument_ids:
        return []
    segments = _segments(list(instrument_ids), interval, start, end).subquery("segments")
    figures = []
    for instrument_id, _, points, mean, m2, _, _, last_time, last_price, returns, _, return_m2 in \
            session.execute(rollups.combine(segments)):
        points, returns = int(points), int(returns)  # (MySQL's SUM of integers is a DECIMAL)
        figures.append(WindowFigures(instrument_id, points, float(mean), dialect.as_datetime(last_time),
                                     float(last_price), float(m2) / points,
                                     float(return_m2) / returns if returns else None))
    return figures


def _segments(instrument_ids: list[int], interval: str, start: dt.datetime, end: dt.datetime) -> Any:
    """The window's segments (see `window_figures`): whole days and hours from the rollups, raw bars around."""
    ts, whole = dialect.table_of(Bar).c.ts, rollups.whole
    group = sa.literal(0)

    def raw(*bounds: Any) -> Any:
        return rollups.raw_bars(instrument_ids, interval, group, *bounds)

    hours = whole(start, end, rollups.HOUR) if rollups.kept_for(interval) else None
    if hours is None:
        return raw(ts >= start, ts <= end)
    hour_lo, hour_hi = hours
    # Each edge a range of its own, so that each reads only its few bars of the primary key.
    parts = [raw(ts >= start, ts < hour_lo), raw(ts >= hour_hi, ts <= end)]
    days = whole(start, end, rollups.DAY)
    if days is None:
        parts.append(rollups.rollup_rows(BarRollup, instrument_ids, interval, group, hour_lo, hour_hi))
    else:
        day_lo, day_hi = days
        parts += [rollups.rollup_rows(BarRollup, instrument_ids, interval, group, hour_lo, day_lo),
                  rollups.rollup_rows(BarDayRollup, instrument_ids, interval, group, day_lo, day_hi),
                  rollups.rollup_rows(BarRollup, instrument_ids, interval, group, day_hi, hour_hi)]
    return sa.union_all(*parts)


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


def replace_rankings(session: Session, rows: Sequence[dict[str, Any]],
                     stored: Sequence[dict[str, Any]] | None = None) -> None:
    """Make the stored rankings `rows` (dicts of Ranking's columns). With `stored` (what the table holds now,
    as such dicts), only the rows that differ are written: an ingest that changed one market rewrites its
    figures and the ranks that moved, not every row."""
    if stored is None:
        session.execute(sa.delete(Ranking))
        if rows:
            session.execute(sa.insert(Ranking), list(rows))
        return
    key = operator.itemgetter("window_hours", "instrument_id")
    before, after = {key(row): row for row in stored}, {key(row): row for row in rows}
    table = dialect.table_of(Ranking)
    gone = [dict(zip(("w", "i"), k)) for k in before.keys() - after.keys()]
    if gone:
        session.execute(sa.delete(table).where(table.c.window_hours == sa.bindparam("w"),
                                               table.c.instrument_id == sa.bindparam("i")), gone)
    new = [row for k, row in after.items() if k not in before]
    if new:
        session.execute(sa.insert(table), new)
    changed = [{**row, "w": row["window_hours"], "i": row["instrument_id"]} for k, row in after.items()
               if k in before and row != before[k]]
    if changed:
        keys = ("window_hours", "instrument_id", "w", "i")
        values: dict[str, Any] = {column: sa.bindparam(column) for column in changed[0] if column not in keys}
        session.execute(sa.update(table).where(table.c.window_hours == sa.bindparam("w"),
                                               table.c.instrument_id == sa.bindparam("i")).values(values), changed)


def rankings(session: Session, window_hours: int | None = None) -> list[StoredFigures]:
    """The stored rankings of one window (of every window, without one)."""
    query = sa.select(*(getattr(Ranking, name) for name in StoredFigures._fields))
    if window_hours is not None:
        query = query.where(Ranking.window_hours == window_hours)
    return [StoredFigures._make(row) for row in session.execute(query)]


def ranking_rows(session: Session, columns: Sequence[str]) -> list[dict[str, Any]]:
    """Every stored ranking as a dict of the given columns (lighter than `rankings`' models)."""
    table = dialect.table_of(Ranking)
    return [dict(zip(columns, row)) for row in session.execute(sa.select(*(table.c[name] for name in columns)))]


def rankings_as_of(session: Session) -> dt.datetime | None:
    """The moment the newest stored rankings' windows end: the last ingest's."""
    as_of = session.scalar(sa.select(sa.func.max(Ranking.as_of)))
    return None if as_of is None else dialect.as_datetime(as_of)
