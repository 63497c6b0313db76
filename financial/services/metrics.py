"""System B: every tracked instrument's figures over a window, ranked by volatility.

Figures of an instrument are computed on its finest stored interval (a stock with only daily bars is
measured on those, one with minute bars on the minutes), over the window that ends at the moment of the
last ingest (`as_of`), start and end included: `points`, `mean` and population `stdev` of the close,
`volatility` (population standard deviation of the simple returns between consecutive bars, in percent),
and the last close. Rank 1 is the highest figure; instruments without one (no points in the window; a
single point has no return) come last, unranked, with nulls; equal figures keep exchange, symbol order.

The standard windows (24h, 7d, 30d) are computed once per ingest (`refresh_rankings`) and stored; a
request reads the stored rows. Any other window (`window=36h`) is computed on demand, in SQL, over the
same `as_of`, once per data generation: every page, limit and ranking of that window shares the figures
(and each answer is cached like every other until the generation changes).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Collection, Iterable

from sqlalchemy.orm import Session

from financial.errors import NotFound
from financial.extensions import app_state, db_session
from financial.models import utcnow
from financial.paging import Page
from financial.storage import instruments, metrics as storage
from financial.storage.instruments import Identity
from financial.transactions import unit_of_work

STANDARD_WINDOWS = {24: "24h", 7 * 24: "7d", 30 * 24: "30d"}  # hours → their usual spelling
# An instrument without new bars keeps its figures for this long; then the window that moved on is measured.
REFRESH_AFTER = dt.timedelta(hours=1)
MAX_WINDOW_HOURS = 366 * 24
RANK_BY = ("stdev", "volatility")
FIGURES = ("interval", "points", "mean", "stdev", "volatility", "last_price", "last_time", "rank_stdev",
           "rank_volatility")
RANKING_COLUMNS = ("window_hours", "instrument_id", *FIGURES, "as_of")
_WINDOW = re.compile(r"^([1-9][0-9]{0,5})([hd])$")


def parse_window(text: str) -> int:
    """`<n>h` or `<n>d` (case-insensitive) → hours, from 1h to 366d."""
    match = _WINDOW.match(text.strip().lower())
    if not match:
        raise ValueError("must be a number of hours or days, like 24h or 7d")
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
    if hours > MAX_WINDOW_HOURS:
        raise ValueError(f"must be at most 366d ({MAX_WINDOW_HOURS}h)")
    return hours


# -- computing --------------------------------------------------------------------------------------

def compute(session: Session, window_hours: int, as_of: dt.datetime,
            finest: dict[int, str | None] | None = None) -> list[dict[str, Any]]:
    """Unranked figures of every instrument over [as_of − window, as_of] (naive UTC), on its finest interval."""
    finest = instruments.finest_intervals(session) if finest is None else finest
    start = as_of - dt.timedelta(hours=window_hours)
    by_interval: dict[str, list[int]] = {}
    for instrument_id, interval in finest.items():
        if interval is not None:
            by_interval.setdefault(interval, []).append(instrument_id)
    figures = {row.instrument_id: row for interval, ids in by_interval.items()
               for row in storage.window_figures(session, ids, interval, start, as_of)}
    rows = []
    for instrument_id, interval in finest.items():
        row = figures.get(instrument_id)
        rows.append({
            "window_hours": window_hours, "instrument_id": instrument_id, "interval": interval,
            "points": row.points if row else 0,
            "mean": row.mean if row else None,
            "stdev": _root(row.variance) if row else None,
            "volatility": None if row is None or row.return_variance is None else _root(row.return_variance) * 100,
            "last_price": row.last_price if row else None,
            "last_time": row.last_time if row else None,
            "as_of": as_of,
        })
    return rows


def _root(variance: float) -> float:
    # The square root is taken here rather than in SQL: SQLite may be built without math functions.
    return math.sqrt(max(0.0, variance))


def _significant(figure: float) -> float:
    """The figure to 12 significant digits: two series of the same bars are ranked as equal (by exchange,
    then symbol) although the database may add their parts in another order, which moves the last digits."""
    return float(f"{figure:.12g}")


def rank(rows: list[dict[str, Any]], identities: dict[int, Identity]) -> list[dict[str, Any]]:
    """Set `rank_stdev` and `rank_volatility` on each row (1 = highest; None without the figure)."""
    for figure in RANK_BY:
        for row in rows:
            row[f"rank_{figure}"] = None
        ranked = sorted((row for row in rows if row[figure] is not None),
                        key=lambda row: (-_significant(row[figure]), identities[row["instrument_id"]].exchange,
                                         identities[row["instrument_id"]].symbol, row["instrument_id"]))
        for number, row in enumerate(ranked, 1):
            row[f"rank_{figure}"] = number
    return rows


def refresh_rankings(now: dt.datetime | None = None, *, changed: Collection[int] | None = None) -> int:
    """Compute the standard windows as of `now` and store them with a new data generation (so no cache serves
    the old ranking); called once per ingest. Returns the rows recomputed.

    With `changed` (the instruments whose bars the ingest wrote or deleted), only those are recomputed, with
    the instruments that have no stored figures yet and those whose figures are older than REFRESH_AFTER;
    the others keep theirs (each row keeps the `as_of` it was computed at), and all are ranked again. Without
    it, every instrument is recomputed.
    """
    # Whole seconds: MySQL's DATETIME keeps no fraction, and the stored as_of must be the one computed with.
    as_of = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    with unit_of_work(changes_data=True) as work:
        session = work.session
        identities = instruments.identities(session)
        stored = [] if changed is None else storage.ranking_rows(session, RANKING_COLUMNS)
        stale_before = as_of - REFRESH_AFTER
        due = set(identities) if changed is None else _due(set(changed), stored, set(identities), stale_before)
        # (An instrument's finest interval changes only when bars are written or deleted: it is then changed.)
        finest = instruments.finest_intervals(session, due)
        kept = [row for row in stored if row["instrument_id"] in identities and row["instrument_id"] not in due]
        rows = []
        for hours in STANDARD_WINDOWS:
            fresh = compute(session, hours, as_of, {key: finest[key] for key in due})
            rows += rank([dict(row) for row in kept if row["window_hours"] == hours] + fresh, identities)
        storage.replace_rankings(session, rows, None if changed is None else stored)
    return len(due) * len(STANDARD_WINDOWS)


def _due(changed: set[int], stored: list[dict[str, Any]], instrument_ids: set[int],
         stale_before: dt.datetime) -> set[int]:
    """The instruments whose figures must be computed again: changed, without figures for every standard
    window, or computed before `stale_before`."""
    windows: dict[int, set[int]] = {}
    due = changed & instrument_ids
    for row in stored:
        windows.setdefault(row["instrument_id"], set()).add(row["window_hours"])
        if row["instrument_id"] in instrument_ids and row["as_of"] < stale_before:
            due.add(row["instrument_id"])
    return due | {instrument_id for instrument_id in instrument_ids
                  if windows.get(instrument_id) != set(STANDARD_WINDOWS)}


# -- reading (the API) ------------------------------------------------------------------------------

def _table(window_hours: int) -> list[dict[str, Any]]:
    """Every instrument with its ranked figures over the window: stored for the standard windows, computed
    for the others. An instrument created after the last ingest has no figures until the next one."""
    session = db_session()
    identities = instruments.identities(session)
    figures: dict[int, dict[str, Any]]
    if window_hours in STANDARD_WINDOWS:
        figures = {row.instrument_id: {name: getattr(row, name) for name in FIGURES}
                   for row in storage.rankings(session, window_hours)}
    else:
        figures = app_state().cache.get_or_compute(f"window-figures:{window_hours}",
                                                   lambda: _on_demand(session, window_hours, identities))
    empty = dict.fromkeys(FIGURES) | {"points": 0}
    return [{"instrument": instrument} | figures.get(instrument_id, empty)
            for instrument_id, instrument in identities.items()]


def _on_demand(session: Session, window_hours: int, identities: dict[int, Identity]) -> dict[int, dict[str, Any]]:
    """The ranked figures of a window that is not stored, by instrument. `_table` keeps them for the data
    generation (they change only with it): one computation per window and ingest, whatever page, limit,
    `rank_by` or instrument is asked for."""
    # Measured on the intervals the last ingest found (stored with the standard windows' figures): the
    # instruments it knew, as they were then, without looking every series up again.
    stored = storage.rankings(session, min(STANDARD_WINDOWS))
    as_of = max((row.as_of for row in stored), default=None) or utcnow()
    finest = {row.instrument_id: row.interval for row in stored}
    return {row["instrument_id"]: row for row in rank(compute(session, window_hours, as_of, finest), identities)}


def _public(row: dict[str, Any], rank_by: str) -> dict[str, Any]:
    instrument = row["instrument"]
    return {
        "id": instrument.id, "exchange": instrument.exchange or None, "symbol": instrument.symbol,
        "base": instrument.base, "quote": instrument.quote, "interval": row["interval"],
        "last_price": row["last_price"], "last_time": row["last_time"], "points": row["points"],
        "mean": row["mean"], "stdev": row["stdev"], "volatility": row["volatility"], "rank": row[f"rank_{rank_by}"],
    }


def _by_rank(rows: list[dict[str, Any]], rank_by: str) -> list[dict[str, Any]]:
    key = f"rank_{rank_by}"
    return sorted(rows, key=lambda row: (row[key] is None, row[key] or 0, row["instrument"].exchange,
                                         row["instrument"].symbol, row["instrument"].id))


def metrics(page: Page, *, window: int, rank_by: str = "stdev") -> tuple[list[dict[str, Any]], int]:
    """One page of every tracked instrument's figures over the window, by rank; and how many there are."""
    rows = _by_rank(_table(window), rank_by)
    return [_public(row, rank_by) for row in page.of(rows)], len(rows)


def ranking_of(instrument_ids: Iterable[int], *, window: int, rank_by: str = "stdev") -> list[dict[str, Any]]:
    """Some instruments' figures over the window, ranked among themselves (1 = highest `rank_by`); those
    without the figure last, unranked. (The order is the overall ranking's; only the numbers differ.)"""
    wanted = set(instrument_ids)
    ranked: list[dict[str, Any]] = []
    for row in _by_rank([row for row in _table(window) if row["instrument"].id in wanted], rank_by):
        entry = _public(row, rank_by)
        if entry["rank"] is not None:
            entry["rank"] = len(ranked) + 1
        ranked.append(entry)
    return ranked


def metric(instrument_id: int, *, window: int, rank_by: str = "stdev") -> dict[str, Any]:
    """One instrument's figures over the window, with its rank."""
    for row in _table(window):
        if row["instrument"].id == instrument_id:
            return _public(row, rank_by)
    raise NotFound(f"no tracked instrument with id {instrument_id}")


def _as_of(session: Session, instrument_id: int, window_hours: int) -> dt.datetime:
    """Where the window of one instrument's figures ends: the moment its stored figures were computed (a
    standard window), else the last ingest's (a window computed on demand)."""
    if window_hours in STANDARD_WINDOWS:
        for row in storage.rankings(session, window_hours):
            if row.instrument_id == instrument_id:
                return row.as_of
    return storage.rankings_as_of(session) or utcnow()


def prices(instrument_id: int, page: Page, *, window: int) -> tuple[list[dict[str, Any]], int]:
    """The window's closes of one instrument on its finest interval, oldest first, and how many there are."""
    session = db_session()
    finest = instruments.finest_intervals(session)
    if instrument_id not in finest:
        raise NotFound(f"no tracked instrument with id {instrument_id}")
    interval = finest[instrument_id]
    if interval is None:
        return [], 0
    end = _as_of(session, instrument_id, window)
    start = end - dt.timedelta(hours=window)
    count = storage.count_window_prices(session, instrument_id, interval, start, end)
    rows = []
    if page.reaches(count):
        rows = storage.window_prices(session, instrument_id, interval, start, end, limit=page.size,
                                     offset=page.offset)
    return [{"price": row.close, "time": row.ts} for row in rows], count
