"""Copies of shared cache entries kept in each worker process, told at once when the data changes.

A cache hit in Redis is one round trip, most of what a cached answer costs. Each process therefore keeps
copies of the entries it served, and listens, on a Redis pub/sub connection of its own, for the new data
generations every writer publishes (`caching.GenerationCache.publish`). A copy is served only while:

- no new generation was announced since it was taken (any announcement drops every copy), and the feed
  has stayed connected since (a broken or re-made connection drops them too, since announcements may have
  been missed);
- it is younger than MAX_AGE: a connection that dies silently, with no error to notice, cannot keep a copy
  in service longer than that;
- and the process could subscribe at all (otherwise lookups go to Redis, as without copies).

Redis queues an announcement for its subscribers while it runs the publish, but may write the publisher's
reply to its socket first: a writer's own process therefore drops its copies itself when it publishes
(`forget_copies`), so its next request never sees an older answer; other processes hear the announcement
within the moment between those two socket writes. The copies are bounded (MAX_ENTRIES, MAX_BYTES), oldest
dropped first.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from typing import Any

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MAX_AGE = 1.0
MAX_ENTRIES = 4096
MAX_BYTES = 64 * 1024 * 1024
RETRY_AFTER = 5.0  # seconds before subscribing again after a failure
Entry = tuple[str, bytes]  # (the generation it was computed under, the answer)


class NearCache:
    def __init__(self, redis_url: str, channel: str, *, options: dict[str, Any] | None = None) -> None:
        self.redis_url, self.channel, self.options = redis_url, channel, dict(options or {})
        self._lock = threading.Lock()
        self._copies: OrderedDict[str, tuple[Entry, float]] = OrderedDict()
        self._bytes = 0
        self._epoch = 0  # counts the resets: a token from before one is worthless
        self._pubsub: Any = None
        self._pid = 0
        self._retry_at = 0.0

    def get(self, key: str) -> tuple[Entry | None, int | None]:
        """(the copy of `key` if one may be served, a token for `put`; None when nothing is heard)."""
        with self._lock:
            if not self._listening():
                return None, None
            copy = self._copies.get(key)
            if copy is not None and time.monotonic() - copy[1] > MAX_AGE:
                self._drop(key)
                copy = None
            return (copy[0] if copy is not None else None), self._epoch

    def put(self, key: str, entry: Entry, token: int | None) -> None:
        """Keep a copy of an entry, (generation, answer), read from the shared cache as current after `get`
        gave `token`: unless an announcement came in between (the entry may then be older than it), or the
        answer is too large."""
        with self._lock:
            size = len(entry[1])
            if token is None or not self._listening() or token != self._epoch or size > MAX_BYTES // 16:
                return
            self._drop(key)
            self._copies[key] = (entry, time.monotonic())
            self._bytes += size
            while len(self._copies) > MAX_ENTRIES or self._bytes > MAX_BYTES:
                self._drop(next(iter(self._copies)))

    def forget_copies(self) -> None:
        """Drop every copy now: this process has just published a new generation."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        """Drop every copy: what they were taken under may no longer be current."""
        self._copies.clear()
        self._bytes = 0
        self._epoch += 1

    # -- the feed -------------------------------------------------------------------------------------------

    def _listening(self) -> bool:
        """Whether announcements reach this process; reads the pending ones (dropping the copies) first."""
        if self._pid != os.getpid():  # a forked worker subscribes for itself
            self._pubsub, self._pid = None, os.getpid()
            self._reset()
        if self._pubsub is None and not self._subscribe():
            return False
        try:
            while (message := self._pubsub.get_message(timeout=0)) is not None:
                if message.get("type") == "message":
                    self._reset()
        except (RedisError, OSError) as exc:
            log.warning("near cache: lost the generation feed (%s); serving from Redis", type(exc).__name__)
            self._forget()
            return False
        return True

    def _subscribe(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            client = redis.Redis.from_url(self.redis_url, **self.options)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self.channel)
            # The subscription is confirmed once its reply arrives; announcements before it may be missed.
            deadline = time.monotonic() + 2
            while not pubsub.subscribed and time.monotonic() < deadline:
                pubsub.get_message(timeout=0.1)
            if not pubsub.subscribed:
                raise RedisError("no confirmation of the subscription")
        except (RedisError, OSError) as exc:
            log.warning("near cache: cannot subscribe to the generation feed (%s); serving from Redis",
                        type(exc).__name__)
            self._retry_at = time.monotonic() + RETRY_AFTER
            return False
        self._pubsub = pubsub
        self._reset()
        return True

    def _forget(self) -> None:
        try:
            self._pubsub.close()
        except (RedisError, OSError):
            pass
        self._pubsub = None
        self._reset()
        self._retry_at = time.monotonic() + RETRY_AFTER

    def _drop(self, key: str) -> None:
        copy = self._copies.pop(key, None)
        if copy is not None:
            self._bytes -= len(copy[0][1])
