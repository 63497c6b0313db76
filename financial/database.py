"""How the service talks to its database: engine options, SQLite's settings, statement timeouts, and the
circuit breaker of the web process.

No statement outlives its caller. A request's statements may run STATEMENT_TIMEOUT seconds, an ingest's
(in `get_raw_data.py` and its workers) INGEST_STATEMENT_TIMEOUT; then the database itself ends the
statement (MariaDB's `max_statement_time`, MySQL's `max_execution_time`, set on each new connection), so a
slow query does not go on running on the server after its caller has given up; on SQLite a progress
handler interrupts it. The MySQL client's connect, read and write timeouts are a second longer than the
statement timeout: the server's own error arrives first when it is there, and when the path to it
silently drops every packet a request still ends within seconds, well before gunicorn's worker timeout.
Migrations lift the timeout on the connection they run on, which is then discarded.

In the processes that answer requests, a MySQL engine also gets a circuit breaker (financial.breaker):
after a connection-level failure, requests that need the database get the 503 at once instead of each
waiting out its timeout.
"""
from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from financial.breaker import Breaker
from financial.config import Settings

SQLITE_CHECK_EVERY = 10_000  # virtual-machine instructions between two looks at the clock
_NO_DEADLINE = "no_statement_deadline"
INGEST_PROCESSES = ("ingest", "worker")  # get_raw_data.py, in-process or as a Celery worker: long statements
CLIENT_MARGIN = 1.0  # seconds the MySQL client waits beyond the statement timeout
# MySQL client error codes (2000-2999, CR_*): the client could not talk to the server. The server's own
# errors (1000-1999, 3000 and up: a statement timeout, a deadlock) mean it answered.
_CLIENT_ERRORS = range(2000, 3000)


def statement_timeout(settings: Settings, process: str) -> float:
    return settings.ingest_statement_timeout if process in INGEST_PROCESSES else settings.statement_timeout


def client_timeout(settings: Settings, process: str) -> float:
    """Seconds the MySQL client waits to connect, or for one read or write, before it gives up."""
    return statement_timeout(settings, process) + CLIENT_MARGIN


def engine_options(settings: Settings, process: str) -> dict[str, Any]:
    # hide_parameters: a database error's text never quotes the values of its statement (e-mail addresses,
    # password and token hashes), so logging one cannot leak them.
    if settings.is_sqlite:
        return {"connect_args": {"timeout": 30}, "hide_parameters": True}
    wait = client_timeout(settings, process)
    return {"pool_pre_ping": True, "pool_recycle": 1800, "pool_size": 5, "max_overflow": 10, "pool_timeout": 5,
            "hide_parameters": True,
            "connect_args": {"connect_timeout": min(wait, 10.0), "read_timeout": wait, "write_timeout": wait,
                             "charset": "utf8mb4"}}


def install(engine: sa.Engine, settings: Settings, process: str, breaker: Breaker | None = None) -> None:
    """Listen on the engine's new connections: SQLite's settings, the statement timeout, and (given a
    `breaker`, in the processes that answer requests) the circuit breaker of a MySQL engine."""
    seconds = statement_timeout(settings, process)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _tune_sqlite)
        sa.event.listen(engine, "connect", lambda connection, record: _interrupt_after(connection, record, seconds))
        sa.event.listen(engine, "before_cursor_execute", _start_clock)
        return
    sa.event.listen(engine, "connect", lambda connection, record: _limit_mysql(connection, seconds))
    if breaker is not None and process not in INGEST_PROCESSES:
        _guard(engine, breaker, settings, process)


def _guard(engine: sa.Engine, breaker: Breaker, settings: Settings, process: str) -> None:
    """Put `breaker` on the engine's connections. When it opens, the pool is emptied: every later request
    must then make a new connection, and a new connection is what the breaker refuses while open (pooled
    ones would each wait out the dead server in the pool's pre-ping)."""
    wait = client_timeout(settings, process)
    breaker.probe_seconds = min(wait, 10.0) + wait + 1  # a probe's TCP connect, then the server's greeting
    breaker.on_open = lambda: engine.dispose(close=False)

    def before_connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        breaker.check()

    def on_error(context: sa.engine.ExceptionContext) -> None:
        args = getattr(context.original_exception, "args", ())
        code = args[0] if args else None
        if context.is_disconnect or (isinstance(code, int) and code in _CLIENT_ERRORS):
            breaker.failed(type(context.original_exception).__name__)

    sa.event.listen(engine, "do_connect", before_connect)
    sa.event.listen(engine, "connect", lambda connection, record: breaker.succeeded())
    sa.event.listen(engine, "handle_error", on_error)


def lift_statement_timeout(connection: sa.Connection) -> None:
    """No timeout on this connection (a migration's); call `connection.invalidate()` when done with it, so
    that the pool never hands it to anyone else."""
    if connection.dialect.name == "sqlite":
        connection.connection.info[_NO_DEADLINE] = True
    else:
        variable = "max_statement_time" if _is_mariadb(connection.connection.dbapi_connection) else "max_execution_time"
        connection.exec_driver_sql(f"SET SESSION {variable} = 0")
        connection.commit()  # (ends the transaction the statement began: the migrations begin their own)


def _tune_sqlite(connection: Any, _record: Any) -> None:
    # WAL lets the API read while an ingest writes; NORMAL sync is safe with WAL and much faster.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-32768")  # 32 MB of pages (the default 2 MB slows bulk upserts)
    cursor.close()


def _is_mariadb(dbapi_connection: Any) -> bool:
    return "mariadb" in dbapi_connection.get_server_info().lower()


def _limit_mysql(dbapi_connection: Any, seconds: float) -> None:
    cursor = dbapi_connection.cursor()
    if _is_mariadb(dbapi_connection):
        cursor.execute(f"SET SESSION max_statement_time = {float(seconds):.3f}")
    else:  # MySQL: SELECT statements only, in milliseconds
        cursor.execute(f"SET SESSION max_execution_time = {int(seconds * 1000)}")
    cursor.close()


def _interrupt_after(dbapi_connection: Any, record: Any, seconds: float) -> None:
    info = record.info

    def past_deadline() -> int:
        started = info.get("statement_started")
        if started is None or info.get(_NO_DEADLINE):
            return 0
        return 1 if time.monotonic() - started > seconds else 0  # non-zero: SQLite interrupts the statement

    dbapi_connection.set_progress_handler(past_deadline, SQLITE_CHECK_EVERY)


def _start_clock(connection: sa.Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
    connection.connection.info["statement_started"] = time.monotonic()
