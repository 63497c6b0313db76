"""Failed-login counters: after `MAX_FAILURES` failed logins for one account, or from one client
address, within `WINDOW_MINUTES`, further logins for it are refused with 429 until the oldest failure
leaves the window.

The counters are moving windows of the `limits` package (the engine under Flask-Limiter), kept in Redis when
REDIS_URL is set, so every worker and replica counts the same failures, and in process memory otherwise.
Only failures are counted: a login is first *tested* against both counters, the password is checked only
if neither is exhausted, and a failure is then *hit* on both. (Flask-Limiter's decorators count requests
per route and key; here the account key comes from the body, only failures count, a success clears its
account's counter, and the 429 must be the API's envelope — so the limiter is used directly.)

If Redis stops answering, counting goes on in this process's memory for `BACKOFF` seconds at a time:
attackers are still slowed down per worker, and logins keep working.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Callable, TypeVar

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_FAILURES = 10
WINDOW_MINUTES = 15
BACKOFF = 5.0
LIMIT = RateLimitItemPerMinute(MAX_FAILURES, WINDOW_MINUTES)


class LoginLimiter:
    def __init__(self, redis_url: str | None = None, key_prefix: str = "") -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared = None
        if redis_url:
            storage = RedisStorage(redis_url, key_prefix=f"{key_prefix}login-failures", socket_timeout=0.5,
                                   socket_connect_timeout=0.5)
            self.shared = MovingWindowRateLimiter(storage)
        self._down_until = 0.0

    @staticmethod
    def keys(email: str, address: str | None) -> list[str]:
        """The counters a login touches: its account (by a digest: no address in clear in Redis) and its
        client address."""
        return [f"account:{hashlib.sha256(email.encode()).hexdigest()[:32]}", f"address:{address or 'unknown'}"]

    def _run(self, operation: Callable[[MovingWindowRateLimiter], T]) -> T:
        if self.shared is not None and time.monotonic() >= self._down_until:
            try:
                return operation(self.shared)
            except (RedisError, OSError) as exc:
                log.warning("login counters unavailable in Redis, counting in process for %.0fs: %s", BACKOFF,
                            type(exc).__name__)
                self._down_until = time.monotonic() + BACKOFF
        return operation(self.memory)

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds until a login may be tried again when any counter is exhausted, else None."""
        def check(strategy: MovingWindowRateLimiter) -> int | None:
            waits = []
            for key in keys:
                if not strategy.test(LIMIT, key):
                    reset_time, _ = strategy.get_window_stats(LIMIT, key)
                    waits.append(max(1, math.ceil(reset_time - time.time())))
            return max(waits) if waits else None
        return self._run(check)

    def failed(self, keys: list[str]) -> None:
        self._run(lambda strategy: [strategy.hit(LIMIT, key) for key in keys])

    def clear(self, key: str) -> None:
        self._run(lambda strategy: strategy.clear(LIMIT, key))
