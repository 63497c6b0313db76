"""Named locks that span processes: a file lock beside a SQLite database, GET_LOCK on MySQL (which also
spans machines). Used so that schema upgrades and scheduled ingests never run twice at once."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
from typing import Iterator

import sqlalchemy as sa


class LockBusy(Exception):
    """The lock is held by someone else (only raised when not waiting for it)."""


@contextlib.contextmanager
def exclusive(engine: sa.Engine, name: str, *, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the lock `name` for the duration of the block; `wait_seconds=0` fails at once with LockBusy."""
    if engine.dialect.name == "sqlite":
        with _file_lock(engine, name, wait_seconds):
            yield
        return
    server_name = mysql_lock_name(engine.url.database, name)
    with engine.connect() as connection:
        got = connection.scalar(sa.text("SELECT GET_LOCK(:name, :wait)"),
                                {"name": server_name, "wait": wait_seconds})
        if got != 1:
            raise LockBusy(f"lock {name!r} is held by another process")
        try:
            yield
        finally:
            connection.scalar(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": server_name})


def mysql_lock_name(database: str | None, name: str) -> str:
    """The server-wide name of the lock `name` of `database`.

    MySQL's named locks belong to the whole server, not to a database: without the database in the name,
    two deployments (or test sessions) sharing a server would block each other's scheduler. Names are
    limited to 64 characters, so long ones are shortened with a digest that keeps them distinct.
    """
    full = f"market_data:{database or ''}:{name}"
    if len(full) <= 64:
        return full
    return f"{full[:47]}:{hashlib.sha1(full.encode()).hexdigest()[:16]}"


@contextlib.contextmanager
def _file_lock(engine: sa.Engine, name: str, wait_seconds: float) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":  # a private in-memory database has no one to race with
        yield
        return
    with open(f"{database}.{name}.lock", "a") as handle:
        if wait_seconds:
            # flock has no timeout; callers that wait are short start-up steps, so block.
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockBusy(f"lock {name!r} is held by another process") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
