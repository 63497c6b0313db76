"""A cache of computed results that are never served once the data they came from has changed.

Every entry is stored as (generation, value): the data generation it was computed under. Every write
that changes the data gives it a new generation in the same transaction and then publishes it
(`financial.transactions.unit_of_work`). A lookup reads the current generation with the entry and
serves the entry only when the two match, so no process, in any worker or on any machine, returns
figures older than the last committed change.

Where the current generation is read from depends on the backend:
- a shared backend (Redis): from the cache itself, in the same round trip as the entry (MGET). The copy
  there expires after `GENERATION_TTL` seconds and is then re-read from the database, which bounds how
  long a generation published while Redis was unreachable can go unseen. Every writer of that copy also
  keeps the generation under `LAST_GENERATION_KEY`, which does not expire: while the database cannot be
  read, lookups use it, so cached answers keep being served through a database outage.
- a per-process backend (the in-memory default): from the database, since another process's change
  cannot reach this process's memory. On an SQLite file, `SqliteGenerationWatch` makes that nearly free.

When Redis fails, lookups compute from the database directly and skip Redis for `BACKOFF` seconds, so
an outage slows the service down without breaking it.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import redis
from flask import Flask
from flask_caching.backends.rediscache import RedisCache as _FlaskRedisCache
from redis.exceptions import RedisError

from financial.breaker import DATABASE_FAULTS, Breaker
from financial.extensions import cache, db
from financial.near_cache import NearCache
from financial.storage import state

log = logging.getLogger(__name__)
T = TypeVar("T")
GENERATION_KEY = "generation"
LAST_GENERATION_KEY = "generation:last"  # the last generation the cache was told of; never expires
FEED = "generations"  # the pub/sub channel that announces each new generation (financial.near_cache)
INITIAL_GENERATION = "initial"  # that of a database no write has touched yet
GENERATION_TTL = 5
BACKOFF = 5.0

REDIS_BACKEND = "financial.caching.RedisCache"
_FAULTS = (RedisError, OSError)
# Each sets the shared copy of the generation (for GENERATION_TTL seconds) and the last known one in one
# step, so that the two never disagree. Adopting the database's generation sets them unless a publisher
# set the copy first (the database's may then already be older).
_PUBLISH = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) redis.call('SET', KEYS[2], ARGV[1]) return 1"
_ADOPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
    redis.call('SET', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


class RedisCache(_FlaskRedisCache):
    """Flask-Caching's Redis backend on one connection per process instead of a pool.

    A pool checkout polls the socket before every command, a third of what a cached request costs;
    redis-py locks a single connection for threaded workers, and `forget_connection` reopens it after a
    fork. A single-connection client connects when it is created, so when Redis is down at start-up
    this falls back to an ordinary (lazily connecting) pooled client rather than failing to start.
    """

    @classmethod
    def factory(cls, app, config, args, kwargs):  # type: ignore[no-untyped-def]  # Flask-Caching's signature
        options = dict(config.get("CACHE_OPTIONS") or {})
        try:
            client = redis.Redis.from_url(config["CACHE_REDIS_URL"], single_connection_client=True, **options)
        except RedisError as exc:
            log.warning("Redis unreachable at start-up (%s); using a pooled client that connects later", exc)
            client = redis.Redis.from_url(config["CACHE_REDIS_URL"], **options)
        kwargs.update(host=client, key_prefix=config.get("CACHE_KEY_PREFIX") or "",
                      default_timeout=config.get("CACHE_DEFAULT_TIMEOUT", 300))
        return cls(*args, **kwargs)


def _database_generation() -> str:
    with db.engine.connect() as connection:
        return state.read_generation(connection) or INITIAL_GENERATION


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
        local = self._local.__dict__
        try:
            if local.get("pid") != os.getpid():
                local.clear()
                local.update(pid=os.getpid(), connection=sqlite3.connect(self.path, timeout=30))
            connection = local["connection"]
            # fetchall() finishes each statement, so no read transaction (and no old snapshot) lingers.
            version = connection.execute("PRAGMA data_version").fetchall()[0][0]
            if version != local.get("version"):
                rows = connection.execute("SELECT value FROM service_state WHERE name = ?",
                                          (state.GENERATION,)).fetchall()
                local.update(version=version, generation=rows[0][0] if rows else INITIAL_GENERATION)
            return local["generation"]
        except sqlite3.Error:
            local.clear()
            if not fallback:
                raise
            return _database_generation()


@dataclass(frozen=True)
class Lookup:
    """What one cache round trip found: the current generation (None when it must be read from the
    database first) and the entry stored under the key (None when absent or stale)."""

    key: str
    generation: str | None
    value: Any | None


class GenerationCache:
    """One app's generation-tagged cache: its backend, where the generation comes from, the outage backoff."""

    def __init__(self, app: Flask, breaker: Breaker | None = None) -> None:
        self.app = app
        self.breaker = breaker or Breaker()  # the database's: open while it is known to be unreachable
        self.shared = app.config.get("CACHE_TYPE") == REDIS_BACKEND
        self.down_until = 0.0
        # An ingest during an outage could not publish its generation; on recovery this process sets the
        # shared copy from the database before trusting any entry (other processes have the TTL as bound).
        self.reconcile = False
        self.watch: SqliteGenerationWatch | None = None
        self.near: NearCache | None = None
        if self.shared:
            self.near = NearCache(app.config["CACHE_REDIS_URL"], app.config.get("CACHE_KEY_PREFIX", "") + FEED,
                                  options=app.config.get("CACHE_OPTIONS"))
        with app.app_context():
            url = db.engine.url
        if not self.shared and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            self.watch = SqliteGenerationWatch(url.database)

    @property
    def backend(self) -> Any:
        return self.app.extensions["cache"][cache]

    @property
    def available(self) -> bool:
        return time.monotonic() >= self.down_until

    def _mark_down(self, error: Exception) -> None:
        if self.available:
            log.warning("cache unavailable, serving from the database for %.0fs: %s", BACKOFF, error)
        self.down_until = time.monotonic() + BACKOFF
        self.reconcile = True

    def peek(self, key: str) -> Lookup | None:
        """One round trip for the entry and the generation, for the fast path in front of Flask: None where
        anything unusual stands in the way (an outage, a pending reconciliation, a generation that only the
        database knows); the full path (`get_or_compute`) meets the same condition and handles it."""
        if self.reconcile or not self.available:
            return None
        try:
            if self.shared:
                copy, token = self.near.get(key) if self.near else (None, None)
                if copy is not None:
                    return Lookup(key, *copy)
                generation, last, entry = self.backend.get_many(GENERATION_KEY, LAST_GENERATION_KEY, key)
                if generation is None and self.breaker.is_open:
                    generation = last  # (see _generation_without_copy)
                if self.near and generation is not None and entry is not None and entry[0] == generation:
                    self.near.put(key, entry, token)
            elif self.watch is not None:
                generation, entry = self.watch.current(fallback=False), self.backend.get(key)
            else:
                return None
        except Exception:  # never raises: the full path meets the same fault and answers it properly
            return None
        return Lookup(key, generation, entry[1] if entry is not None and entry[0] == generation else None)

    def get_or_compute(self, key: str, compute: Callable[[], T], *, found: Lookup | None = None,
                       timeout: int | None = None) -> T:
        """The cached value of `key` for the current data generation, computing and storing it on a miss.
        `found` is what `peek` already read for this key: the lookup is not repeated."""
        return self.get_or_compute_tagged(key, compute, found=found, timeout=timeout)[0]

    def get_or_compute_tagged(self, key: str, compute: Callable[[], T], *, found: Lookup | None = None,
                              timeout: int | None = None) -> tuple[T, str | None]:
        """`get_or_compute`, with the data generation the value belongs to (None when the cache could not
        be asked, so the generation is unknown)."""
        if not self.available:
            return compute(), None
        try:
            if found is not None and found.key == key and found.generation is not None:
                generation, value = found.generation, found.value
            else:
                generation, value = self._lookup(key)
        except _FAULTS as exc:
            self._mark_down(exc)
            return compute(), None
        if value is not None:
            return value, generation
        value = compute()
        try:
            self.backend.set(key, (generation, value), timeout=timeout or self.app.config["CACHE_DEFAULT_TIMEOUT"])
        except _FAULTS as exc:
            self._mark_down(exc)
        return value, generation

    def _lookup(self, key: str) -> tuple[str, Any | None]:
        backend = self.backend
        if self.shared:
            if self.reconcile:
                self._set_generation(_database_generation())
                self.reconcile = False
                log.info("cache reachable again; data generation reconciled with the database")
            generation, last, entry = backend.get_many(GENERATION_KEY, LAST_GENERATION_KEY, key)
            if generation is None:
                generation = self._generation_without_copy(last)
        else:
            generation = self.watch.current() if self.watch else _database_generation()
            entry = backend.get(key)
        return generation, entry[1] if entry is not None and entry[0] == generation else None

    def _generation_without_copy(self, last: str | None) -> str:
        """The current generation when the shared cache's copy has expired: the database's, or, while the
        database cannot be read, the last one the cache was told of.

        While the database is unreachable no ingest can commit, so the last known generation is still the
        truth, and every answer cached under it is still right. (A writer that can reach the database while
        this process cannot publishes its new generation here too: the last known one moves on with it.)
        Without a last known one, the database's error stands: the request gets the 503."""
        if last is not None and self.breaker.is_open:  # known down: do not wait on it again
            return last
        try:
            return self._adopt_database_generation()
        except DATABASE_FAULTS:
            if last is None:
                raise
            log.info("database unreadable; serving cached answers of the last known data generation")
            return last

    def _adopt_database_generation(self) -> str:
        """Copy the database's generation into the shared cache, unless a publisher got there first."""
        generation = _database_generation()
        if self._store_generation(_ADOPT, generation):
            self._announce(generation)
        else:
            generation = self.backend.get(GENERATION_KEY) or generation
        return generation

    def _store_generation(self, script: str, generation: str) -> bool:
        backend = self.backend
        prefix = backend._get_prefix()
        return bool(backend._write_client.eval(script, 2, prefix + GENERATION_KEY, prefix + LAST_GENERATION_KEY,
                                               backend.serializer.dumps(generation), GENERATION_TTL))

    def _set_generation(self, generation: str) -> None:
        """Make `generation` the shared cache's current one, and announce it to every process's copies."""
        self._store_generation(_PUBLISH, generation)
        if self.near is not None:
            self.near.forget_copies()
        self._announce(generation)

    def _announce(self, generation: str) -> None:
        self.backend._write_client.publish(self.app.config.get("CACHE_KEY_PREFIX", "") + FEED, generation)

    def publish(self, generation: str) -> bool:
        """Make a committed generation current in the shared cache; False when the cache could not be told
        (entries then stop being served once the cached generation expires)."""
        if not self.shared:
            return True
        try:
            self._set_generation(generation)
            return True
        except _FAULTS as exc:
            log.warning("could not publish the new data generation to the cache: %s", exc)
            return False

    def forget_connection(self) -> None:
        """Drop the parent's Redis connection in a forked child; the next command opens the child's own.
        (redis-py only shuts a socket down in the process that opened it, so the parent's stays usable.)"""
        if self.shared:
            connection = getattr(self.backend._write_client, "connection", None)
            if connection is not None:
                connection.disconnect()

    def ping(self) -> None:
        """Raise if the cache backend cannot be reached (for /readyz)."""
        if self.shared:
            self.backend._write_client.ping()
        else:
            self.backend.get(GENERATION_KEY)
