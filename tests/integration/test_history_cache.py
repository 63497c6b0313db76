"""The on-disk response cache of lib.history, against the fake AlphaVantage and Binance over real HTTP.

What must hold: a repeated call is answered from disk (the fake sees no second request); the API key is in
no cache key and in no byte of the cache files; error answers, which AlphaVantage sends with HTTP 200, are
never kept, so a rate-limit notice is not replayed once the upstream answers again.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import lib
from lib import errors
from lib.http import RetryPolicy
from tests.fakes.alphavantage import FakeAlphaVantage
from tests.fakes.exchanges import FakeBinance
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.fakes.server import FakeServer

KEY = "CACHE+KEY/0123456789"  # with characters that URL-encoding changes
TODAY = dt.datetime.now(dt.timezone.utc).date()
START = TODAY - dt.timedelta(days=30)


@pytest.fixture
def av():
    fake = FakeAlphaVantage(api_key=KEY)
    fake.add_daily("IBM", daily_bars("IBM", end=TODAY, count=120, start_price=180.0))
    with FakeServer(fake) as server:
        server.fake = fake
        yield server


@pytest.fixture
def settings(av, tmp_path) -> lib.Settings:
    return lib.Settings(alphavantage_api_key=KEY, alphavantage_base_url=av.url, alphavantage_min_interval=0,
                        cache_dir=tmp_path / "cache", retry=RetryPolicy(attempts=1))


def cache_bytes(folder: Path) -> bytes:
    """Every byte under the cache folder (the SQLite file and any journal beside it)."""
    return b"".join(path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file())


def assert_no_key(folder: Path) -> None:
    data = cache_bytes(folder)
    for spelling in {KEY, quote(KEY, safe=""), KEY.replace("+", " ")}:
        assert spelling.encode() not in data, spelling


def test_a_repeated_call_is_answered_from_disk_without_the_key(av, settings):
    first = lib.history("IBM", start=START, settings=settings)
    assert len(av.fake.calls("IBM")) == 1
    again = lib.history("IBM", start=START, settings=settings)
    assert len(av.fake.calls("IBM")) == 1  # from the cache
    assert again.equals(first) and len(first) >= 20
    data = cache_bytes(settings.cache_dir)
    assert (settings.cache_dir / "responses.sqlite").is_file() and b"TIME_SERIES_DAILY" in data
    assert_no_key(settings.cache_dir)
    # The key is not part of the cache key either: another key finds the same answer.
    other = lib.history("IBM", start=START, settings=settings, api_key="ANOTHER-KEY")
    assert other.equals(first) and len(av.fake.calls("IBM")) == 1


@pytest.mark.parametrize("scenario, error", [
    ("note", errors.RateLimitedError),       # {"Note": "... 5 calls per minute ..."}
    ("empty", errors.NotFoundError),         # {}
    ("unknown", errors.NotFoundError),       # {"Error Message": "Invalid API call ..."}
    ("premium", errors.PremiumRequiredError),  # {"Information": "... premium endpoint ..."}
    ("html200", errors.ServerError),         # an HTML page with HTTP 200
])
def test_error_answers_sent_with_http_200_are_never_replayed(av, settings, scenario, error):
    av.fake.scenarios["IBM"] = scenario
    with pytest.raises(error):
        lib.history("IBM", start=START, settings=settings)
    del av.fake.scenarios["IBM"]  # the upstream answers again
    frame = lib.history("IBM", start=START, settings=settings)
    assert len(frame) >= 20 and len(av.fake.calls("IBM")) == 2  # asked again, not served the error
    lib.history("IBM", start=START, settings=settings)
    assert len(av.fake.calls("IBM")) == 2  # the answer with data is kept


def test_the_daily_limit_notice_quoting_the_key_is_not_kept(av, settings):
    av.fake.quota = 0
    with pytest.raises(errors.QuotaExhaustedError) as raised:
        lib.history("IBM", settings=settings)
    assert KEY not in str(raised.value)
    assert_no_key(settings.cache_dir)
    av.fake.quota = None
    assert len(lib.history("IBM", settings=settings)) == 100
    assert len(av.fake.calls("IBM")) == 2


def test_the_cache_folder_from_the_environment_and_cache_false(av, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", KEY)
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", av.url)
    monkeypatch.setenv("ALPHAVANTAGE_MIN_INTERVAL", "0")
    monkeypatch.setenv("LIB_CACHE_DIR", str(tmp_path / "env-cache"))
    lib.history("IBM")
    lib.history("IBM")
    assert len(av.fake.calls("IBM")) == 1 and (tmp_path / "env-cache" / "responses.sqlite").is_file()
    lib.history("IBM", cache=False)
    assert len(av.fake.calls("IBM")) == 2
    lib.history("IBM", cache=tmp_path / "other")
    assert len(av.fake.calls("IBM")) == 3


def test_answers_expire(av, settings):
    short = lib.Settings(**{**settings.__dict__, "cache_expire": 0.5})
    lib.history("IBM", settings=short)
    lib.history("IBM", settings=short)
    assert len(av.fake.calls("IBM")) == 1
    time.sleep(0.6)
    lib.history("IBM", settings=short)
    assert len(av.fake.calls("IBM")) == 2


def test_exchange_answers_are_cached_through_ccxt(tmp_path, monkeypatch):
    now = floor_time(dt.datetime.now(dt.timezone.utc), 60) + dt.timedelta(seconds=30)
    monkeypatch.setattr(lib.series, "utc_now", lambda: now)  # the moment the data was made for
    bars = minute_bars("cache-eth", end=now, count=120, start_price=3000, price_decimals=2)
    fake = FakeBinance()
    fake.add_klines("ETHUSDT", bars)
    with FakeServer(fake) as server:
        settings = lib.Settings(exchange_base_urls={"binance": server.url}, exchange_min_interval=0,
                                cache_dir=tmp_path / "cache")
        first = lib.history("binance:ethusdt", start=bars[10].timestamp, interval="1min", settings=settings)
        again = lib.history("binance:ethusdt", start=bars[10].timestamp, interval="1min", settings=settings)
    assert lib.from_frame(first) == bars[10:-1] and again.equals(first)
    assert [path for path, _ in fake.requests] == ["/api/v3/exchangeInfo", "/api/v3/klines"]  # once each
