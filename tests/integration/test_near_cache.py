"""Each process's copies of the shared cache's entries: served without asking Redis, dropped the moment a
new data generation is announced, and never trusted once the announcements may have been missed.
Two apps on one Redis stand for two processes (each subscribes for itself)."""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace

import pytest
import redis

from financial import create_app, near_cache
from financial.extensions import app_state
from tests.conftest import base_settings, empty_tables
from tests.fakes.series import daily_bars
from tests.seed import store, today_utc


@pytest.fixture
def two_processes(sqlite_url, redis_url):
    settings = base_settings(database_url=sqlite_url, redis_url=redis_url)
    reader, writer = create_app(settings, process="test"), create_app(settings, process="test")
    empty_tables(reader)
    yield reader, writer
    with reader.app_context():
        from financial.extensions import cache
        cache.clear()


def bars(shift: float = 0.0):
    series = daily_bars("IBM", end=today_utc() - dt.timedelta(days=1), count=10, start_price=100)
    return [replace(bar, close=bar.close + shift, high=bar.high + shift) for bar in series]


def url(series) -> str:
    return f"/api/statistics?symbol=IBM&start_date={series[0].date}&end_date={series[-1].date}"


def mean_close(series) -> float:
    return round(sum(bar.close for bar in series) / len(series), 2)


def redis_reads(app, monkeypatch) -> list[str]:
    backend = app_state(app).cache.backend
    reads: list[str] = []
    for name in ("get", "get_many"):
        original = getattr(backend, name)
        monkeypatch.setattr(backend, name, lambda *args, name=name, original=original, **kwargs: (
            reads.append(name), original(*args, **kwargs))[1])
    return reads


def test_a_copy_is_served_without_redis_and_dropped_by_the_next_generation(two_processes, monkeypatch):
    reader, writer = two_processes
    first = bars()
    store(writer, first, "IBM")
    client = reader.test_client()
    reads = redis_reads(reader, monkeypatch)
    assert client.get(url(first)).get_json()["data"]["average_daily_close_price"] == mean_close(first)  # computed
    client.get(url(first))  # read from Redis, and a copy taken
    before = len(reads)
    for _ in range(5):
        assert client.get(url(first)).get_json()["data"]["average_daily_close_price"] == mean_close(first)
    assert len(reads) == before  # five answers, no Redis read
    # Another process stores new figures: its publish announces the generation; the copy goes at once.
    changed = bars(shift=10.0)
    store(writer, changed, "IBM")
    assert client.get(url(first)).get_json()["data"]["average_daily_close_price"] == mean_close(changed)


def test_the_publishing_process_drops_its_copies_before_its_announcement_arrives(two_processes, monkeypatch):
    # Redis may answer the publisher before it writes the announcement to the subscribers' sockets: the
    # process that published must not serve its old copy in that moment (an ETag's 304 hid a new bar so).
    reader, _ = two_processes
    first = bars()
    store(reader, first, "IBM")
    client = reader.test_client()
    client.get(url(first))
    client.get(url(first))  # a copy now stands
    feed = app_state(reader).cache.near
    monkeypatch.setattr(feed._pubsub, "get_message", lambda **kwargs: None)  # the announcement is late
    changed = bars(shift=10.0)
    store(reader, changed, "IBM")
    assert client.get(url(first)).get_json()["data"]["average_daily_close_price"] == mean_close(changed)


def test_copies_are_not_trusted_once_the_feed_is_lost(two_processes, redis_url, monkeypatch):
    reader, writer = two_processes
    monkeypatch.setattr(near_cache, "RETRY_AFTER", 60.0)  # stay unsubscribed for the rest of the test
    first = bars()
    store(writer, first, "IBM")
    client = reader.test_client()
    client.get(url(first))
    client.get(url(first))  # a copy now stands
    # The feed's connection is cut (a Redis restart, a proxy): announcements may be missed from now on.
    admin = redis.Redis.from_url(redis_url)
    assert admin.client_kill_filter(_type="pubsub") >= 1
    reads = redis_reads(reader, monkeypatch)
    assert client.get(url(first)).status_code == 200
    assert reads, "a copy was served after the feed was lost"
    changed = bars(shift=5.0)
    store(writer, changed, "IBM")  # its announcement cannot reach the reader: Redis itself tells
    assert client.get(url(first)).get_json()["data"]["average_daily_close_price"] == mean_close(changed)


def test_a_copy_lives_at_most_max_age(two_processes, monkeypatch):
    reader, writer = two_processes
    monkeypatch.setattr(near_cache, "MAX_AGE", 0.2)
    first = bars()
    store(writer, first, "IBM")
    client = reader.test_client()
    client.get(url(first))
    client.get(url(first))
    reads = redis_reads(reader, monkeypatch)
    client.get(url(first))
    assert reads == []
    time.sleep(0.3)
    client.get(url(first))
    assert reads == ["get_many"]  # too old: asked Redis again (and took a fresh copy)
