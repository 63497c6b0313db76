"""Counters that slow down guessing and account floods, answered with 429 once exhausted:

- failed logins (`LoginLimiter`): after `MAX_FAILURES` failed logins for one account, or from one client
  address, within `WINDOW_MINUTES`, further logins for it are refused until the oldest failure leaves the
  window;
- sign-ups (`SignupLimiter`): at most SIGNUP_LIMIT_PER_HOUR from one client address within an hour
  (each costs a 64 MiB password hash).

The counters are moving windows of the `limits` package (the engine under Flask-Limiter), kept in Redis when
one is configured (RATE_LIMIT_REDIS_URL, else REDIS_URL), so every worker and replica counts the same
attempts, and in process memory otherwise. Their Redis must not evict keys (`noeviction`): in a cache's
Redis, which evicts under memory pressure, a flood of distinct cacheable URLs would push the counters out
and hand an attacker a fresh allowance.

Of logins only failures are counted: a login is first *tested* against both counters, the password is checked only
if neither is exhausted, and a failure is then *hit* on both. (Flask-Limiter's decorators count requests
per route and key; here the account key comes from the body, only failures count, a success clears its
account's counter, and the 429 must be the API's envelope — so the limiter is used directly.)

If Redis stops answering, counting goes on in this process's memory for `BACKOFF` seconds at a time:
attackers are still slowed down per worker, and logins and sign-ups keep working.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Callable, TypeVar

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_FAILURES = 10
WINDOW_MINUTES = 15
BACKOFF = 5.0
LIMIT = RateLimitItemPerMinute(MAX_FAILURES, WINDOW_MINUTES)


class _Counters:
    """Moving-window counters in Redis (shared by every process), or in this process while Redis is away."""

    def __init__(self, redis_url: str | None, key_prefix: str, what: str, label: str) -> None:
        self.label = label
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared = None
        if redis_url:
            storage = RedisStorage(redis_url, key_prefix=f"{key_prefix}{what}", socket_timeout=0.5,
                                   socket_connect_timeout=0.5)
            self.shared = MovingWindowRateLimiter(storage)
        self._down_until = 0.0

    def _run(self, operation: Callable[[MovingWindowRateLimiter], T]) -> T:
        if self.shared is not None and time.monotonic() >= self._down_until:
            try:
                return operation(self.shared)
            except (RedisError, OSError) as exc:
                log.warning("%s counters unavailable in Redis, counting in process for %.0fs: %s", self.label,
                            BACKOFF, type(exc).__name__)
                self._down_until = time.monotonic() + BACKOFF
        return operation(self.memory)


def _wait(strategy: MovingWindowRateLimiter, limit: RateLimitItem, key: str) -> int:
    """Whole seconds until the oldest attempt counted under `key` leaves the window (at least 1)."""
    reset_time, _ = strategy.get_window_stats(limit, key)
    return max(1, math.ceil(reset_time - time.time()))


class LoginLimiter(_Counters):
    def __init__(self, redis_url: str | None = None, key_prefix: str = "") -> None:
        super().__init__(redis_url, key_prefix, "login-failures", "login")

    @staticmethod
    def keys(email: str, address: str | None) -> list[str]:
        """The counters a login touches: its account (by a digest: no address in clear in Redis) and its
        client address."""
        return [f"account:{hashlib.sha256(email.encode()).hexdigest()[:32]}", f"address:{address or 'unknown'}"]

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds until a login may be tried again when any counter is exhausted, else None."""
        def check(strategy: MovingWindowRateLimiter) -> int | None:
            waits = [_wait(strategy, LIMIT, key) for key in keys if not strategy.test(LIMIT, key)]
            return max(waits) if waits else None
        return self._run(check)

    def failed(self, keys: list[str]) -> None:
        self._run(lambda strategy: [strategy.hit(LIMIT, key) for key in keys])

    def clear(self, key: str) -> None:
        self._run(lambda strategy: strategy.clear(LIMIT, key))


class SignupLimiter(_Counters):
    """At most `per_hour` sign-ups from one client address within any hour (0: no limit)."""

    def __init__(self, per_hour: int, redis_url: str | None = None, key_prefix: str = "") -> None:
        super().__init__(redis_url, key_prefix, "signups", "sign-up")
        self.limit = RateLimitItemPerHour(per_hour) if per_hour else None

    def attempt(self, address: str | None) -> int | None:
        """Count one sign-up from `address`: None when it may go ahead, else the seconds to wait (a refused
        attempt is not counted, so waiting out the window is enough)."""
        limit = self.limit
        if limit is None:
            return None
        key = f"address:{address or 'unknown'}"
        return self._run(lambda strategy: None if strategy.hit(limit, key) else _wait(strategy, limit, key))
