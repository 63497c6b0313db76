"""Minute tracking of crypto markets, in process on both stacks: the crypto source's tasks run by
ingest.run against the fake Cryptowatch and the fake exchanges (through the real ccxt), with a pinned
clock. Expected rows are the fakes' own bars, filtered here."""
from __future__ import annotations

import argparse
import datetime as dt
import io
import threading
from dataclasses import replace

import pytest
import sqlalchemy as sa

import get_raw_data
import lib
from financial import ingest, storage, upstreams as clients
from financial.extensions import db
from financial.ingest import scheduler
from financial.ingest.sources.crypto import MarketTask, window_start
from financial.models import Bar, Instrument, Ranking
from lib.http import RetryPolicy
from tests import expected
from tests.conftest import base_settings
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.exchanges import KRAKEN_CAP, FakeBinance, FakeKraken
from tests.fakes.series import floor_time, minute_bars
from tests.fakes.server import FakeServer

UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
NOW = floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=30)  # the newest candle is still open
ATTEMPTS = 3
FAST_RETRY = RetryPolicy(attempts=ATTEMPTS, backoff=0.001, max_backoff=0.002)
MARKETS = {"cryptowatch": ["kraken:btcusd", "kraken:ethusd"], "exchange": ["kraken:btcusd", "binance:ethusdt"]}


class Upstreams:
    """The three fakes, serving the same two series: BTC (1 decimal, as Kraken sends it) and ETH."""

    def __init__(self, btc, eth) -> None:
        self.cryptowatch, self.kraken, self.binance = FakeCryptowatch(), FakeKraken(), FakeBinance()
        self.servers = [FakeServer(fake).start() for fake in (self.cryptowatch, self.kraken, self.binance)]
        self.load(btc, eth)

    def load(self, btc, eth) -> None:
        self.btc, self.eth = btc, eth
        self.cryptowatch.add_ohlc("kraken", "btcusd", btc)
        self.cryptowatch.add_ohlc("kraken", "ethusd", eth)
        self.kraken.add_ohlc("XXBTZUSD", btc)
        self.binance.add_klines("ETHUSDT", eth)

    def source(self, name: str):
        if name == "cryptowatch":
            return lib.CryptowatchClient(base_url=self.servers[0].url, retry=FAST_RETRY, sleep=lambda s: None,
                                         environ={})
        return lib.ExchangeSource({"kraken": self.servers[1].url, "binance": self.servers[2].url}, min_interval=0,
                                  retry=FAST_RETRY, sleep=lambda s: None)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def upstreams():
    running = Upstreams(minute_bars("btc", end=NOW, count=1500, start_price=60000, price_decimals=1),
                        minute_bars("eth", end=NOW, count=1500, start_price=3000, price_decimals=2))
    yield running
    running.close()


def run(app, source, markets, *, now=NOW):
    with app.app_context():
        tasks = [MarketTask(lib.parse_market(market), source.source) for market in markets]
        given = clients.Upstreams(app.config["SETTINGS"], crypto={source.source: source})
        return ingest.run(tasks, upstreams=given, clock=lambda: now)


def stored(app, exchange, symbol):
    """{naive UTC ts: (open, high, low, close, volume)} of a crypto market's minute bars."""
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Bar.ts, Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume)
            .join(Instrument, Instrument.id == Bar.instrument_id)
            .where(Instrument.exchange == exchange, Instrument.symbol == symbol, Instrument.asset_class == "crypto",
                   Bar.interval == "1min"))
        return {row.ts: tuple(row[1:]) for row in rows}


def rows_of(bars):
    return {bar.timestamp.replace(tzinfo=None): (bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in bars}


def closed_between(bars, since, now):
    return [bar for bar in bars if bar.timestamp >= since and bar.timestamp + MINUTE <= now]


def expected_rows(upstreams, source, now=NOW, since=None):
    """{(exchange, symbol): rows} a run at `now` must have stored, for the source's two markets."""
    since = since or now - dt.timedelta(hours=24)
    btc = closed_between(upstreams.btc, since, now)
    if source == "exchange":  # Kraken keeps its last 720 candles only
        btc = [bar for bar in btc if bar in upstreams.btc[-KRAKEN_CAP:]]
    eth_exchange = "kraken" if source == "cryptowatch" else "binance"
    eth_symbol = "ethusd" if source == "cryptowatch" else "ethusdt"
    eth = closed_between(upstreams.eth, since, now)
    return {("kraken", "btcusd"): rows_of(btc), (eth_exchange, eth_symbol): rows_of(eth)}


@pytest.mark.parametrize("source", ["cryptowatch", "exchange"])
def test_first_run_stores_the_closed_candles_of_the_last_24_hours(app, upstreams, source):
    report = run(app, upstreams.source(source), MARKETS[source])
    want = expected_rows(upstreams, source)
    assert report.ok, report.render()
    assert [(o.label, o.status, o.rows) for o in report.outcomes] == [
        (label, "ok", len(rows)) for label, rows in zip(MARKETS[source], want.values())]
    for (exchange, symbol), rows in want.items():
        assert stored(app, exchange, symbol) == rows
    counts = [len(rows) for rows in want.values()]
    if source == "cryptowatch":
        # From the first minute starting at or after NOW - 24h to the last closed one: 1439 candles.
        assert counts == [1439, 1439] and report.outcomes[0].detail == ""
        [(path, query, _)] = [call for call in upstreams.cryptowatch.requests if call[0].endswith("btcusd/ohlc")]
        assert query == {"periods": "60", "after": str(int((NOW - dt.timedelta(hours=24)).timestamp()) + 60)}
    else:
        assert counts == [KRAKEN_CAP - 1, 1439]
        first = min(want[("kraken", "btcusd")])
        assert report.outcomes[0].detail == (f"history from {first:%Y-%m-%d %H:%M} UTC only (the upstream keeps no "
                                             f"older candles)")


@pytest.mark.parametrize("source", ["cryptowatch", "exchange"])
def test_markets_are_stored_as_crypto_instruments(app, upstreams, source):
    assert run(app, upstreams.source(source), MARKETS[source]).ok
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(sa.select(Instrument.asset_class, Instrument.exchange, Instrument.symbol,
                                            Instrument.base, Instrument.quote, Instrument.name)
                                  .order_by(Instrument.exchange, Instrument.symbol)).all()
    second = [("crypto", "kraken", "ethusd", "ETH", "USD", "ETH/USD on Kraken")] if source == "cryptowatch" else [
        ("crypto", "binance", "ethusdt", "ETH", "USDT", "ETH/USDT on Binance")]
    assert sorted(rows) == sorted([("crypto", "kraken", "btcusd", "BTC", "USD", "BTC/USD on Kraken")] + second)


def test_kraken_alias_spellings_are_one_market(app, upstreams):
    report = run(app, upstreams.source("exchange"), ["kraken:xbtusd", "kraken:btc/usd"])
    assert [(o.label, o.status) for o in report.outcomes] == [("kraken:xbtusd", "ok"), ("kraken:btcusd", "ok")]
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(sa.select(Instrument.exchange, Instrument.symbol)).all() == [("kraken", "btcusd")]


@pytest.mark.parametrize("source", ["cryptowatch", "exchange"])
def test_the_next_run_starts_a_few_minutes_before_the_latest_bar_and_rewrites_them(app, upstreams, source):
    assert run(app, upstreams.source(source), MARKETS[source]).ok
    first = expected_rows(upstreams, source)
    # Ten minutes later: ten more candles; the one that was open has closed with other figures, and the
    # exchange corrected the candle three minutes before it.
    later = NOW + 10 * MINUTE

    def moved_on(bars, seed, decimals):
        fresh = minute_bars(seed, end=later, count=11, start_price=bars[-1].open, price_decimals=decimals)
        corrected = replace(bars[-4], close=round(bars[-4].close + 1.5, 1), high=round(bars[-4].high + 1.5, 1))
        return bars[:-4] + [corrected] + bars[-3:-1] + fresh

    upstreams.load(moved_on(upstreams.btc, "btc-later", 1), moved_on(upstreams.eth, "eth-later", 2))
    for fake in (upstreams.cryptowatch, upstreams.kraken, upstreams.binance):
        fake.requests.clear()
    report = run(app, upstreams.source(source), MARKETS[source], now=later)
    assert report.ok, report.render()
    latest = NOW - 90 * dt.timedelta(seconds=1)  # the last candle closed at NOW started at NOW - 1:30
    since = floor_time(latest, 60) - 5 * MINUTE
    fetched = [closed_between(bars, since, later) for bars in (upstreams.btc, upstreams.eth)]
    assert [o.rows for o in report.outcomes] == [len(bars) for bars in fetched]
    for (key, rows), bars in zip(first.items(), fetched):
        # One row per minute: the first run's rows, with the overlap's corrections, plus the new ones.
        assert stored(app, *key) == rows | rows_of(bars)
        assert len(stored(app, *key)) == len(rows) + 10
    if source == "cryptowatch":
        after = {query["after"] for path, query, _ in upstreams.cryptowatch.requests if path.endswith("/ohlc")}
        assert after == {str(int(since.timestamp()) + 60)}
    else:
        [kraken] = [query for path, query in upstreams.kraken.requests if path.endswith("/OHLC")]
        assert kraken["since"] == str(int(since.timestamp()) - 60)  # ccxt asks one candle earlier
        [binance] = [query for path, query in upstreams.binance.requests if path.endswith("/klines")]
        assert binance["startTime"] == str(int(since.timestamp() * 1000))


def test_the_overlap_never_reaches_past_the_retention(app, upstreams):
    retention = dt.timedelta(days=30)
    assert window_start(None, lib.Interval.MIN1, NOW, dt.timedelta(days=90), retention) == NOW - retention
    old = (NOW - dt.timedelta(days=45)).replace(tzinfo=None)
    assert window_start(old, lib.Interval.MIN1, NOW, dt.timedelta(hours=24), retention) == NOW - retention
    recent = (NOW - dt.timedelta(hours=2)).replace(tzinfo=None)
    assert window_start(recent, lib.Interval.MIN5, NOW, dt.timedelta(hours=24), retention) == \
        NOW - dt.timedelta(hours=2, minutes=25)


@pytest.mark.parametrize("source, unknown, text", [
    ("cryptowatch", "kraken:nopeusd", "NotFoundError: cryptowatch: kraken:nopeusd: Instrument not found"),
    ("cryptowatch", "nowhere:btcusd", "NotFoundError: cryptowatch: nowhere:btcusd: Exchange not found"),
    ("exchange", "kraken:nopeusd", "NotFoundError: kraken: no spot market 'nopeusd' (the exchange does not list it)"),
    ("exchange", "nowhere:btcusd", "NotFoundError: unknown exchange 'nowhere'"),
])
def test_an_unknown_market_fails_alone(app, upstreams, source, unknown, text):
    first, second = MARKETS[source]
    report = run(app, upstreams.source(source), [first, unknown, second])
    assert [(o.label, o.status) for o in report.outcomes] == [(first, "ok"), (unknown, "failed"), (second, "ok")]
    assert report.outcomes[1].detail.startswith(text)
    assert not report.ok
    for (exchange, symbol), rows in expected_rows(upstreams, source).items():
        assert stored(app, exchange, symbol) == rows
    with app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Instrument)) == 2


@pytest.mark.parametrize("source", ["cryptowatch", "exchange"])
def test_a_market_without_candles_has_no_new_bars_and_is_no_failure(app, source):
    """A listed market that sends no candles (no trades yet, or a quiet one): every run succeeds with 0 rows
    and says so, before any bar is stored and after."""
    quiet = Upstreams(minute_bars("btc", end=NOW, count=30, start_price=60000, price_decimals=1), [])
    try:
        for now in (NOW, NOW + MINUTE, NOW + 2 * MINUTE):
            report = run(app, quiet.source(source), MARKETS[source], now=now)
            assert report.ok, report.render()
            btc, eth = report.outcomes
            assert (btc.status, eth.status, eth.rows) == ("ok", "ok", 0)
            since = now - dt.timedelta(hours=24)
            assert eth.detail == f"no new bars: no closed candles since {since:%Y-%m-%d %H:%M} UTC"
        assert stored(app, "kraken", "btcusd") and stored(app, eth.label.split(":")[0], eth.label.split(":")[1]) == {}
    finally:
        quiet.close()


def test_an_outage_fails_the_market_then_the_next_run_catches_up(app, upstreams):
    upstreams.cryptowatch.scenarios["kraken:ethusd"] = f"down:{ATTEMPTS}"
    first = run(app, upstreams.source("cryptowatch"), MARKETS["cryptowatch"])
    assert [(o.status, o.detail) for o in first.outcomes] == [
        ("ok", ""), ("failed", "ServerError: cryptowatch: server error (HTTP 503)")]
    assert stored(app, "kraken", "ethusd") == {}
    second = run(app, upstreams.source("cryptowatch"), MARKETS["cryptowatch"], now=NOW + MINUTE)
    assert second.ok
    later = NOW + MINUTE
    assert stored(app, "kraken", "ethusd") == rows_of(closed_between(upstreams.eth, later - dt.timedelta(hours=24),
                                                                     later))


def test_a_whole_exchange_down_fails_its_markets_only(app, upstreams):
    upstreams.kraken.outage = True
    report = run(app, upstreams.source("exchange"), ["kraken:btcusd", "kraken:ethusd", "binance:ethusdt"])
    assert [(o.label, o.status) for o in report.outcomes] == [
        ("kraken:btcusd", "failed"), ("kraken:ethusd", "failed"), ("binance:ethusdt", "ok")]
    detail = report.outcomes[0].detail
    assert detail.startswith("ServerError: kraken: ") and "502 Bad Gateway" in detail


@pytest.mark.parametrize("source, market, scenario, text", [
    ("cryptowatch", "kraken:ethusd", "bad_row", "MalformedPayloadError: malformed Cryptowatch payload for "
                                                "kraken:ethusd: row 1439 field close is not a number: 'n/a'"),
    ("cryptowatch", "kraken:ethusd", "malformed", "MalformedPayloadError: malformed Cryptowatch payload"),
    ("cryptowatch", "kraken:ethusd", "html200", "ServerError: cryptowatch: body is not JSON"),
    ("exchange", "XXBTZUSD", "truncated", "ServerError: kraken: GET http"),
    ("exchange", "ETHUSDT", "html200", "ServerError: binance: GET http"),
])
def test_garbage_stores_nothing_for_that_market(app, upstreams, source, market, scenario, text):
    fake = {"cryptowatch": upstreams.cryptowatch, "XXBTZUSD": upstreams.kraken, "ETHUSDT": upstreams.binance}[
        "cryptowatch" if source == "cryptowatch" else market]
    fake.scenarios[market] = scenario
    report = run(app, upstreams.source(source), MARKETS[source])
    failed = [o for o in report.outcomes if o.status == "failed"]
    assert len(failed) == 1 and failed[0].rows == 0 and failed[0].detail.startswith(text), report.render()
    ok = next(o for o in report.outcomes if o.status == "ok")
    assert ok.rows > 0
    with app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(Bar)) == ok.rows


def test_the_ingest_ends_by_ranking_what_it_stored(app, client, upstreams):
    report = run(app, upstreams.source("cryptowatch"), MARKETS["cryptowatch"])
    with app.app_context():
        ingest.finish(report)
        as_of = db.session.scalar(sa.select(sa.func.max(Ranking.as_of))).replace(tzinfo=UTC)
    assert report.ok and [step.label for step in report.steps] == ["(rankings)"]
    data = client.get("/api/metrics").get_json()["data"]
    stored_bars = {"btcusd": closed_between(upstreams.btc, NOW - dt.timedelta(hours=24), NOW),
                   "ethusd": closed_between(upstreams.eth, NOW - dt.timedelta(hours=24), NOW)}
    want = expected.ranking({("kraken", symbol): bars for symbol, bars in stored_bars.items()}, as_of, 24, "stdev")
    assert [(e["exchange"], e["symbol"], e["rank"]) for e in data] == [(*key, rank) for key, _, rank in want]
    for entry, (_, figures, _) in zip(data, want):
        expected.assert_figures(entry, figures)


# -- which markets a run tracks, from which source -------------------------------------------------------

def labels(settings, *argv, watched=()):
    plan = ingest.plan_for(get_raw_data.parse_args(argv).request, settings,
                           watched=[lib.parse_market(market) for market in watched])
    return [(task.label, task.upstream) for task in plan.tasks]


def test_minute_ingests_also_track_every_watched_market(app):
    settings = base_settings(crypto_source="cryptowatch")
    watched = ["kraken:ethusd", "Kraken:BTCUSD"]
    with app.app_context():
        assert labels(settings, "--source", "exchange", "--markets", "kraken:btcusd", watched=watched) == [
            ("kraken:btcusd", "exchange"), ("kraken:ethusd", "exchange")]
        assert labels(settings, "--markets", "binance:ethusdt", watched=watched) == [
            ("binance:ethusdt", "cryptowatch"), ("kraken:ethusd", "cryptowatch"), ("kraken:btcusd", "cryptowatch")]
        assert labels(settings, "--symbols", "IBM", "--interval", "1min", watched=watched) == [
            ("IBM", "alphavantage"), ("kraken:ethusd", "cryptowatch"), ("kraken:btcusd", "cryptowatch")]
        assert labels(settings, "--symbols", "IBM", watched=watched) == [("IBM", "alphavantage")]  # daily: none
        assert labels(settings, "--source", "exchange", watched=watched) == [
            ("kraken:ethusd", "exchange"), ("kraken:btcusd", "exchange")]


def test_nobody_watches_anything_without_watchlists(app):
    """(What a watchlist adds is tested with the watchlists, in test_watchlists_api.py.)"""
    with app.app_context(), db.engine.connect() as connection:
        assert storage.watchlists.watched_markets(connection) == []


def test_crypto_arguments():
    request = get_raw_data.parse_args(["--markets", "kraken:btcusd"]).request
    assert (request.crypto, request.source, request.interval, request.days) == (True, None, lib.Interval.MIN1, None)
    args = get_raw_data.parse_args(["--source", "cryptowatch", "--interval", "5min", "--days", "3"])
    assert isinstance(args, argparse.Namespace) and (args.request.crypto, args.request.interval) == (
        True, lib.Interval.MIN5)
    assert get_raw_data.parse_args([]).request.interval is lib.Interval.DAY


def test_the_scheduler_keeps_its_clients_from_tick_to_tick(app_factory):
    """An exchange's market list is loaded once for the life of the scheduler, not once a tick."""
    # The scheduler reads the real clock: candles up to the current minute, fewer than a page, so each tick
    # is one candle request however long after the module's NOW this runs.
    kraken = FakeKraken()
    kraken.add_ohlc("XXBTZUSD", minute_bars("btc", end=floor_time(dt.datetime.now(UTC), 60), count=KRAKEN_CAP // 2,
                                            start_price=60000, price_decimals=1))
    with FakeServer(kraken) as server:
        app = app_factory(exchange_base_urls=f"kraken={server.url}", exchange_min_interval=0.0)
        request = ingest.IngestRequest(source="exchange", markets=(lib.parse_market("kraken:btcusd"),),
                                       interval=lib.Interval.MIN1)
        out = io.StringIO()
        with app.app_context():
            code = scheduler.run_every(1, request, app.config["SETTINGS"], threading.Event(), out=out, max_runs=2)
    assert code == 0
    assert out.getvalue().count("1 instruments: 1 ok, 0 failed") == 2
    assert len(kraken.calls("/AssetPairs")) == 1
    assert len(kraken.calls("/OHLC")) == 2
