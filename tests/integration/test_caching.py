"""Cached answers are served until the data changes, and never after; outages degrade, never break."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from financial import create_app
from financial.extensions import db
from tests.conftest import base_settings, empty_tables
from tests.fakes.series import daily_bars
from tests.seed import store, today_utc


@pytest.fixture
def ibm(app):
    bars = daily_bars("IBM", end=today_utc() - dt.timedelta(days=1), count=10, start_price=100)
    store(app, bars, "IBM")
    return bars


def statistics_url(bars) -> str:
    return f"/api/statistics?symbol=IBM&start_date={bars[0].date}&end_date={bars[-1].date}"


def mean_close(bars) -> float:
    return round(sum(bar.close for bar in bars) / len(bars), 2)


def test_a_repeated_request_is_served_from_the_cache(app, client, ibm):
    url = statistics_url(ibm)
    first = client.get(url).get_json()["data"]
    assert first["average_daily_close_price"] == mean_close(ibm)
    # Change the data behind the service's back (no new generation): the cached answer stays.
    with app.app_context():
        db.session.execute(sa.text("UPDATE bars SET close = close + 100"))
        db.session.commit()
    assert client.get(url).get_json()["data"] == first


def test_an_ingest_makes_the_next_request_see_the_new_figures(app, client, ibm):
    url = statistics_url(ibm)
    assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(ibm)
    changed = [bar.__class__(**{**{f: getattr(bar, f) for f in bar.__slots__}, "close": bar.close + 10,
                                "high": bar.high + 10}) for bar in ibm]
    store(app, changed, "IBM")
    assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(changed)
    records = client.get(f"/api/financial_data?symbol=IBM&start_date={ibm[-1].date}").get_json()["data"]
    assert records[0]["close_price"] == f"{changed[-1].close:.2f}"


def test_another_process_sees_the_ingest_too(app, stack_settings, ibm):
    """Two apps stand for two processes: with Redis they share the cache, without it only the database."""
    reader, writer = app, create_app(stack_settings, process="test")
    url = statistics_url(ibm)
    assert reader.test_client().get(url).get_json()["data"]["average_daily_close_price"] == mean_close(ibm)
    lower = [bar.__class__(**{**{f: getattr(bar, f) for f in bar.__slots__}, "close": bar.low, "open": bar.low})
             for bar in ibm]
    store(writer, lower, "IBM")
    assert reader.test_client().get(url).get_json()["data"]["average_daily_close_price"] == mean_close(lower)


def test_redis_holds_the_entries_and_the_generation(sqlite_url, redis_url):
    import redis
    app = create_app(base_settings(database_url=sqlite_url, redis_url=redis_url), process="test")
    empty_tables(app)
    bars = daily_bars("IBM", end=today_utc() - dt.timedelta(days=1), count=5, start_price=100)
    store(app, bars, "IBM")
    app.test_client().get(statistics_url(bars))
    connection = redis.Redis.from_url(app.config["CACHE_REDIS_URL"])
    prefix = app.config["CACHE_KEY_PREFIX"]
    keys = {key.decode() for key in connection.keys(f"{prefix}*")}
    assert f"{prefix}generation" in keys
    assert any(key.startswith(f"{prefix}/api/statistics?") and "symbol=IBM" in key for key in keys)


def test_without_redis_the_service_answers_from_the_database(sqlite_url, ibm, app):
    """Redis unreachable: every answer is still right (computed per request), and /readyz says so."""
    settings = base_settings(database_url=sqlite_url, redis_url="redis://127.0.0.1:1/0")
    degraded = create_app(settings, process="test").test_client()
    response = degraded.get(statistics_url(ibm))
    assert response.status_code == 200
    assert response.get_json()["data"]["average_daily_close_price"] == mean_close(ibm)
    ready = degraded.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json() == {"data": None, "info": {"error": "cache unavailable"}}
    assert degraded.get("/healthz").status_code == 200


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-dir/market.db", "mysql+pymysql://root@127.0.0.1:1/test"])
def test_without_a_database_requests_get_503_in_the_envelope(url):
    app = create_app(base_settings(database_url=url, auto_migrate=False), process="test")
    client = app.test_client()
    for path in ("/api/statistics?symbol=IBM&start_date=2024-01-01&end_date=2024-01-31",
                 "/api/financial_data"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.get_json() == {"data": None, "info": {"error": "database unavailable; try again shortly"}}
        assert response.headers["Retry-After"] == "5"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "database unavailable" in ready.get_json()["info"]["error"]
    assert client.get("/healthz").status_code == 200


def test_a_forked_worker_opens_its_own_redis_connection(sqlite_url, redis_url):
    """gunicorn --preload forks workers from a master that has used the cache: parent and child must
    not share one socket (their replies would interleave)."""
    import os
    app = create_app(base_settings(database_url=sqlite_url, redis_url=redis_url), process="test")
    empty_tables(app)
    bars = daily_bars("IBM", end=today_utc() - dt.timedelta(days=1), count=5, start_price=100)
    store(app, bars, "IBM")
    url = statistics_url(bars)
    expected = app.test_client().get(url).get_json()  # the parent's connection is open now
    child = os.fork()
    if child == 0:  # the worker: many requests, each must get its own answer
        ok = all(app.test_client().get(url).get_json() == expected for _ in range(200))
        os._exit(0 if ok else 1)
    parent_ok = all(app.test_client().get(url).get_json() == expected for _ in range(200))
    _, status = os.waitpid(child, 0)
    assert parent_ok and os.waitstatus_to_exitcode(status) == 0
