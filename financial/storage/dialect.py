"""What differs between SQLite and MySQL: native upserts, epoch arithmetic, and the literals of the bulk bar
path.

Bars are the bulk of every ingest, so their upsert statement (built once by SQLAlchemy) is handed to the
driver directly: per-row parameter processing in SQLAlchemy, and pymysql's per-value escaping, cost
several times the databases' own work. On SQLite the rows go to `executemany` as plain tuples, with
timestamps in SQLAlchemy's own text format; on MySQL they are rendered as one multi-row VALUES list per
batch. Every value rendered here is a checked finite number, a known interval or a timestamp, so nothing
ever needs quoting or escaping, and anything else is refused.
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
import operator
import re
from typing import Any, Callable, Mapping, Sequence, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session

import lib
from financial.extensions import Base

Bind = Session | sa.Connection
# How a column is updated on conflict: a function of (the new row, the current row).
Update = Mapping[str, Callable[[Any, Any], Any]]

INTERVALS = frozenset(interval.value for interval in lib.Interval)
_MYSQL_VALUES = re.compile(r"VALUES \((?:%\(\w+\)s, )*%\(\w+\)s\)")  # pymysql's placeholders


def name(bind: Bind) -> str:
    """`sqlite` or `mysql` (MariaDB included)."""
    dialect = bind.dialect.name if isinstance(bind, sa.Connection) else bind.get_bind().dialect.name
    return "mysql" if dialect == "mariadb" else dialect


def table_of(model: type[Base]) -> sa.Table:
    return cast(sa.Table, model.__table__)


def insert(bind: Bind, model: type[Base]) -> sqlite.Insert | mysql.Insert:
    """The dialect's own INSERT construct, which knows its native upsert syntax."""
    table = table_of(model)
    dialect = name(bind)
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "mysql":
        return mysql.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


def upsert(bind: Bind, model: type[Base], keys: Sequence[str], update: Update) -> sa.Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE / ON DUPLICATE KEY UPDATE, one definition for both dialects."""
    stmt, table = insert(bind, model), table_of(model)
    if isinstance(stmt, sqlite.Insert):
        return stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={col: fn(stmt.excluded, table.c) for col, fn in update.items()})
    return stmt.on_duplicate_key_update(**{col: fn(stmt.inserted, table.c) for col, fn in update.items()})


def insert_ignoring_duplicates(session: Session, model: type[Base], row: Mapping[str, Any]) -> bool:
    """INSERT a row unless one with the same unique key exists (the database decides, so two processes
    racing to insert it cannot both succeed nor fail); True when this call inserted it."""
    stmt = insert(session, model).values(**row)
    stmt = stmt.on_conflict_do_nothing() if isinstance(stmt, sqlite.Insert) else stmt.prefix_with("IGNORE")
    return rowcount(session.execute(stmt)) == 1


def rowcount(result: sa.Result[Any]) -> int:
    """The rows an INSERT, UPDATE or DELETE touched (its result is a CursorResult)."""
    return cast(sa.CursorResult[Any], result).rowcount


def epoch_bucket(bind: Bind, column: Any, width_seconds: int) -> Any:
    """The number of the `width_seconds` interval since 1970-01-01 (UTC) a naive UTC DATETIME column falls
    in: floor(seconds since the epoch / width). MySQL's TIMESTAMPDIFF reads the naive value as it is (unlike
    UNIX_TIMESTAMP, which applies the session's time zone)."""
    seconds: Any
    if name(bind) == "sqlite":
        seconds = sa.cast(sa.func.strftime("%s", column), sa.Integer)
    else:
        seconds = sa.func.timestampdiff(sa.literal_column("SECOND"), sa.literal("1970-01-01 00:00:00"), column)
    return seconds // width_seconds


def as_datetime(value: Any) -> dt.datetime:
    """An aggregate over a DateTime column (MAX(ts)): SQLite returns it as text, since SQLAlchemy converts
    only columns."""
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


# -- the bulk bar path ----------------------------------------------------------------------------------

def execute_in_batches(connection: sa.Connection, stmt: sa.Insert, rows: Sequence[Mapping[str, Any]],
                       batch_size: int) -> None:
    """Run a multi-row INSERT for `rows`, `batch_size` at a time, straight through the driver (see the
    module's docstring)."""
    compiled = stmt.compile(dialect=connection.dialect)
    dialect = name(connection)
    columns = [column.name for column in stmt.table.columns]
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        if dialect == "sqlite":
            connection.exec_driver_sql(compiled.string, sqlite_params(batch, compiled.positiontup or ()))
        elif dialect == "mysql":
            head, tail = _MYSQL_VALUES.split(compiled.string, maxsplit=1)
            connection.exec_driver_sql(f"{head}VALUES {','.join(mysql_row(row, columns) for row in batch)}{tail}")
        else:
            connection.execute(stmt, list(batch))


def sqlite_params(rows: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[tuple]:
    values_of, ts_at = operator.itemgetter(*order), list(order).index("ts")
    params = []
    for row in rows:
        values = list(values_of(row))
        values[ts_at] = sqlite_datetime(values[ts_at])
        params.append(tuple(values))
    return params


def sqlite_datetime(value: dt.datetime) -> str:
    # SQLAlchemy's storage format for DateTime on SQLite (always six fraction digits); every query
    # compares against values in this format, so the text must match it exactly.
    return value.isoformat(" ", "microseconds")


def mysql_row(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    return "(" + ",".join(mysql_literal(column, row.get(column)) for column in columns) + ")"


def mysql_literal(column: str, value: Any) -> str:
    """A bar row's value as a MySQL literal: a finite number, a timestamp or a known interval, else refused."""
    if value is None:
        return "NULL"
    if column == "ts":
        if not isinstance(value, dt.datetime):
            raise TypeError(f"bar ts must be a datetime, got {value!r}")
        return f"'{value.isoformat(' ', 'microseconds' if value.microsecond else 'seconds')}'"
    if column == "interval":
        if value not in INTERVALS:
            raise ValueError(f"unknown bar interval {value!r}")
        return f"'{value}'"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers are Real too
        raise TypeError(f"bar {column} must be a number, got {value!r}")
    if column == "instrument_id":
        return str(int(cast(Any, value)))  # (numpy's integers are Real, not int)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"bar {column} must be a finite number, got {value!r}")
    return repr(number)
