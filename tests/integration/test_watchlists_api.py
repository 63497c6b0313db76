"""Watchlists over HTTP on both stacks: markets checked against the fake exchanges through the real ccxt (and
against the fake Cryptowatch), tracking by the next minute ingest, the day view, the user's ranking, and
one user never reaching another's list."""
from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

import get_raw_data
import lib
from financial import ingest, storage
from financial.extensions import db
from financial.models import Instrument, WatchlistEntry
from financial.services import metrics, watchlists
from tests import expected
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.exchanges import FakeBinance, FakeKraken
from tests.fakes.series import floor_time, minute_bars
from tests.fakes.server import FakeServer
from tests.fakes.smtp import free_port
from tests.seed import sign_in, store_crypto

pytestmark = pytest.mark.usefixtures("fast_hashing")
UTC = dt.timezone.utc
BTC = {"exchange": "kraken", "ticker": "btcusd", "base": "BTC", "quote": "USD", "name": "BTC/USD on Kraken"}
ETH = {"exchange": "binance", "ticker": "ethusdt", "base": "ETH", "quote": "USDT", "name": "ETH/USDT on Binance"}


@pytest.fixture
def exchanges():
    fakes = {"kraken": FakeKraken(), "binance": FakeBinance()}
    servers = {name: FakeServer(fake).start() for name, fake in fakes.items()}
    yield {name: (fakes[name], servers[name]) for name in fakes}
    for server in servers.values():
        server.stop()


def base_urls(exchanges, **override) -> str:
    urls = {name: server.url for name, (_, server) in exchanges.items()} | override
    return ",".join(f"{name}={url}" for name, url in urls.items())


@pytest.fixture
def app(app_factory, exchanges):
    return app_factory(crypto_source="exchange", exchange_base_urls=base_urls(exchanges), exchange_min_interval=0)


@pytest.fixture
def ann(client):
    return sign_in(client, "ann@example.com")


@pytest.fixture
def bob(client):
    return sign_in(client, "bob@example.com")


def watch(client, headers, exchange, ticker):
    return client.post("/api/me/markets", json={"exchange": exchange, "ticker": ticker}, headers=headers)


def listed(client, headers, **query):
    response = client.get("/api/me/markets", headers=headers, query_string=query)
    assert response.status_code == 200
    return response.get_json()


def without_ids(entry):
    assert isinstance(entry["instrument_id"], int) and entry["added_at"].endswith("Z")
    return {key: value for key, value in entry.items() if key not in ("instrument_id", "added_at")}


def error_of(response) -> str:
    body = response.get_json()
    assert body["data"] is None and set(body) == {"data", "info"}, body
    return body["info"]["error"]


# -- adding, listing, removing ----------------------------------------------------------------------------

def test_add_list_and_add_again(client, ann):
    first = watch(client, ann, "kraken", "btcusd")
    assert first.status_code == 201
    assert without_ids(first.get_json()["data"]) == BTC
    again = watch(client, ann, "kraken", "btcusd")
    assert again.status_code == 200 and again.get_json()["data"] == first.get_json()["data"]
    # Kraken's own spelling and a slashed one are the same market, listed under its canonical pair.
    for exchange, ticker in (("Kraken", "XBT/USD"), ("kraken", "xbtusd"), ("KRAKEN", "btc-usd")):
        response = watch(client, ann, exchange, ticker)
        assert response.status_code == 200 and response.get_json()["data"] == first.get_json()["data"]
    assert watch(client, ann, "binance", "ETHUSDT").status_code == 201
    body = listed(client, ann)
    assert [without_ids(entry) for entry in body["data"]] == [ETH, BTC]
    assert body["pagination"] == {"count": 2, "page": 1, "limit": 100, "pages": 1}
    page = listed(client, ann, limit=1, page=2)
    assert [entry["ticker"] for entry in page["data"]] == ["btcusd"]
    assert page["pagination"] == {"count": 2, "page": 2, "limit": 1, "pages": 2}


def test_adding_stores_the_market_as_a_crypto_instrument(app, client, ann):
    watch(client, ann, "kraken", "xbtusd")
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(sa.select(Instrument.asset_class, Instrument.exchange, Instrument.symbol,
                                            Instrument.base, Instrument.quote, Instrument.name)).all() == [
            ("crypto", "kraken", "btcusd", "BTC", "USD", "BTC/USD on Kraken")]


def test_adding_starts_tracking_it_in_the_next_minute_ingest(app, client, ann, bob):
    assert ingest_labels(app) == []
    watch(client, ann, "kraken", "btcusd")
    watch(client, ann, "binance", "ethusdt")
    watch(client, bob, "kraken", "XBTUSD")
    with app.app_context():
        assert [market.label for market in storage.watchlists.watched_markets(db.session)] == [
            "binance:ethusdt", "kraken:btcusd"]
    assert ingest_labels(app) == ["binance:ethusdt", "kraken:btcusd"]
    assert client.delete("/api/me/markets/binance/ethusdt", headers=ann).status_code == 204
    assert ingest_labels(app) == ["kraken:btcusd"]
    assert client.delete("/api/me/markets/kraken/btcusd", headers=ann).status_code == 204
    assert ingest_labels(app) == ["kraken:btcusd"]  # Bob still watches it
    assert client.delete("/api/me/markets/kraken/btcusd", headers=bob).status_code == 204
    assert ingest_labels(app) == []


def ingest_labels(app) -> list[str]:
    """The markets `python get_raw_data.py --source exchange` (no --markets) would fetch."""
    with app.app_context():
        tasks = ingest.plan_run(get_raw_data.parse_args(["--source", "exchange"]).request, app.config["SETTINGS"]).tasks
    return [task.label for task in tasks]


def test_a_new_market_is_listed_by_the_metrics_at_once(client, ann):
    assert client.get("/api/metrics").get_json()["data"] == []  # now cached
    watch(client, ann, "kraken", "btcusd")
    data = client.get("/api/metrics").get_json()["data"]
    assert [(entry["exchange"], entry["symbol"], entry["points"]) for entry in data] == [("kraken", "btcusd", 0)]


@pytest.mark.parametrize("exchange, ticker, message", [
    ("kraken", "nopeusd", "unknown market kraken:nopeusd: kraken: no spot market 'nopeusd' (the exchange does not "
                          "list it)"),
    ("binance", "btcusd", "unknown market binance:btcusd: binance: no spot market 'btcusd'"),
    ("nowhere", "btcusd", "unknown market nowhere:btcusd: unknown exchange 'nowhere'"),
])
def test_an_unknown_market_is_404_naming_it(app, client, ann, exchange, ticker, message):
    response = watch(client, ann, exchange, ticker)
    assert response.status_code == 404
    assert error_of(response).startswith(message)
    with app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Instrument)) == 0


def test_an_exchange_that_is_down_is_503(client, ann, exchanges):
    exchanges["kraken"][0].outage = True
    started = time.monotonic()
    response = watch(client, ann, "kraken", "btcusd")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert error_of(response) == ("cannot check market kraken:btcusd with the exchange source right now "
                                  "(ServerError); try again shortly")
    assert time.monotonic() - started < 10
    assert listed(client, ann)["data"] == []
    exchanges["kraken"][0].outage = False
    assert watch(client, ann, "kraken", "btcusd").status_code == 201


def test_an_exchange_that_cannot_be_reached_is_503(app_factory, exchanges):
    closed = f"http://127.0.0.1:{free_port()}"
    client = app_factory(crypto_source="exchange", exchange_min_interval=0,
                         exchange_base_urls=base_urls(exchanges, kraken=closed)).test_client()
    headers = sign_in(client, "ann@example.com")
    response = watch(client, headers, "kraken", "btcusd")
    assert response.status_code == 503
    assert error_of(response) == ("cannot check market kraken:btcusd with the exchange source right now "
                                  "(NetworkError); try again shortly")
    assert watch(client, headers, "binance", "ethusdt").status_code == 201  # the other exchange is fine


def test_markets_are_checked_with_cryptowatch_when_it_is_the_source(app_factory):
    fake = FakeCryptowatch()
    fake.add_ohlc("kraken", "btcusd", minute_bars("btc", end=dt.datetime.now(UTC), count=5, start_price=60000))
    with FakeServer(fake) as server:
        client = app_factory(crypto_source="cryptowatch", cryptowatch_base_url=server.url).test_client()
        headers = sign_in(client, "ann@example.com")
        response = watch(client, headers, "kraken", "btcusd")
        assert response.status_code == 201
        assert without_ids(response.get_json()["data"]) == BTC | {"name": "BTC/USD on Kraken"}
        unknown = watch(client, headers, "kraken", "nopeusd")
        assert unknown.status_code == 404
        assert error_of(unknown) == "unknown market kraken:nopeusd: cryptowatch: kraken:nopeusd: Instrument not found"
        fake.scenarios["kraken:ethusd"] = "down"
        down = watch(client, headers, "kraken", "ethusd")
        assert down.status_code == 503 and "cryptowatch source right now (ServerError)" in error_of(down)
        assert any(path == "/markets/kraken/btcusd" for path, _, _ in fake.requests)


@pytest.mark.parametrize("body, message", [
    ({"exchange": "kr aken", "ticker": "btcusd"}, "exchange: 'kr aken' is not an exchange id"),
    ({"exchange": "", "ticker": "btcusd"}, "exchange: '' is not an exchange id"),
    ({"exchange": "kraken", "ticker": "b"}, "ticker: 'b' is not a pair"),
    ({"exchange": "kraken", "ticker": "btc$usd"}, "ticker: 'btc$usd' is not a pair"),
    ({"exchange": "kraken", "ticker": "btc:usd"}, "ticker: 'btc:usd' is not a pair"),
    ({"exchange": "kraken", "ticker": "x" * 65}, "ticker: must be at most 64 characters"),
    ({"exchange": "kraken", "ticker": "x" * 33}, "ticker: '" + "x" * 33 + "' is not a pair"),
    ({"exchange": "kraken"}, "ticker: is required"),
    ({"ticker": "btcusd"}, "exchange: is required"),
    ({"exchange": "kraken", "ticker": 5}, "ticker: must be a string"),
    ({"exchange": ["kraken"], "ticker": "btcusd"}, "exchange: must be a string"),
    ({"exchange": "kraken", "ticker": "btcusd", "notify": True}, "unknown field 'notify'"),
])
def test_bad_markets_are_400_naming_the_field_and_never_reach_the_exchange(client, ann, exchanges, body, message):
    response = client.post("/api/me/markets", json=body, headers=ann)
    assert response.status_code == 400
    assert error_of(response).startswith(message)
    assert exchanges["kraken"][0].requests == []


@pytest.mark.parametrize("data, message", [
    ("{", "the body is not valid JSON"),
    ("[]", "the body must be a JSON object, not an array"),
    ('{"exchange": "kraken", "ticker": "' + "x" * 70_000 + '"}', "the request body is too large; at most 65536 bytes"),
])
def test_bad_bodies(client, ann, data, message):
    response = client.post("/api/me/markets", data=data, content_type="application/json", headers=ann)
    assert response.status_code == (413 if "large" in message else 400)
    assert error_of(response) == message


def test_a_watchlist_has_a_size_limit(client, ann, monkeypatch):
    monkeypatch.setattr(watchlists, "MAX_MARKETS", 1)
    assert watch(client, ann, "kraken", "btcusd").status_code == 201
    response = watch(client, ann, "binance", "ethusdt")
    assert response.status_code == 409
    assert error_of(response) == "your watchlist is full (1 markets); remove one first"
    assert watch(client, ann, "kraken", "btcusd").status_code == 200  # re-adding is still fine


def test_remove(client, ann):
    watch(client, ann, "kraken", "btcusd")
    watch(client, ann, "binance", "ethusdt")
    response = client.delete("/api/me/markets/Kraken/BTCUSD", headers=ann)
    assert response.status_code == 204 and response.data == b""
    assert [entry["ticker"] for entry in listed(client, ann)["data"]] == ["ethusdt"]
    again = client.delete("/api/me/markets/kraken/btcusd", headers=ann)
    assert again.status_code == 404 and error_of(again) == "kraken:btcusd is not on your watchlist"
    never = client.delete("/api/me/markets/kraken/dogeusd", headers=ann)
    assert never.status_code == 404 and error_of(never) == "kraken:dogeusd is not on your watchlist"
    bad = client.delete("/api/me/markets/kr%20aken/btcusd", headers=ann)
    assert bad.status_code == 400 and error_of(bad).startswith("exchange: 'kr aken' is not an exchange id")


def test_one_user_never_sees_or_changes_another_users_watchlist(app, client, ann, bob):
    watch(client, ann, "kraken", "btcusd")
    assert listed(client, bob)["data"] == []
    response = client.delete("/api/me/markets/kraken/btcusd", headers=bob)
    assert response.status_code == 404
    assert client.get("/api/me/markets/kraken/btcusd/day", headers=bob).status_code == 403
    assert client.get("/api/me/rankings", headers=bob).get_json()["data"] == []
    assert [entry["ticker"] for entry in listed(client, ann)["data"]] == ["btcusd"]
    watch(client, bob, "binance", "ethusdt")
    assert [entry["ticker"] for entry in listed(client, ann)["data"]] == ["btcusd"]
    assert [entry["ticker"] for entry in listed(client, bob)["data"]] == ["ethusdt"]
    with app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(WatchlistEntry)) == 2


@pytest.mark.parametrize("method, path", [
    ("get", "/api/me/markets"), ("post", "/api/me/markets"), ("delete", "/api/me/markets/kraken/btcusd"),
    ("get", "/api/me/markets/kraken/btcusd/day"), ("get", "/api/me/rankings"), ("get", "/api/me/alerts"),
])
def test_every_operation_needs_a_token(client, exchanges, method, path):
    response = getattr(client, method)(path, json={"exchange": "kraken", "ticker": "btcusd"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response).startswith("sign in first")
    assert exchanges["kraken"][0].requests == []


@pytest.mark.parametrize("query, message", [
    ({"limit": 0}, "limit: must be between 1 and 1000 (got '0')"),
    ({"page": "two"}, "page: must be a whole number (got 'two')"),
    ({"sort": "name"}, "unknown parameter 'sort'"),
])
def test_bad_query_parameters(client, ann, query, message):
    response = client.get("/api/me/markets", headers=ann, query_string=query)
    assert response.status_code == 400 and error_of(response) == message


# -- the day view -------------------------------------------------------------------------------------------

@pytest.fixture
def now():
    return floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=20)


def test_the_day_view_is_the_last_24_hours_of_minute_bars(app, client, ann, now, monkeypatch):
    minutes = minute_bars("btc-day", end=now, count=1600, start_price=60000, price_decimals=1)
    store_crypto(app, minutes, "kraken", "btcusd", interval=lib.Interval.MIN1, base="BTC", quote="USD")
    five = minute_bars("btc-5", end=now, count=400, start_price=60000, interval_seconds=300)
    store_crypto(app, five, "kraken", "btcusd", interval=lib.Interval.MIN5)
    store_crypto(app, minute_bars("eth-day", end=now, count=50, start_price=3000), "kraken", "ethusd",
                 interval=lib.Interval.MIN1)
    watch(client, ann, "kraken", "btcusd")
    monkeypatch.setattr(watchlists, "utcnow", lambda: now.replace(tzinfo=None))
    response = client.get("/api/me/markets/kraken/btcusd/day", headers=ann)
    assert response.status_code == 200
    body = response.get_json()
    want = [bar for bar in minutes if now - dt.timedelta(hours=24) < bar.timestamp <= now]
    assert len(want) == 1440
    assert body["data"] == [{"time": bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": bar.open,
                             "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume}
                            for bar in want]
    assert body["pagination"] == {"count": 1440, "page": 1, "limit": 1440, "pages": 1}
    page = client.get("/api/me/markets/kraken/btcusd/day?limit=100&page=15", headers=ann).get_json()
    assert [bar["time"] for bar in page["data"]] == [entry["time"] for entry in body["data"][1400:]]
    assert page["pagination"] == {"count": 1440, "page": 15, "limit": 100, "pages": 15}


def test_the_day_view_is_only_for_watched_markets(app, client, ann, now):
    store_crypto(app, minute_bars("eth-day", end=now, count=50, start_price=3000), "kraken", "ethusd",
                 interval=lib.Interval.MIN1)
    for path in ("/api/me/markets/kraken/ethusd/day", "/api/me/markets/kraken/nopeusd/day"):
        response = client.get(path, headers=ann)
        assert response.status_code == 403
        assert error_of(response).endswith("is not on your watchlist; add it with POST /api/me/markets first")
    bad = client.get("/api/me/markets/kraken/x/day", headers=ann)
    assert bad.status_code == 400 and error_of(bad).startswith("ticker: 'x' is not a pair")


@pytest.mark.parametrize("added", ["XBT/USD", "btcusd", "xbt-usd"])
def test_every_spelling_of_a_watched_market_finds_it(app, client, ann, bob, now, monkeypatch, added):
    """Added under one spelling, a market answers its day view and its removal under any other that the
    exchange reads as the same market (Kraken's XBT for BTC, its own XXBTZUSD, separators, case)."""
    minutes = minute_bars("btc-alias", end=now, count=30, start_price=60000, price_decimals=1)
    store_crypto(app, minutes, "kraken", "btcusd", interval=lib.Interval.MIN1, base="BTC", quote="USD")
    monkeypatch.setattr(watchlists, "utcnow", lambda: now.replace(tzinfo=None))
    assert watch(client, ann, "kraken", added).status_code == 201
    want = [bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ") for bar in minutes if bar.timestamp <= now]
    for ticker in ("xbt-usd", "XBTUSD", "xbt_usd", "XXBTZUSD", "btc-usd", "BTCUSD", "btcusd"):
        response = client.get(f"/api/me/markets/KRAKEN/{ticker}/day", headers=ann)
        assert response.status_code == 200, (ticker, response.get_json())
        assert [bar["time"] for bar in response.get_json()["data"]] == want
    # Bob watches nothing on Kraken: no spelling of it is his.
    assert watch(client, bob, "binance", "ethusdt").status_code == 201
    assert client.get("/api/me/markets/kraken/xbt-usd/day", headers=bob).status_code == 403
    assert client.get("/api/me/markets/kraken/xbteur/day", headers=ann).status_code == 403
    assert client.delete("/api/me/markets/kraken/XBT-USD", headers=ann).status_code == 204
    assert listed(client, ann)["data"] == []


def test_a_new_market_has_an_empty_day(client, ann):
    watch(client, ann, "kraken", "btcusd")
    body = client.get("/api/me/markets/kraken/btcusd/day", headers=ann).get_json()
    assert body["data"] == [] and body["pagination"]["count"] == 0


# -- the user's ranking ---------------------------------------------------------------------------------------

def test_the_users_markets_ranked_by_24h_standard_deviation(app, client, ann, bob, now):
    last = floor_time(now, 60) - dt.timedelta(minutes=1)
    series = {
        ("kraken", "btcusd"): minute_bars("r-btc", end=last, count=1500, start_price=60000, price_decimals=1),
        ("binance", "ethusdt"): minute_bars("r-eth", end=last, count=900, start_price=3000),
        ("kraken", "ethusd"): minute_bars("r-old", end=last - dt.timedelta(days=2), count=300, start_price=3000),
        ("binance", "btcusdt"): minute_bars("r-bb", end=last, count=1500, start_price=60000),  # not watched
    }
    for (exchange, pair), bars in series.items():
        store_crypto(app, bars, exchange, pair, interval=lib.Interval.MIN1)
    for exchange, ticker in (("kraken", "btcusd"), ("binance", "ethusdt"), ("kraken", "ethusd"), ("kraken", "solusd")):
        assert watch(client, ann, exchange, ticker).status_code in (200, 201)
    watch(client, bob, "binance", "btcusdt")
    with app.app_context():
        metrics.refresh_rankings(now=now)
    response = client.get("/api/me/rankings", headers=ann)
    assert response.status_code == 200
    data = response.get_json()["data"]
    watched = {key: bars for key, bars in series.items() if key != ("binance", "btcusdt")}
    want = expected.ranking(watched | {("kraken", "solusd"): []}, now, 24, "stdev")
    assert [(entry["exchange"], entry["symbol"], entry["rank"]) for entry in data] == [
        (*key, rank) for key, _, rank in want]
    assert [rank for _, _, rank in want] == [1, 2, None, None]
    for entry, (_, figures, _) in zip(data, want):
        expected.assert_figures(entry, figures)
    # The overall ranking has Bob's market in it; Ann's numbers are among her own markets.
    overall = {(e["exchange"], e["symbol"]): e["rank"] for e in client.get("/api/metrics").get_json()["data"]}
    assert sorted(rank for rank in overall.values() if rank) == [1, 2, 3]
    page = client.get("/api/me/rankings?limit=1&page=2", headers=ann).get_json()
    assert [entry["symbol"] for entry in page["data"]] == [data[1]["symbol"]]
    assert page["pagination"] == {"count": 4, "page": 2, "limit": 1, "pages": 4}
