"""Results cached with Flask-Caching, and never served once the data they came from has changed.

Every cache entry is tagged with the data generation it was computed under. An ingest gives the data
a new generation in the same transaction that writes it and then publishes it (`commit_new_generation`
does both). A lookup fetches the current generation and the entry together and serves
the entry only when the tags match, so no process, in any worker or on any machine, returns figures
older than the last finished ingest.

Where the current generation is read from depends on the backend:
- a shared backend (Redis): from the cache itself, in the same round trip as the entry (MGET). The copy
  there expires after `GENERATION_TTL` seconds and is then re-read from the database, which bounds how
  long a generation published while Redis was unreachable can go unseen.
- a per-process backend (the in-memory default): from the database, since another process's ingest
  cannot reach this process's memory.

When Redis fails, lookups compute from the database directly and skip Redis for `BACKOFF` seconds, so
an outage slows the service down without breaking it.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any, Callable, TypeVar

import redis
from flask import current_app
from flask_caching.backends.rediscache import RedisCache as _FlaskRedisCache
from redis.exceptions import RedisError

from financial import storage
from financial.extensions import cache, db

log = logging.getLogger(__name__)
T = TypeVar("T")
GENERATION_KEY = "generation"
GENERATION_TTL = 5
BACKOFF = 5.0

REDIS_BACKEND = "financial.caching.RedisCache"


class RedisCache(_FlaskRedisCache):
    """Flask-Caching's Redis backend on one connection per process instead of a pool.

    A pool checkout polls the socket before every command, a third of what a cached request costs;
    redis-py locks a single connection for threaded workers, and `forget_connection` reopens it after a
    fork. A single-connection client connects when it is created, so when Redis is down at start-up
    this falls back to an ordinary (lazily connecting) pooled client rather than failing to start.
    """

    @classmethod
    def factory(cls, app, config, args, kwargs):
        options = dict(config.get("CACHE_OPTIONS") or {})
        try:
            client = redis.Redis.from_url(config["CACHE_REDIS_URL"], single_connection_client=True, **options)
        except RedisError as exc:
            log.warning("Redis unreachable at start-up (%s); using a pooled client that connects later", exc)
            client = redis.Redis.from_url(config["CACHE_REDIS_URL"], **options)
        kwargs.update(host=client, key_prefix=config.get("CACHE_KEY_PREFIX") or "",
                      default_timeout=config.get("CACHE_DEFAULT_TIMEOUT", 300))
        return cls(*args, **kwargs)


# Each of these reads the current app, or the one given where there is no app context (`peek`).
def _shared(app=None) -> bool:
    return (app or current_app).config.get("CACHE_TYPE") == REDIS_BACKEND


def _backend(app=None):
    return (app or current_app).extensions["cache"][cache]


def _available(app=None) -> bool:
    return time.monotonic() >= (app or current_app).extensions["cache_down_until"]


def _mark_down(error: Exception) -> None:
    if _available():
        log.warning("cache unavailable, serving from the database for %.0fs: %s", BACKOFF, error)
    current_app.extensions["cache_down_until"] = time.monotonic() + BACKOFF
    # An ingest during the outage could not publish its generation; on recovery this process sets the
    # shared copy from the database before trusting any entry (other processes have the TTL as bound).
    current_app.extensions["cache_reconcile"] = True


def _database_generation() -> str:
    with db.engine.connect() as connection:
        return storage.read_generation(connection) or "initial"


class SqliteGenerationWatch:
    """The database's generation, re-read only when SQLite says another connection has committed.

    `PRAGMA data_version` changes exactly when another connection (in any process) commits, and costs
    a few microseconds on an open connection, so a lookup in the in-process cache usually touches no
    table at all. One read-only connection per thread, reopened after a fork.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def current(self, *, fallback: bool = True) -> str:
        """The generation; on an SQLite error, read through SQLAlchemy (which raises the error the API turns
        into a 503) or, with `fallback=False`, raise the sqlite3 error."""
        state = self._local.__dict__
        try:
            if state.get("pid") != os.getpid():
                state.clear()
                state.update(pid=os.getpid(), connection=sqlite3.connect(self.path, timeout=30))
            connection = state["connection"]
            # fetchall() finishes each statement, so no read transaction (and no old snapshot) lingers.
            version = connection.execute("PRAGMA data_version").fetchall()[0][0]
            if version != state.get("version"):
                rows = connection.execute("SELECT value FROM service_state WHERE name = ?",
                                          (storage.GENERATION,)).fetchall()
                state.update(version=version, generation=rows[0][0] if rows else "initial")
            return state["generation"]
        except sqlite3.Error:
            state.clear()
            if not fallback:
                raise
            return _database_generation()


def _local_generation() -> str:
    watch = current_app.extensions.get("generation_watch")
    return watch.current() if watch else _database_generation()


def init_app(app) -> None:
    """Set up the per-app state: the outage backoff, and the cheap change detector when the cache is
    per-process and the database is an SQLite file."""
    app.extensions["cache_down_until"] = 0.0
    app.extensions["cache_reconcile"] = False
    with app.app_context():
        url = db.engine.url
    if app.config.get("CACHE_TYPE") != REDIS_BACKEND and url.get_backend_name() == "sqlite" and url.database \
            and url.database != ":memory:":
        app.extensions["generation_watch"] = SqliteGenerationWatch(url.database)


def get_or_compute(key: str, compute: Callable[[], T], timeout: int | None = None) -> T:
    """The cached value of `key` for the current data generation, computing and storing it on a miss."""
    if not _available():
        return compute()
    backend = _backend()
    try:
        if _shared():
            if current_app.extensions.get("cache_reconcile"):
                backend.set(GENERATION_KEY, _database_generation(), timeout=GENERATION_TTL)
                current_app.extensions["cache_reconcile"] = False
                log.info("cache reachable again; data generation reconciled with the database")
            generation, entry = backend.get_many(GENERATION_KEY, key)
            if generation is None:
                generation = _adopt_database_generation(backend)
        else:
            generation, entry = _local_generation(), backend.get(key)
    except (RedisError, OSError) as exc:
        _mark_down(exc)
        return compute()
    if entry is not None and entry[0] == generation:
        return entry[1]
    value = compute()
    try:
        backend.set(key, (generation, value), timeout=timeout or current_app.config["CACHE_DEFAULT_TIMEOUT"])
    except (RedisError, OSError) as exc:
        _mark_down(exc)
    return value


def _adopt_database_generation(backend) -> str:
    """Copy the database's generation into the shared cache, unless a publisher got there first."""
    generation = _database_generation()
    if not backend.add(GENERATION_KEY, generation, timeout=GENERATION_TTL):
        generation = backend.get(GENERATION_KEY) or generation
    return generation


def commit_new_generation(session) -> None:
    """Commit the session's changes to the data together with a new generation, then publish it: once
    this returns, no process serves a cached answer computed before the change."""
    generation = storage.bump_generation(session)
    session.commit()
    publish_generation(generation)


def publish_generation(generation: str) -> bool:
    """Make a committed generation current in the shared cache; False when the cache could not be told
    (entries then stop being served once the cached generation expires)."""
    if not _shared():
        return True
    try:
        _backend().set(GENERATION_KEY, generation, timeout=GENERATION_TTL)
        return True
    except (RedisError, OSError) as exc:
        log.warning("could not publish the new data generation to the cache: %s", exc)
        return False


def forget_connection() -> None:
    """Drop the parent's Redis connection in a forked child; the next command opens the child's own.
    (redis-py only shuts a socket down in the process that opened it, so the parent's stays usable.)"""
    if _shared():
        connection = getattr(_backend()._write_client, "connection", None)
        if connection is not None:
            connection.disconnect()


def ping() -> None:
    """Raise if the cache backend cannot be reached (for /readyz)."""
    backend = _backend()
    if _shared():
        backend._write_client.ping()
    else:
        backend.get(GENERATION_KEY)


def response_key(path: str, query_string: str) -> str:
    """The cache key of a public GET answer: its path and its raw query string, exactly as sent."""
    return f"{path}?{query_string}"


def peek(app, key: str) -> Any | None:
    """The value cached under `key` if it is current, else None, for the answer-from-cache fast path
    (financial/api/cached_answers.py). It never computes, never waits out an outage and never raises:
    anything unusual is left to `get_or_compute`, on the full path, which handles it."""
    if app.extensions["cache_reconcile"] or not _available(app):
        return None
    backend = _backend(app)
    try:
        if _shared(app):
            generation, entry = backend.get_many(GENERATION_KEY, key)
        else:
            watch = app.extensions.get("generation_watch")
            if watch is None:  # the generation is then a database query: the full path does it
                return None
            generation, entry = watch.current(fallback=False), backend.get(key)
    except Exception:  # the full path meets the same fault and answers it properly
        return None
    if generation is not None and entry is not None and entry[0] == generation:
        return entry[1]
    return None
