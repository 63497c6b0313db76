"""What the workers and the enqueuing process share through the broker's Redis, besides the queue itself:

- pacing: `ALPHAVANTAGE_MIN_INTERVAL` and `EXCHANGE_MIN_INTERVAL` (per exchange) hold for every worker
  together. Each upstream has one key holding the earliest time its next call may go out; a call reserves
  the next slot atomically (a Lua script on Redis's own clock, so the machines' clocks do not matter),
  then sleeps until it. Calls are spaced as one process spaces them, in the order they asked; nobody
  polls. The spacing has a margin of MARGIN (5%): the upstream counts calls as they arrive, and arrival
  drifts by some milliseconds from departure (threads, the network), so calls sent exactly
  `min_interval` apart could land closer than that.
- quotas: once an upstream says its daily quota is spent, a flag lives until the next UTC day; every
  worker checks it before a task and again right before each call, so the others stop calling at once.
- tasks in flight: each sent task claims its instrument (`claim`) until it has finished (`release`) or
  the claim expires, so a scheduler tick never sends an instrument whose earlier task is still queued or
  running.

Keys live under `ingest:<queue>:` (INGEST_QUEUE), so deployments or test sessions sharing a Redis database
with queues of their own never meet. Redis unreachable: pacing falls back to each process's own (logged),
a quota flag cannot be read (calls go on; the upstream still refuses them), claims fail (nothing is sent).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Callable

import redis

from financial.ingest.runner import quota_note
from financial.ingest.tasks import NotFetched
from lib.http import Limiter, RateLimiter

log = logging.getLogger(__name__)
MARGIN = 0.05

# KEYS[1]: the upstream's next free time; ARGV[1]: the interval. Returns how long the caller waits.
_RESERVE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local free = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', free), 'PX', math.ceil((free - now) * 1000) + 1000)
return string.format('%.6f', slot - now)
"""
# Delete KEYS[1] only if it still holds ARGV[1]: a late task never frees a newer task's claim.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


class SharedState:
    def __init__(self, client: redis.Redis, queue: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.prefix = f"ingest:{queue}:"
        self._sleep = sleep
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    # -- pacing ---------------------------------------------------------------------------------------

    def limiter(self, key: str, min_interval: float) -> "SharedLimiter":
        """The limiter of the upstream `key` (`alphavantage`, `exchange:kraken`): lib.http.LimiterFactory."""
        return SharedLimiter(self, key, min_interval)

    def reserve(self, key: str, min_interval: float) -> float:
        """Seconds until this caller's slot for `key`; the slot after it is `min_interval` later."""
        return float(self._reserve(keys=[f"{self.prefix}pace:{key}"], args=[repr(float(min_interval))]))

    # -- daily quotas ---------------------------------------------------------------------------------

    def quota_spent(self, upstream: str) -> bool:
        try:
            return bool(self.client.exists(f"{self.prefix}quota:{upstream}"))
        except redis.RedisError as exc:
            log.warning("cannot read the %s quota flag: %s", upstream, exc)
            return False

    def mark_quota_spent(self, upstream: str, now: dt.datetime | None = None) -> None:
        """Flag `upstream`'s daily quota as spent until the next UTC midnight."""
        now = now or dt.datetime.now(dt.timezone.utc)
        midnight = dt.datetime.combine(now.astimezone(dt.timezone.utc).date() + dt.timedelta(days=1), dt.time(),
                                       dt.timezone.utc)
        try:
            self.client.set(f"{self.prefix}quota:{upstream}", now.isoformat(), exat=int(midnight.timestamp()))
        except redis.RedisError as exc:
            log.warning("cannot flag the %s quota as spent: %s", upstream, exc)

    # -- tasks in flight ------------------------------------------------------------------------------

    def claim(self, name: str, task_id: str, seconds: float) -> bool:
        """Claim `name` for `task_id` for `seconds`; False when a task holds it already. Raises RedisError."""
        return bool(self.client.set(f"{self.prefix}inflight:{name}", task_id, nx=True, px=int(seconds * 1000)))

    def release(self, name: str, task_id: str) -> None:
        try:
            self._release(keys=[f"{self.prefix}inflight:{name}"], args=[task_id])
        except redis.RedisError as exc:  # the claim expires by itself
            log.warning("cannot release the claim on %s: %s", name, exc)

    def in_flight(self) -> list[str]:
        """The names claimed now (for tests and the docs' monitoring)."""
        start = len(f"{self.prefix}inflight:")
        return sorted(key.decode()[start:] for key in self.client.scan_iter(f"{self.prefix}inflight:*"))


class SharedLimiter:
    """A lib.http.Limiter whose pace holds for every process sharing the Redis; before letting a call go,
    it checks that the upstream's daily quota has not been spent meanwhile (NotFetched if it has)."""

    def __init__(self, state: SharedState, key: str, min_interval: float) -> None:
        self.state = state
        self.key = key
        self.upstream = key.split(":", 1)[0]  # exchange:kraken -> exchange, as the tasks name upstreams
        self.min_interval = max(0.0, float(min_interval))
        self.spacing = self.min_interval * (1 + MARGIN)
        self._local: Limiter = RateLimiter(self.min_interval)  # while Redis is unreachable
        self._warned = 0.0

    def wait(self) -> float:
        delay = 0.0
        if self.min_interval:
            try:
                delay = self.state.reserve(self.key, self.spacing)
            except redis.RedisError as exc:
                if time.monotonic() - self._warned > 60:
                    log.warning("pacing %s within this process only: %s", self.key, exc)
                    self._warned = time.monotonic()
                return self._local.wait()
            if delay > 0:
                self.state._sleep(delay)
        if self.state.quota_spent(self.upstream):
            raise NotFetched(quota_note(self.upstream))
        return delay
