"""What the workers share through Redis (financial.workers.shared), against the real Redis: pacing, spent
quotas, in-flight claims, and what happens when Redis is not there."""
from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time

import pytest
import redis

from financial.ingest.tasks import NotFetched
from financial.workers.shared import MARGIN, SharedState, connect
from tests.processes import broker_url, forget_queue, require_broker, unique_queue


@pytest.fixture
def states():
    """Two SharedStates on one queue, each with a client of its own (as two worker processes have)."""
    url = require_broker(broker_url())
    queue = unique_queue("shared")
    made = [SharedState(connect(url), queue), SharedState(connect(url), queue)]
    yield made
    for state in made:
        state.client.close()
    forget_queue(url, queue)


def test_calls_through_two_clients_are_spaced_as_one_process_spaces_them(states):
    interval = 0.1
    stamps: list[float] = []
    lock = threading.Lock()

    def call(state: SharedState) -> None:
        limiter = state.limiter("exchange:kraken", interval)
        for _ in range(4):
            limiter.wait()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=call, args=(states[number % 2],)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:])]
    assert len(stamps) == 16
    assert min(gaps) >= interval * (1 + MARGIN) - 0.01, gaps  # Redis's clock in ms, ours in ns
    assert stamps[-1] - stamps[0] < 15 * interval * (1 + MARGIN) + 0.5  # no one waited longer than needed


def test_upstreams_are_paced_apart_and_zero_means_no_pacing(states):
    kraken, binance = states[0].limiter("exchange:kraken", 1.0), states[1].limiter("exchange:binance", 1.0)
    started = time.monotonic()
    assert kraken.wait() == 0 and binance.wait() == 0  # each upstream's first call goes at once
    assert 1.0 <= kraken.wait() <= 1.0 + MARGIN + 0.05
    free = states[0].limiter("alphavantage", 0)
    assert [free.wait() for _ in range(5)] == [0.0] * 5
    assert time.monotonic() - started < 1.3


def test_a_spent_quota_stops_calls_at_once_until_the_next_utc_day(states):
    alphavantage = states[1].limiter("alphavantage", 0.01)
    alphavantage.wait()
    now = dt.datetime.now(dt.timezone.utc)
    states[0].mark_quota_spent("alphavantage", now)
    assert states[1].quota_spent("alphavantage") and not states[1].quota_spent("exchange")
    with pytest.raises(NotFetched, match="^not fetched: the alphavantage daily quota is spent$"):
        alphavantage.wait()
    states[0].limiter("exchange:kraken", 0.01).wait()  # another upstream is not concerned
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    ttl = states[0].client.ttl(f"{states[0].prefix}quota:alphavantage")
    assert abs(ttl - (midnight - now).total_seconds()) <= 2


def test_a_claim_is_held_until_its_own_task_releases_it_or_it_expires(states):
    first, second = states
    assert first.claim("cryptowatch:kraken:btcusd:1min", "task-1", 30)
    assert not second.claim("cryptowatch:kraken:btcusd:1min", "task-2", 30)
    assert second.claim("cryptowatch:kraken:ethusd:1min", "task-3", 0.3)
    assert first.in_flight() == ["cryptowatch:kraken:btcusd:1min", "cryptowatch:kraken:ethusd:1min"]
    second.release("cryptowatch:kraken:btcusd:1min", "task-2")  # a late task never frees another's claim
    assert first.in_flight()[0] == "cryptowatch:kraken:btcusd:1min"
    first.release("cryptowatch:kraken:btcusd:1min", "task-1")
    time.sleep(0.4)
    assert first.in_flight() == []
    assert second.claim("cryptowatch:kraken:btcusd:1min", "task-4", 30)


def test_without_redis_pacing_holds_per_process_and_nothing_is_claimed(caplog):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    state = SharedState(connect(f"redis://127.0.0.1:{port}/0"), "nowhere")
    limiter = state.limiter("alphavantage", 0.2)
    with caplog.at_level(logging.WARNING, logger="financial.workers.shared"):
        started = time.monotonic()
        limiter.wait()
        limiter.wait()
        assert time.monotonic() - started >= 0.2  # the process's own pacing, meanwhile
        assert not state.quota_spent("alphavantage")
    assert "pacing alphavantage within this process only" in caplog.text
    with pytest.raises(redis.RedisError):
        state.claim("x", "task", 10)
    state.release("x", "task")  # logged, not raised: the claim would expire by itself
