"""Data access: upserts and queries over instruments and bars, in SQL, for SQLite and MySQL alike.

Functions take the session (or connection) as their first argument and never commit: the caller owns
the transaction, so an ingest can write a whole symbol, bump the data generation and commit once.
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
import operator
import re
import uuid
import weakref
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session

import lib
from financial.models import STOCK, Bar, Instrument, ServiceState, utcnow

UPSERT_BATCH = 5000
GENERATION = "data_generation"
DAILY = lib.Interval.DAY.value


def _insert(session: Session, table: sa.Table):
    """The dialect's own INSERT construct, which knows its native upsert syntax."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect in ("mysql", "mariadb"):
        return mysql.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


def _upsert(session: Session, table: sa.Table, keys: Sequence[str], update: dict) -> sa.Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE / ON DUPLICATE KEY UPDATE, with `update` given as
    callables of (new row, current row) so one definition serves both dialects."""
    stmt = _insert(session, table)
    if isinstance(stmt, sqlite.Insert):
        values = {col: fn(stmt.excluded, table.c) for col, fn in update.items()}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=values)
    values = {col: fn(stmt.inserted, table.c) for col, fn in update.items()}
    return stmt.on_duplicate_key_update(**values)


# -- instruments ------------------------------------------------------------------------------------

def get_or_create_instrument(session: Session, asset_class: str, symbol: str, *, exchange: str = "",
                             base: str | None = None, quote: str | None = None,
                             name: str | None = None) -> Instrument:
    """The instrument with this identity, created if missing; safe when two processes race to create it.

    Descriptive fields (base, quote, name) are filled in when given and still empty.
    """
    instrument = find_instrument(session, asset_class, symbol, exchange=exchange)
    if instrument is None:
        table = Instrument.__table__
        stmt = _insert(session, table).values(asset_class=asset_class, exchange=exchange, symbol=symbol,
                                              base=base, quote=quote, name=name, created_at=utcnow())
        stmt = stmt.on_conflict_do_nothing() if isinstance(stmt, sqlite.Insert) else stmt.prefix_with("IGNORE")
        session.execute(stmt)
        instrument = find_instrument(session, asset_class, symbol, exchange=exchange)
    for attribute, value in (("base", base), ("quote", quote), ("name", name)):
        if value and not getattr(instrument, attribute):
            setattr(instrument, attribute, value)
    session.flush()
    return instrument


def find_instrument(session: Session, asset_class: str, symbol: str, *, exchange: str = "") -> Instrument | None:
    return session.scalar(sa.select(Instrument).where(
        Instrument.asset_class == asset_class, Instrument.exchange == exchange, Instrument.symbol == symbol))


# -- bars -------------------------------------------------------------------------------------------

def _coalesce_new(new, current, column: str):
    # A source that lacks an optional figure must not erase the one another source stored.
    return sa.func.coalesce(getattr(new, column), getattr(current, column))


_BAR_UPDATE = {
    **{col: (lambda new, cur, col=col: getattr(new, col)) for col in ("open", "high", "low", "close", "volume")},
    **{col: (lambda new, cur, col=col: _coalesce_new(new, cur, col)) for col in ("adjusted_close", "market_cap")},
}


def bar_rows(instrument_id: int, interval: lib.Interval | str, bars: Iterable[lib.Bar]) -> list[dict]:
    """Rows for `upsert_bars`: timestamps converted to naive UTC, the storage convention."""
    interval = str(interval)
    # A lib.Bar's timestamp has a zero UTC offset (checked when it is built), so dropping the zone
    # leaves its UTC wall time; astimezone() would cost more than the rest of the row.
    return [
        {"instrument_id": instrument_id, "interval": interval, "ts": bar.timestamp.replace(tzinfo=None),
         "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume,
         "adjusted_close": bar.adjusted_close, "market_cap": bar.market_cap}
        for bar in bars
    ]


def upsert_bars(session: Session, rows: Sequence[dict], *, batch_size: int = UPSERT_BATCH) -> int:
    """Insert or update bar rows (see `bar_rows`) by their (instrument, interval, ts) key; returns the count.

    The statement is SQLAlchemy's (`_upsert` with `_BAR_UPDATE`), compiled once per dialect; the rows go
    to the driver directly. At a million rows, SQLAlchemy's per-row parameter processing (and PyMySQL's
    per-value escaping) cost several times the database's own work, so SQLite gets them as an
    `executemany` of plain tuples and MySQL as one multi-row VALUES list per batch (see `_mysql_literal`).
    """
    if not rows:
        return 0
    connection = session.connection()
    sql, names = _bar_upsert_sql(session)
    values_of = operator.itemgetter(*names)
    cursor = connection.connection.cursor()
    try:
        if connection.dialect.name == "sqlite":
            ts = names.index("ts")
            for start in range(0, len(rows), batch_size):
                batch = [list(values_of(row)) for row in rows[start:start + batch_size]]
                for values in batch:
                    values[ts] = _sqlite_datetime(values[ts])
                cursor.executemany(sql, batch)
        else:
            head, tail = sql
            for start in range(0, len(rows), batch_size):
                listed = ",".join(f"({','.join(map(_mysql_literal, values_of(row)))})"
                                  for row in rows[start:start + batch_size])
                cursor.execute(head + listed + tail)
    finally:
        cursor.close()
    return len(rows)


def _bar_upsert_sql(session: Session) -> tuple[str | tuple[str, str], tuple[str, ...]]:
    """The bar upsert compiled for the session's dialect, and the column order of its VALUES: for SQLite
    the whole statement, for MySQL the text before and after its VALUES tuple."""
    dialect = session.get_bind().dialect
    compiled = _COMPILED_BAR_UPSERT.get(dialect)
    if compiled is None:
        stmt = _upsert(session, Bar.__table__, ("instrument_id", "interval", "ts"), _BAR_UPDATE)
        statement = stmt.compile(dialect=dialect, column_keys=[column.name for column in Bar.__table__.c])
        sql, names = statement.string, statement.positiontup
        if dialect.name != "sqlite":
            head, values, tail = re.fullmatch(r"(?s)(.*?\bVALUES\s*)(\((?:%\(\w+\)s|[^()])*\))(.*)", sql).groups()
            sql = (head, tail)
            names = names or re.findall(r"%\((\w+)\)s", values)  # PyMySQL's named paramstyle
        compiled = _COMPILED_BAR_UPSERT[dialect] = (sql, tuple(names))
    return compiled


_COMPILED_BAR_UPSERT: "weakref.WeakKeyDictionary[sa.Dialect, tuple]" = weakref.WeakKeyDictionary()


def _sqlite_datetime(value: dt.datetime) -> str:
    # SQLAlchemy's storage format for DateTime on SQLite (always six fraction digits); every query
    # compares against values in this format, so the text must match it exactly.
    return value.isoformat(" ", "microseconds")


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9._:-]*")


def _float_literal(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be stored in MySQL")
    return repr(float(value))


def _datetime_literal(value: dt.datetime) -> str:
    return f"'{value.isoformat(' ', 'microseconds' if value.microsecond else 'seconds')}'"


def _text_literal(value: str) -> str:
    if not _PLAIN_TEXT.fullmatch(value):
        raise ValueError(f"not a bar value: {value!r}")
    return f"'{value}'"


_LITERALS = {float: _float_literal, int: str, type(None): lambda value: "NULL", dt.datetime: _datetime_literal,
             str: _text_literal}


def _mysql_literal(value) -> str:
    """A value of a bar row as a MySQL literal, written as PyMySQL would escape it. Only the types of a bar
    row are accepted (numbers, timestamps, the interval's plain text), so nothing needs quoting."""
    literal = _LITERALS.get(type(value))
    if literal is not None:
        return literal(value)
    if isinstance(value, float):  # numpy floats and other float subclasses
        return _float_literal(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy integers too
        return str(int(value))
    raise TypeError(f"not a bar value: {value!r}")


def latest_bar_time(session: Session, instrument_id: int, interval: lib.Interval | str) -> dt.datetime | None:
    return session.scalar(sa.select(sa.func.max(Bar.ts)).where(
        Bar.instrument_id == instrument_id, Bar.interval == str(interval)))


# -- system A queries -------------------------------------------------------------------------------

def _day_range(start: dt.date | None, end: dt.date | None) -> list:
    """Conditions on Bar.ts for the inclusive date range [start, end], written so the index is used."""
    conditions = []
    if start is not None:
        conditions.append(Bar.ts >= dt.datetime.combine(start, dt.time()))
    if end is not None:
        conditions.append(Bar.ts < dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
    return conditions


def _daily_stock_bars(symbol: str | None, start: dt.date | None, end: dt.date | None) -> list:
    conditions = [Instrument.asset_class == STOCK, Bar.interval == DAILY, *_day_range(start, end)]
    if symbol is not None:
        # The whole unique key pins one instrument, so MySQL reads that series by primary-key range
        # instead of scanning every instrument's daily bars through the (interval, ts) index.
        conditions += [Instrument.exchange == "", Instrument.symbol == symbol]
    return conditions


def daily_stock_records(session: Session, *, symbol: str | None, start: dt.date | None, end: dt.date | None,
                        limit: int, offset: int) -> list[sa.Row]:
    """Rows (symbol, ts, open, close, volume) of daily stock bars, by date then symbol."""
    query = (sa.select(Instrument.symbol, Bar.ts, Bar.open, Bar.close, Bar.volume)
             .join(Instrument, Instrument.id == Bar.instrument_id)
             .where(*_daily_stock_bars(symbol, start, end))
             .order_by(Bar.ts, Instrument.symbol)
             .limit(limit).offset(offset))
    return list(session.execute(query))


def count_daily_stock_records(session: Session, *, symbol: str | None, start: dt.date | None,
                              end: dt.date | None) -> int:
    query = (sa.select(sa.func.count())
             .select_from(Bar).join(Instrument, Instrument.id == Bar.instrument_id)
             .where(*_daily_stock_bars(symbol, start, end)))
    return session.scalar(query) or 0


def daily_stock_averages(session: Session, *, symbol: str, start: dt.date, end: dt.date) -> sa.Row:
    """(points, mean open, mean close, mean volume) of one stock's daily bars in [start, end]."""
    query = (sa.select(sa.func.count().label("points"),
                       sa.func.avg(Bar.open).label("open"),
                       sa.func.avg(Bar.close).label("close"),
                       sa.func.avg(Bar.volume).label("volume"))
             .select_from(Bar).join(Instrument, Instrument.id == Bar.instrument_id)
             .where(*_daily_stock_bars(symbol, start, end)))
    return session.execute(query).one()


# -- the data generation ----------------------------------------------------------------------------

def read_generation(session: Session) -> str | None:
    return session.scalar(sa.select(ServiceState.value).where(ServiceState.name == GENERATION))


def bump_generation(session: Session) -> str:
    """Give the stored data a new generation; cache entries tagged with an older one stop being served.

    Called inside the transaction that changes the data, so the new generation and the new data become
    visible together.
    """
    generation = uuid.uuid4().hex
    stmt = _upsert(session, ServiceState.__table__, ("name",),
                   {"value": lambda new, cur: new.value, "updated_at": lambda new, cur: new.updated_at})
    session.execute(stmt, [{"name": GENERATION, "value": generation, "updated_at": utcnow()}])
    return generation


# -- system D queries: the dashboard and search -----------------------------------------------------

DAY_CHANGES = {"change_1d": 1, "change_7d": 7, "change_30d": 30}  # column -> calendar days back
DASHBOARD_ORDER = ("crypto", "symbol", "price", "change_1d", "change_7d", "change_30d", "volume", "market_cap")


def _has_daily_bars():
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
    if session.get_bind().dialect.name == "sqlite":
        bar = sa.orm.aliased(Bar)
        last = (sa.select(sa.func.max(bar.ts))
                .where(bar.instrument_id == Instrument.id, bar.interval == DAILY, bar.ts < before)
                .scalar_subquery())
        return sa.select(Instrument.id.label("instrument_id"), last.label("ts")).subquery()
    return (sa.select(Bar.instrument_id, sa.func.max(Bar.ts).label("ts"))
            .where(Bar.interval == DAILY, Bar.ts < before).group_by(Bar.instrument_id).subquery())


def daily_instruments(session: Session, symbols: Sequence[str]) -> list[sa.Row]:
    """(id, symbol) of the instruments with daily bars whose symbol is one of `symbols` (upper-case),
    compared case-insensitively; a symbol shared by several instruments gives each of them."""
    query = (sa.select(Instrument.id, Instrument.symbol)
             .where(sa.func.upper(Instrument.symbol).in_(list(symbols)), _has_daily_bars())
             .order_by(Instrument.id))
    return list(session.execute(query))


def latest_daily_date(session: Session, instrument_ids: Sequence[int] | None = None) -> dt.date | None:
    """The date of the newest daily bar of the given instruments (of any instrument, without them)."""
    query = sa.select(sa.func.max(Bar.ts)).where(Bar.interval == DAILY)  # the (interval, ts) index
    if instrument_ids is not None:
        query = query.where(Bar.instrument_id.in_(list(instrument_ids)))
    latest = session.scalar(query)
    return _as_datetime(latest).date() if latest is not None else None


def _as_datetime(value) -> dt.datetime:
    # An aggregate over a DateTime column comes back from SQLite as text: SQLAlchemy only converts columns.
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def dashboard_rows(session: Session, *, day: dt.date, instrument_ids: Sequence[int] | None, order_by: str,
                   descending: bool) -> list[sa.Row]:
    """Each instrument's daily figures on `day`, sorted, in SQL.

    Rows (id, crypto, symbol, price, change_1d, change_7d, change_30d, volume, market_cap): the close,
    volume and market cap of the last daily bar on or before `day`, and the percent change of that close
    against the last close on or before `day` minus 1, 7 and 30 calendar days (NULL without such a bar
    or when that close is 0). `crypto` is the name, or the symbol when there is none. With
    `instrument_ids` None: every instrument with a daily bar on or before `day`; else those instruments,
    with NULL figures when they have no bar by then. Sorted by `order_by` (one of DASHBOARD_ORDER), NULLs
    last in both directions, ties by symbol, name and id.

    Each bar is found by looking up its time (`_last_daily_times`) and joined on the whole primary key: a
    few index seeks per instrument, whatever the length of its history.
    """
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    crypto = sa.func.coalesce(sa.func.nullif(Instrument.name, ""), Instrument.symbol)
    query = sa.select(Instrument.id, crypto.label("crypto"), Instrument.symbol)

    def last_bar(before: dt.datetime):
        """Join the instrument's last daily bar before `before` (outer: NULLs when there is none)."""
        nonlocal query
        times, bar = _last_daily_times(session, before), sa.orm.aliased(Bar)
        query = (query.outerjoin(times, times.c.instrument_id == Instrument.id)
                 .outerjoin(bar, sa.and_(bar.instrument_id == Instrument.id, bar.interval == DAILY,
                                         bar.ts == times.c.ts)))
        return bar, times

    now, now_times = last_bar(end)
    figures = {"price": now.close, "volume": now.volume, "market_cap": now.market_cap}
    for column, days in DAY_CHANGES.items():
        then, _ = last_bar(end - dt.timedelta(days=days))
        figures[column] = (now.close - then.close) / sa.func.nullif(then.close, 0) * 100
    query = query.add_columns(*(figures[column].label(column) for column in DASHBOARD_ORDER[2:]))
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
    return list(session.execute(query))


def search_instruments(session: Session, text: str, *, limit: int, offset: int) -> tuple[list[sa.Row], int]:
    """(name, symbol, exchange, asset_class) of the instruments whose name or symbol contains `text`,
    case-insensitively (LIKE wildcards in `text` match only themselves), and how many there are.

    Exact matches of the name or symbol come first, then those starting with `text`, then the rest; within
    each, by name (the symbol where there is none), symbol, exchange and asset class.
    """
    needle = text.lower()
    symbol, name = sa.func.lower(Instrument.symbol), sa.func.lower(sa.func.coalesce(Instrument.name, ""))
    matches = sa.or_(symbol.contains(needle, autoescape=True), name.contains(needle, autoescape=True))
    rank = sa.case((sa.or_(symbol == needle, name == needle), 0),
                   (sa.or_(symbol.startswith(needle, autoescape=True), name.startswith(needle, autoescape=True)), 1),
                   else_=2)
    shown = sa.func.lower(sa.func.coalesce(sa.func.nullif(Instrument.name, ""), Instrument.symbol))
    query = (sa.select(Instrument.name, Instrument.symbol, Instrument.exchange, Instrument.asset_class)
             .where(matches)
             .order_by(rank, shown, sa.func.lower(Instrument.symbol), Instrument.exchange, Instrument.asset_class,
                       Instrument.id)
             .limit(limit).offset(offset))
    count = session.scalar(sa.select(sa.func.count()).select_from(Instrument).where(matches)) or 0
    rows = list(session.execute(query)) if count > offset else []
    return rows, count
