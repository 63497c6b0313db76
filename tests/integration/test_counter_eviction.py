"""The failed-login counters survive cache pressure: production's cache Redis evicts keys when full, so a
flood of distinct cacheable URLs pushes old keys out; the counters live in a Redis of their own that never
evicts (RATE_LIMIT_REDIS_URL). Both Redis servers are real ones started here: a 2 MB cache with the LRU
policy, and a counters' Redis with `noeviction`."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time

import pytest
import redis

from financial import create_app
from financial.edge import response_cache
from tests.conftest import base_settings, empty_tables, missing_server
from tests.fakes.smtp import free_port
from financial.models import AssetClass
from tests.fakes.coin_csv import coin_bars
from tests.seed import PASSWORD, store, today_utc

pytestmark = pytest.mark.usefixtures("fast_hashing")


class RedisServer:
    """`redis-server` on a free port of 127.0.0.1, without persistence, under a memory policy."""

    def __init__(self, *args: str) -> None:
        if not shutil.which("redis-server"):
            missing_server("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no", *args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def evicted(self) -> int:
        return int(self.client.info("stats")["evicted_keys"])

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def cache_redis():
    server = RedisServer("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    yield server
    server.stop()


@pytest.fixture
def limits_redis():
    server = RedisServer("--maxmemory-policy", "noeviction")
    yield server
    server.stop()


def login(client, password="wrong password"):
    return client.post("/api/auth/login", json={"email": "ann@example.com", "password": password},
                       environ_base={"REMOTE_ADDR": "203.0.113.9"})


def flood_url(number: int) -> str:
    """A distinct cacheable URL whose cache key is about 4 KB: the dashboard of one coin, named 900 times,
    each spelling of the list one bit of `number` (btc or BTC)."""
    spellings = ["BTC" if number >> bit & 1 else "btc" for bit in range(16)] + ["btc"] * 884
    return f"/api/dashboard?id={','.join(spellings)}"


def test_a_flood_of_distinct_urls_does_not_evict_the_login_counters(mysql_url, cache_redis, limits_redis):
    settings = base_settings(database_url=mysql_url, redis_url=cache_redis.url, rate_limit_redis_url=limits_redis.url)
    app = create_app(settings, process="test")
    empty_tables(app)
    store(app, coin_bars("BTC", end=today_utc() - dt.timedelta(days=1), days=3, start_price=60000.0, supply=19.6e6),
          "BTC", asset_class=AssetClass.CRYPTO, name="Bitcoin")
    client = app.test_client()
    assert client.post("/api/auth/signup", json={"email": "ann@example.com", "password": PASSWORD}).status_code == 201
    assert [login(client).status_code for _ in range(10)] == [401] * 10
    assert login(client, PASSWORD).status_code == 429

    # Flood until the cache has evicted as many entries again as it held when it first had to evict.
    first_url = flood_url(0)
    sent, evicting_from = 0, None
    while evicting_from is None or sent < 2 * evicting_from:
        assert client.get(flood_url(sent)).status_code == 200
        sent += 1
        if evicting_from is None and sent % 20 == 0 and cache_redis.evicted():
            evicting_from = sent
        assert sent < 5000, "the 2 MB cache never evicted"
    path, _, query = first_url.partition("?")
    assert not cache_redis.client.exists(settings.cache_key_prefix + response_cache.key(path, query))
    assert cache_redis.evicted() > evicting_from // 2

    # The counters were in the other Redis, untouched: the account is still held.
    response = login(client, PASSWORD)
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert response.get_json()["info"]["error"].startswith("too many failed logins")
    assert list(limits_redis.client.scan_iter(f"{settings.cache_key_prefix}login-failures*"))
    assert not list(cache_redis.client.scan_iter(f"{settings.cache_key_prefix}login-failures*"))
    with app.app_context():
        from financial.extensions import db
        db.session.remove()
        db.engine.dispose()
