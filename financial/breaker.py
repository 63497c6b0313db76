"""A circuit breaker in front of the database, so that a database that stopped answering costs one wait,
not one wait per request.

Closed, every request connects as usual. When the client cannot talk to the server (it cannot connect,
or a read or write times out), the breaker opens for OPEN_SECONDS: the pool is emptied, and every new
connection is refused at once with the 503 envelope and a `Retry-After`, so requests fail in
microseconds instead of each waiting out its own timeout. Once the period is over one connection is let
through as a probe; if it connects the breaker closes, if it fails the breaker opens again. An error the
server itself sends (a statement timeout, a deadlock, a bad query) does not open it: the server answered.

`database.install` wires it to an engine: `allow` before each new connection, `succeeded` after one,
`failed` on a connection-level error.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

from sqlalchemy import exc as sa_exc

from financial.errors import Unavailable

log = logging.getLogger(__name__)

OPEN_SECONDS = 5.0
DATABASE_UNAVAILABLE = "database unavailable; try again shortly"
# What a read of an unreachable database raises: the driver's errors, the pool's timeout, this breaker's 503.
DATABASE_FAULTS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, Unavailable)


class Breaker:
    def __init__(self, *, open_seconds: float | None = None, probe_seconds: float = 10.0,
                 on_open: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_seconds = OPEN_SECONDS if open_seconds is None else open_seconds
        # How long a probe may take before another one is let through (a probe whose thread died, or that
        # is still waiting out its connect timeout, must not keep the breaker open forever).
        self.probe_seconds = probe_seconds
        self.on_open = on_open
        self.clock = clock
        self._lock = threading.Lock()
        self._closed = True
        self._until = 0.0  # while open: when the next probe may go

    @property
    def is_open(self) -> bool:
        """Whether the database is known to be unreachable (open, or a probe is out)."""
        return not self._closed

    def retry_after(self) -> int:
        """Whole seconds until the next probe (at least 1): what `Retry-After` says."""
        return max(1, math.ceil(self._until - self.clock())) if not self._closed else math.ceil(self.open_seconds)

    def allow(self) -> bool:
        """Whether a new connection may be tried now: always while closed; while open, one probe per period."""
        if self._closed:
            return True
        with self._lock:
            now = self.clock()
            if self._closed or now >= self._until:
                self._until = now + self.probe_seconds
                return True
            return False

    def check(self) -> None:
        """Raise the 503 unless a connection may be tried now."""
        if not self.allow():
            raise unavailable(self.retry_after())

    def succeeded(self) -> None:
        if self._closed:
            return
        with self._lock:
            if not self._closed:
                self._closed = True
                log.warning("database reachable again; circuit breaker closed")

    def failed(self, reason: str) -> None:
        """The client could not talk to the server: open (again) for a period."""
        with self._lock:
            opening = self._closed
            self._closed = False
            self._until = self.clock() + self.open_seconds
        if opening:
            log.warning("database unreachable (%s); failing fast for %.1fs, then probing", reason, self.open_seconds)
            if self.on_open is not None:
                self.on_open()


def unavailable(retry_after: float = OPEN_SECONDS) -> Unavailable:
    """The 503 every request that needs an unreachable database gets."""
    return Unavailable(DATABASE_UNAVAILABLE, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})
