"""get_raw_data.py's crypto tracking as users run it: a subprocess with its environment, against the fake
Cryptowatch (CRYPTOWATCH_BASE_URL) and the fake exchanges behind the live source (EXCHANGE_BASE_URLS).

A subprocess reads the real clock, so these tests first make sure the current minute has room left: the
subprocess then sees the same minute as the test, and which candles are closed is known here.
"""
from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

import lib
from financial import create_app
from financial.extensions import db
from financial.locks import exclusive
from financial.models import Ranking
from tests import expected
from tests.conftest import base_settings, env_for
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.exchanges import KRAKEN_CAP, FakeBinance, FakeKraken
from tests.fakes.series import floor_time, minute_bars
from tests.fakes.server import FakeServer
from tests.integration.test_crypto_ingest import rows_of, stored
from tests.integration.test_get_raw_data_cli import cli, summary
from tests.seed import store_crypto

UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
NO_ALERTS = "; alerts: 0 raised; e-mail off (no SMTP_HOST)"  # minute ingests end with the alerts


def minute_with_room(seconds: float = 12.0) -> dt.datetime:
    """Now, after waiting for the next minute if fewer than `seconds` are left in this one."""
    now = dt.datetime.now(UTC)
    left = 60 - now.second - now.microsecond / 1e6
    if left < seconds:
        time.sleep(left + 0.05)
    return dt.datetime.now(UTC)


def last_day(bars, now):
    """The candles a run at (this minute of) `now` stores: closed, starting within the last 24 hours."""
    minute = floor_time(now, 60)
    return [bar for bar in bars if minute - dt.timedelta(minutes=1439) <= bar.timestamp < minute]


@pytest.fixture
def series():
    now = minute_with_room()
    end = floor_time(now, 60)  # the fakes' newest candle is the one in progress
    return now, {"btc": minute_bars("btc", end=end, count=1500, start_price=60000, price_decimals=1),
                 "eth": minute_bars("eth", end=end, count=1500, start_price=3000, price_decimals=2)}


@pytest.fixture
def cryptowatch(series):
    fake = FakeCryptowatch()
    fake.add_ohlc("kraken", "btcusd", series[1]["btc"])
    fake.add_ohlc("kraken", "ethusd", series[1]["eth"])
    with FakeServer(fake) as server:
        server.fake = fake
        yield server


@pytest.fixture
def exchanges(series):
    kraken, binance = FakeKraken(), FakeBinance()
    kraken.add_ohlc("XXBTZUSD", series[1]["btc"])
    binance.add_klines("ETHUSDT", series[1]["eth"])
    with FakeServer(kraken) as kraken_server, FakeServer(binance) as binance_server:
        kraken_server.fake, binance_server.fake = kraken, binance
        yield {"kraken": kraken_server, "binance": binance_server}


def exchange_env(settings, exchanges, **extra):
    urls = ",".join(f"{name}={server.url}" for name, server in exchanges.items())
    return env_for(settings, EXCHANGE_BASE_URLS=urls, EXCHANGE_MIN_INTERVAL="0", **extra)


@pytest.fixture
def sqlite_settings(tmp_path):
    return base_settings(database_url=f"sqlite:///{tmp_path / 'crypto.db'}")


@pytest.fixture
def sqlite_app(sqlite_settings):
    """An app on the SQLite file the subprocesses use, to seed and read it."""
    app = create_app(sqlite_settings, process="test")
    yield app
    with app.app_context():
        db.engine.dispose()


def test_cryptowatch_minute_ingest_then_the_metrics_rank_it(app, client, stack_settings, cryptowatch, series):
    """The issue's acceptance run, on both stacks."""
    now, bars = series
    env = env_for(stack_settings, CRYPTOWATCH_BASE_URL=cryptowatch.url)
    result = cli(env, "--source", "cryptowatch", "--markets", "kraken:btcusd,kraken:ethusd", "--interval", "1min")
    assert result.returncode == 0, result.stderr
    btc, eth = last_day(bars["btc"], now), last_day(bars["eth"], now)
    assert summary(result.stdout) == ({"kraken:btcusd": ("ok", len(btc), ""), "kraken:ethusd": ("ok", len(eth), "")},
                                      f"2 instruments: 2 ok, 0 failed, 0 skipped; {len(btc) + len(eth)} rows stored"
                                      + NO_ALERTS)
    assert result.stderr.splitlines() == [f"[1/2] kraken:btcusd: ok, {len(btc)} rows",
                                          f"[2/2] kraken:ethusd: ok, {len(eth)} rows"]
    assert stored(app, "kraken", "btcusd") == rows_of(btc) and stored(app, "kraken", "ethusd") == rows_of(eth)

    with app.app_context():
        as_of = db.session.scalar(sa.select(sa.func.max(Ranking.as_of))).replace(tzinfo=UTC)
    assert now.replace(microsecond=0) <= as_of <= dt.datetime.now(UTC)  # as_of is stored to the second
    for window, hours in (("24h", 24), ("7d", 168), ("90m", None), ("3h", 3)):
        response = client.get(f"/api/metrics?window={window}")
        if hours is None:
            assert response.status_code == 400 and "window" in response.get_json()["info"]["error"]
            continue
        data = response.get_json()["data"]
        want = expected.ranking({("kraken", "btcusd"): btc, ("kraken", "ethusd"): eth}, as_of, hours, "stdev")
        assert [(e["exchange"], e["symbol"], e["rank"]) for e in data] == [(*key, rank) for key, _, rank in want]
        for entry, (_, figures, _) in zip(data, want):
            expected.assert_figures(entry, figures)
    btc_id = next(e["id"] for e in data if e["symbol"] == "btcusd")
    prices = client.get(f"/api/metrics/{btc_id}/prices?window=3h").get_json()["data"]
    window = expected.window(btc, as_of, 3)
    assert prices == [{"price": row.close, "time": row.ts.isoformat(timespec="seconds") + "Z"}
                      for row in window.itertuples()]
    assert len(prices) in (179, 180) and prices == sorted(prices, key=lambda price: price["time"])


def test_an_unknown_market_is_named_and_fails_the_run_and_the_others_are_stored(sqlite_settings, sqlite_app,
                                                                                exchanges, series):
    """No --source: minute crypto ingests use CRYPTO_SOURCE (exchange by default), here through ccxt."""
    now, bars = series
    env = exchange_env(sqlite_settings, exchanges)
    result = cli(env, "--markets", "kraken:btcusd,kraken:nopeusd,binance:ethusdt")
    assert result.returncode == 1
    table, total = summary(result.stdout)
    btc = [bar for bar in last_day(bars["btc"], now) if bar in bars["btc"][-KRAKEN_CAP:]]
    eth = last_day(bars["eth"], now)
    assert list(table) == ["kraken:btcusd", "kraken:nopeusd", "binance:ethusdt"]
    assert table["kraken:btcusd"][:2] == ("ok", len(btc)) and table["kraken:btcusd"][2].startswith("history from")
    assert table["kraken:nopeusd"] == ("failed", 0, "NotFoundError: kraken: no spot market 'nopeusd' (the exchange "
                                                    "does not list it)")
    assert table["binance:ethusdt"] == ("ok", len(eth), "")
    assert total == f"3 instruments: 2 ok, 1 failed, 0 skipped; {len(btc) + len(eth)} rows stored" + NO_ALERTS
    assert stored(sqlite_app, "kraken", "btcusd") == rows_of(btc)
    assert stored(sqlite_app, "binance", "ethusdt") == rows_of(eth)


def test_the_scheduler_goes_on_through_an_outage(sqlite_settings, exchanges, series):
    now, bars = series
    exchanges["kraken"].fake.scenarios["XXBTZUSD"] = f"unavailable:{lib.RetryPolicy().attempts}"
    env = exchange_env(sqlite_settings, exchanges)
    result = cli(env, "--source", "exchange", "--markets", "kraken:btcusd", "--every", "1", "--max-runs", "2")
    assert result.returncode == 0, result.stderr  # the last run's status
    totals = [line for line in result.stdout.splitlines() if line.startswith("1 instruments:")]
    assert totals[0] == "1 instruments: 0 ok, 1 failed, 0 skipped; 0 rows stored" + NO_ALERTS
    assert totals[1].startswith("1 instruments: 1 ok, 0 failed, 0 skipped;")
    assert 'ServerError: kraken: {"error":["EService:Unavailable"]}' in result.stdout


def test_the_scheduler_never_overlaps_another(app, stack_settings):
    kraken = FakeKraken()
    with FakeServer(kraken) as server:
        env = exchange_env(stack_settings, {"kraken": server})
        with app.app_context(), exclusive(db.engine, "scheduled-ingest"):
            result = cli(env, "--source", "exchange", "--markets", "kraken:btcusd", "--every", "1", "--max-runs", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "another ingest holds the scheduler lock; skipping this run" in result.stderr
    assert kraken.requests == []


def test_minute_ingests_prune_past_the_retention(sqlite_settings, sqlite_app, cryptowatch, series):
    now, bars = series
    old = minute_bars("btc-old", end=now - dt.timedelta(days=12), count=60, start_price=60000, price_decimals=1)
    store_crypto(sqlite_app, old, "kraken", "btcusd", interval=lib.Interval.MIN1)
    env = env_for(sqlite_settings, CRYPTOWATCH_BASE_URL=cryptowatch.url, MINUTE_RETENTION_DAYS="10")
    result = cli(env, "--source", "cryptowatch", "--markets", "kraken:btcusd")
    assert result.returncode == 0, result.stderr
    assert "retention: removed 60 intraday bars older than 10 days" in result.stderr.splitlines()
    # The market had bars (too old to keep): this run picks up from the retention limit, not 24 hours back,
    # so it stores every closed candle the upstream has.
    assert stored(sqlite_app, "kraken", "btcusd") == rows_of(bars["btc"][:-1])


@pytest.mark.parametrize("args, extra, message", [
    (["--markets", "kraken"], {}, "get_raw_data.py: error: --markets: 'kraken' is not a market; write exchange:pair, "
                                  "e.g. kraken:btcusd"),
    (["--source", "alphavantage", "--markets", "kraken:btcusd"], {},
     "get_raw_data.py: error: --markets: crypto markets need --source cryptowatch or exchange"),
    (["--source", "exchange", "--symbols", "IBM"], {},
     "get_raw_data.py: error: --symbols: stock symbols need --source alphavantage; crypto markets go in --markets"),
    (["--markets", "kraken:btcusd"], {"EXCHANGE_BASE_URLS": "kraken"},
     "configuration error: EXCHANGE_BASE_URLS: 'kraken' is not exchange=http(s)://host[:port][/path]"),
    (["--markets", "kraken:btcusd"], {"MINUTE_RETENTION_DAYS": "0"},
     "configuration error: MINUTE_RETENTION_DAYS must be between 1 and 3650, got '0'"),
    (["--markets", "kraken:btcusd"], {"CRYPTO_SOURCE": "coingecko"},
     "configuration error: CRYPTO_SOURCE must be one of cryptowatch, exchange, got 'coingecko'"),
])
def test_usage_and_configuration_errors_are_one_line(sqlite_settings, tmp_path, args, extra, message):
    env = env_for(base_settings(database_url=f"sqlite:///{tmp_path / 'untouched.db'}"), **extra)
    result = cli(env, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == message
    assert not (tmp_path / "untouched.db").exists()
