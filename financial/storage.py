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
from typing import Callable, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session

import lib
from financial.models import (CRYPTO, STOCK, Alert, AlertDelivery, AuthToken, Bar, Instrument, Ranking, ServiceState,
                              User, WatchlistEntry, utcnow)

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


def insert_ignoring_duplicates(session: Session, table: sa.Table, row: dict) -> bool:
    """INSERT a row unless one with the same unique key exists (the database decides, so two processes
    racing to insert it cannot both succeed nor fail); True when this call inserted it."""
    stmt = _insert(session, table).values(**row)
    stmt = stmt.on_conflict_do_nothing() if isinstance(stmt, sqlite.Insert) else stmt.prefix_with("IGNORE")
    return session.execute(stmt).rowcount == 1


# -- instruments ------------------------------------------------------------------------------------

def get_or_create_instrument(session: Session, asset_class: str, symbol: str, *, exchange: str = "",
                             base: str | None = None, quote: str | None = None,
                             name: str | None = None) -> Instrument:
    """The instrument with this identity, created if missing; safe when two processes race to create it.

    Descriptive fields (base, quote, name) are filled in when given and still empty.
    """
    instrument = find_instrument(session, asset_class, symbol, exchange=exchange)
    if instrument is None:
        insert_ignoring_duplicates(session, Instrument.__table__, {
            "asset_class": asset_class, "exchange": exchange, "symbol": symbol, "base": base, "quote": quote,
            "name": name, "created_at": utcnow()})
        # A locking read: when another transaction created it first (our insert waited, then was ignored),
        # MySQL's repeatable-read snapshot would still hide that row from a plain SELECT.
        instrument = find_instrument(session, asset_class, symbol, exchange=exchange, lock=True)
    for attribute, value in (("base", base), ("quote", quote), ("name", name)):
        if value and not getattr(instrument, attribute):
            setattr(instrument, attribute, value)
    session.flush()
    return instrument


def find_instrument(session: Session, asset_class: str, symbol: str, *, exchange: str = "",
                    lock: bool = False) -> Instrument | None:
    query = sa.select(Instrument).where(
        Instrument.asset_class == asset_class, Instrument.exchange == exchange, Instrument.symbol == symbol)
    if lock:
        query = query.with_for_update()  # (SQLite has no row locks; SQLAlchemy leaves the clause out there)
    return session.scalar(query)


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

    Bars are the bulk of every ingest, so the statement (built once by SQLAlchemy from `_BAR_UPDATE`) is
    handed to the driver directly: per-row parameter processing in SQLAlchemy, and pymysql's per-value
    escaping, cost more than the database's own work. On MySQL the rows are rendered as one multi-row
    VALUES list per batch; every value is a checked finite number, a known interval or a timestamp, so
    nothing needs escaping.
    """
    if not rows:
        return 0
    stmt = _upsert(session, Bar.__table__, _BAR_KEY, _BAR_UPDATE)
    connection = session.connection()
    dialect = connection.dialect
    compiled = stmt.compile(dialect=dialect)
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        if dialect.name == "sqlite":
            connection.exec_driver_sql(compiled.string, _sqlite_params(batch, compiled.positiontup))
        elif dialect.name in ("mysql", "mariadb"):
            head, tail = _MYSQL_VALUES.split(compiled.string, maxsplit=1)
            columns = [column.name for column in stmt.table.columns]
            values = ",".join(_mysql_row(row, columns) for row in batch)
            connection.exec_driver_sql(f"{head}VALUES {values}{tail}")
        else:
            session.execute(stmt, list(batch))
    return len(rows)


_BAR_KEY = ("instrument_id", "interval", "ts")
_INTERVALS = frozenset(interval.value for interval in lib.Interval)
_MYSQL_VALUES = re.compile(r"VALUES \((?:%\(\w+\)s, )*%\(\w+\)s\)")  # pymysql's placeholders


def _sqlite_params(rows: Sequence[dict], order: Sequence[str]) -> list[tuple]:
    values_of, ts_at = operator.itemgetter(*order), order.index("ts")
    params = []
    for row in rows:
        values = list(values_of(row))
        values[ts_at] = _sqlite_datetime(values[ts_at])
        params.append(tuple(values))
    return params


def _sqlite_datetime(value: dt.datetime) -> str:
    # SQLAlchemy's storage format for DateTime on SQLite (always six fraction digits); every query
    # compares against values in this format, so the text must match it exactly.
    return value.isoformat(" ", "microseconds")


def _mysql_row(row: dict, columns: Sequence[str]) -> str:
    return "(" + ",".join(_mysql_literal(name, row.get(name)) for name in columns) + ")"


def _mysql_literal(name: str, value) -> str:
    """A bar row's value as a MySQL literal. Only what a bar holds is accepted (finite numbers, a timestamp,
    a known interval), so nothing ever needs quoting or escaping."""
    if value is None:
        return "NULL"
    if name == "ts":
        if not isinstance(value, dt.datetime):
            raise TypeError(f"bar ts must be a datetime, got {value!r}")
        return f"'{value.isoformat(' ', 'microseconds' if value.microsecond else 'seconds')}'"
    if name == "interval":
        if value not in _INTERVALS:
            raise ValueError(f"unknown bar interval {value!r}")
        return f"'{value}'"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers are Real too
        raise TypeError(f"bar {name} must be a number, got {value!r}")
    if name == "instrument_id":
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"bar {name} must be a finite number, got {value!r}")
    return repr(number)


def latest_bar_time(session: Session, instrument_id: int, interval: lib.Interval | str) -> dt.datetime | None:
    return session.scalar(sa.select(sa.func.max(Bar.ts)).where(
        Bar.instrument_id == instrument_id, Bar.interval == str(interval)))


def latest_bar_time_of(connection: sa.Connection | Session, asset_class: str, symbol: str, *, exchange: str = "",
                       interval: lib.Interval | str) -> dt.datetime | None:
    """The newest bar of an instrument known by its identity (None when it or its bars do not exist yet)."""
    return connection.scalar(
        sa.select(sa.func.max(Bar.ts)).join(Instrument, Instrument.id == Bar.instrument_id)
        .where(Instrument.asset_class == asset_class, Instrument.exchange == exchange, Instrument.symbol == symbol,
               Bar.interval == str(interval)))


def prune_bars(engine: sa.Engine, intervals: Iterable[lib.Interval | str], before: dt.datetime, *,
               batch_size: int = UPSERT_BATCH, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete the bars of `intervals` older than `before` (naive UTC), a batch per short transaction.

    Unlike the other functions here it commits, batch by batch: that is its point. Each batch is one
    primary-key range of one series (instrument, interval), bounded by the batch's last timestamp, so it
    needs no DELETE ... LIMIT (which SQLite lacks) and locks only the rows it removes; readers go on
    reading (MVCC on InnoDB, WAL on SQLite) and an ingest waits at most one batch for its turn to write.
    `on_batch(rows)` is called after each commit. Returns how many rows were deleted.
    """
    intervals = [str(interval) for interval in intervals]
    with engine.connect() as connection:
        instrument_ids = list(connection.scalars(sa.select(Instrument.id).order_by(Instrument.id)))
    deleted = 0
    for instrument_id in instrument_ids:
        for interval in intervals:
            series = [Bar.instrument_id == instrument_id, Bar.interval == interval]
            while True:
                with engine.begin() as connection:
                    boundary = connection.scalar(sa.select(Bar.ts).where(*series, Bar.ts < before).order_by(Bar.ts)
                                                 .limit(1).offset(batch_size - 1))
                    last = Bar.ts <= boundary if boundary is not None else Bar.ts < before
                    rows = connection.execute(sa.delete(Bar).where(*series, last)).rowcount
                deleted += rows
                if rows and on_batch is not None:
                    on_batch(rows)
                if boundary is None:
                    break
    return deleted


# -- system B queries: figures over a window, on each instrument's finest interval -------------------

def finest_intervals(session: Session) -> dict[int, str | None]:
    """{instrument id: its finest stored interval} (None for an instrument without bars).

    One probe per interval, finest first, each an index seek on the bars' primary key.
    """
    finest = sa.func.coalesce(*(
        sa.select(sa.literal(interval.value))
        .where(sa.exists().where(Bar.instrument_id == Instrument.id, Bar.interval == interval.value)
               .correlate(Instrument))
        .scalar_subquery()
        for interval in sorted(lib.Interval, key=lambda interval: interval.seconds)))
    return dict(session.execute(sa.select(Instrument.id, finest)).all())


def window_figures(session: Session, instrument_ids: Sequence[int], interval: str, start: dt.datetime,
                   end: dt.datetime) -> list[sa.Row]:
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
    return list(session.execute(query))


def window_prices(session: Session, instrument_id: int, interval: str, start: dt.datetime, end: dt.datetime, *,
                  limit: int, offset: int) -> list[sa.Row]:
    """(ts, close) of one series in [start, end], oldest first."""
    query = (sa.select(Bar.ts, Bar.close)
             .where(Bar.instrument_id == instrument_id, Bar.interval == interval, Bar.ts >= start, Bar.ts <= end)
             .order_by(Bar.ts).limit(limit).offset(offset))
    return list(session.execute(query))


def count_window_prices(session: Session, instrument_id: int, interval: str, start: dt.datetime,
                        end: dt.datetime) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Bar).where(
        Bar.instrument_id == instrument_id, Bar.interval == interval, Bar.ts >= start, Bar.ts <= end)) or 0


def replace_rankings(session: Session, rows: Sequence[dict]) -> None:
    """Replace every stored ranking by `rows` (dicts of Ranking's columns)."""
    session.execute(sa.delete(Ranking))
    if rows:
        session.execute(sa.insert(Ranking), list(rows))


def rankings(session: Session, window_hours: int) -> list[Ranking]:
    """The stored rankings of one window."""
    return list(session.scalars(sa.select(Ranking).where(Ranking.window_hours == window_hours)))


def instrument_identities(session: Session) -> list[sa.Row]:
    """(id, exchange, symbol, base, quote) of every instrument."""
    return list(session.execute(sa.select(Instrument.id, Instrument.exchange, Instrument.symbol, Instrument.base,
                                          Instrument.quote)))


def rankings_as_of(session: Session) -> dt.datetime | None:
    return session.scalar(sa.select(sa.func.max(Ranking.as_of)))


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


# -- system C: accounts, watchlists, alerts ----------------------------------------------------------

def find_user(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == email))


def user_exists(session: Session, email: str) -> bool:
    return session.scalar(sa.select(User.id).where(User.email == email)) is not None


def find_token(session: Session, token_hash: str) -> sa.Row | None:
    """(id, user_id, expires_at, revoked_at) of the token with this digest."""
    return session.execute(sa.select(AuthToken.id, AuthToken.user_id, AuthToken.expires_at, AuthToken.revoked_at)
                           .where(AuthToken.token_hash == token_hash)).first()


def revoke_token(session: Session, token_id: int, now: dt.datetime) -> None:
    session.execute(sa.update(AuthToken).where(AuthToken.id == token_id, AuthToken.revoked_at.is_(None))
                    .values(revoked_at=now))


def forget_dead_tokens(session: Session, user_id: int, now: dt.datetime) -> int:
    """Delete a user's expired and revoked tokens (either way they no longer open anything)."""
    return session.execute(sa.delete(AuthToken).where(
        AuthToken.user_id == user_id, sa.or_(AuthToken.expires_at <= now, AuthToken.revoked_at.is_not(None)))
    ).rowcount


_WATCHED = (Instrument.id, Instrument.exchange, Instrument.symbol, Instrument.base, Instrument.quote,
            Instrument.name, WatchlistEntry.created_at.label("added_at"))


def watchlist(session: Session, user_id: int, *, limit: int, offset: int) -> list[sa.Row]:
    """One page of a user's watched markets, by exchange then pair."""
    return list(session.execute(
        sa.select(*_WATCHED).join(WatchlistEntry, WatchlistEntry.instrument_id == Instrument.id)
        .where(WatchlistEntry.user_id == user_id).order_by(Instrument.exchange, Instrument.symbol, Instrument.id)
        .limit(limit).offset(offset)))


def count_watchlist(session: Session, user_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(WatchlistEntry)
                          .where(WatchlistEntry.user_id == user_id)) or 0


def watched_entry(session: Session, user_id: int, instrument_id: int) -> sa.Row | None:
    return session.execute(
        sa.select(*_WATCHED).join(WatchlistEntry, WatchlistEntry.instrument_id == Instrument.id)
        .where(WatchlistEntry.user_id == user_id, WatchlistEntry.instrument_id == instrument_id)).first()


def watched_instrument_ids(session: Session, user_id: int) -> list[int]:
    return list(session.scalars(sa.select(WatchlistEntry.instrument_id).where(WatchlistEntry.user_id == user_id)))


def unwatch(session: Session, user_id: int, instrument_id: int) -> bool:
    return session.execute(sa.delete(WatchlistEntry).where(
        WatchlistEntry.user_id == user_id, WatchlistEntry.instrument_id == instrument_id)).rowcount == 1


def watched_markets(connection: sa.Connection | Session) -> list[tuple[str, str]]:
    """(exchange, pair) of every crypto market on any watchlist, by exchange then pair."""
    return [tuple(row) for row in connection.execute(
        sa.select(Instrument.exchange, Instrument.symbol).distinct()
        .join(WatchlistEntry, WatchlistEntry.instrument_id == Instrument.id)
        .where(Instrument.asset_class == CRYPTO).order_by(Instrument.exchange, Instrument.symbol))]


def watchers(session: Session, instrument_id: int) -> list[int]:
    return list(session.scalars(sa.select(WatchlistEntry.user_id).where(WatchlistEntry.instrument_id == instrument_id)
                                .order_by(WatchlistEntry.user_id)))


def series_bars(session: Session, instrument_id: int, interval: str, start: dt.datetime, end: dt.datetime) -> list[Bar]:
    """One series' bars with start < ts <= end, oldest first (a primary-key range)."""
    return list(session.scalars(sa.select(Bar).where(Bar.instrument_id == instrument_id, Bar.interval == interval,
                                                     Bar.ts > start, Bar.ts <= end).order_by(Bar.ts)))


def recent_crypto_bars(session: Session, interval: str, start: dt.datetime, end: dt.datetime) -> list[sa.Row]:
    """(instrument_id, ts, close, volume) of every crypto market's bars with start < ts <= end, by market and time
    (a short range of the (interval, ts) index)."""
    return list(session.execute(
        sa.select(Bar.instrument_id, Bar.ts, Bar.close, Bar.volume)
        .join(Instrument, Instrument.id == Bar.instrument_id)
        .where(Instrument.asset_class == CRYPTO, Bar.interval == interval, Bar.ts > start, Bar.ts <= end)
        .order_by(Bar.instrument_id, Bar.ts)))


def alerted_since(session: Session, since: dt.datetime) -> set[tuple[int, str]]:
    """(instrument_id, quantity) of the alerts created after `since`."""
    return set(session.execute(sa.select(Alert.instrument_id, Alert.quantity).where(Alert.created_at > since)))


def find_alert_id(session: Session, instrument_id: int, quantity: str, bar_time: dt.datetime) -> int | None:
    return session.scalar(sa.select(Alert.id).where(Alert.instrument_id == instrument_id, Alert.quantity == quantity,
                                                    Alert.bar_time == bar_time))


def _user_alerts(user_id: int):
    delivery = AlertDelivery.__table__.alias("delivery")
    return (sa.select(Alert, Instrument.exchange, Instrument.symbol, delivery.c.status.label("email"))
            .join(Instrument, Instrument.id == Alert.instrument_id)
            .join(WatchlistEntry, sa.and_(WatchlistEntry.instrument_id == Alert.instrument_id,
                                          WatchlistEntry.user_id == user_id))
            .outerjoin(delivery, sa.and_(delivery.c.alert_id == Alert.id, delivery.c.user_id == user_id)))


def user_alerts(session: Session, user_id: int, *, limit: int, offset: int) -> list[sa.Row]:
    """One page of the alerts of the markets on a user's watchlist, newest first, with that user's e-mail status."""
    return list(session.execute(_user_alerts(user_id).order_by(Alert.created_at.desc(), Alert.id.desc())
                                .limit(limit).offset(offset)))


def count_user_alerts(session: Session, user_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(_user_alerts(user_id).subquery())) or 0


def deliveries_to_send(session: Session, *, abandoned_before: dt.datetime, limit: int) -> list[sa.Row]:
    """(id, status, updated_at) of the deliveries waiting for a (new) attempt, oldest first: pending, failed, and
    `sending` ones whose run stopped before finishing them."""
    return list(session.execute(
        sa.select(AlertDelivery.id, AlertDelivery.status, AlertDelivery.updated_at)
        .where(sa.or_(AlertDelivery.status.in_(("pending", "failed")),
                      sa.and_(AlertDelivery.status == "sending", AlertDelivery.updated_at < abandoned_before)))
        .order_by(AlertDelivery.id).limit(limit)))


def claim_delivery(session: Session, delivery: sa.Row, now: dt.datetime) -> bool:
    """Mark a delivery `sending` for this run, counting the attempt, unless another run changed it since it
    was read; True when this run now owns it."""
    return session.execute(
        sa.update(AlertDelivery).where(AlertDelivery.id == delivery.id, AlertDelivery.status == delivery.status,
                                       AlertDelivery.updated_at == delivery.updated_at)
        .values(status="sending", attempts=AlertDelivery.attempts + 1, updated_at=now)).rowcount == 1


def delivery_details(session: Session, delivery_id: int) -> sa.Row:
    """What an alert e-mail says: the alert, its market and the recipient."""
    return session.execute(
        sa.select(AlertDelivery.id, User.email, Alert.id.label("alert_id"), Alert.quantity, Alert.value, Alert.average,
                  Alert.factor, Alert.points, Alert.window_minutes, Alert.bar_time, Alert.created_at,
                  Instrument.exchange, Instrument.symbol, Instrument.name)
        .join(Alert, Alert.id == AlertDelivery.alert_id).join(User, User.id == AlertDelivery.user_id)
        .join(Instrument, Instrument.id == Alert.instrument_id).where(AlertDelivery.id == delivery_id)).one()


def finish_delivery(session: Session, delivery_id: int, status: str, now: dt.datetime,
                    error: str | None = None) -> None:
    values = {"status": status, "updated_at": now, "last_error": error[:255] if error else None}
    if status == "sent":
        values["sent_at"] = now
    session.execute(sa.update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values))


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
