"""The live source (lib.exchange, through the real ccxt) against fake Kraken and Binance servers over HTTP.

This is how the live source is tested offline: ccxt itself runs unmodified; only each exchange's base URL
is pointed at a local fake (`base_url=` or `EXCHANGE_BASE_URLS`) that speaks that exchange's wire format,
errors included (tests/fakes/exchanges.py). Whatever ccxt requests — the market lists its load_markets
needs, OHLC pages with its own `since` arithmetic — goes to the fake and is answered as the exchange would.
"""
import datetime as dt
import socket

import pytest
import requests

import lib
from lib import ExchangeClient, ExchangeSource, errors
from lib.exchange import parse_base_urls, rebase_urls
from lib.http import RetryPolicy
from tests.fakes.exchanges import KRAKEN_CAP, KRAKEN_PAIRS, FakeBinance, FakeKraken
from tests.fakes.series import floor_time, minute_bars
from tests.fakes.server import FakeServer

UTC = dt.timezone.utc
ATTEMPTS = 3
FAST_RETRY = RetryPolicy(attempts=ATTEMPTS, backoff=0.001, max_backoff=0.002)
# The open candle: the fakes' newest bar starts at NOW's minute, which has not ended.
NOW = floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=30)


@pytest.fixture(scope="module")
def btc():
    return minute_bars("kraken-btc", end=NOW, count=1500, start_price=60000, price_decimals=1)


@pytest.fixture(scope="module")
def eth():
    return minute_bars("binance-eth", end=NOW, count=1500, start_price=3000, price_decimals=2)


@pytest.fixture
def kraken(btc):
    fake = FakeKraken()
    fake.add_ohlc("XXBTZUSD", btc)
    fake.add_ohlc("XETHZUSD", minute_bars("kraken-eth", end=NOW, count=30, start_price=3000, price_decimals=2))
    with FakeServer(fake) as server:
        server.fake = fake
        yield server


@pytest.fixture
def binance(eth):
    fake = FakeBinance()
    fake.add_klines("ETHUSDT", eth)
    with FakeServer(fake) as server:
        server.fake = fake
        yield server


@pytest.fixture
def make_client():
    clients = []

    def make(exchange, server, **options):
        settings = dict(base_url=server.url if server else None, retry=FAST_RETRY, min_interval=0, timeout=5.0,
                        sleep=lambda seconds: None, environ={})
        settings.update(options)
        client = ExchangeClient(exchange, **settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def ohlc_calls(kraken):
    return [query for path, query in kraken.fake.requests if path == "/0/public/OHLC"]


# -- markets ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["btcusd", "xbtusd", "XBTUSD", "btc/usd", "XXBTZUSD", "xbt/usd"])
def test_kraken_pairs_map_onto_the_unified_symbol_with_the_xbt_alias(make_client, kraken, spelling):
    client = make_client("kraken", kraken)
    assert client.market(spelling) == lib.MarketInfo("kraken", "btcusd", "BTC", "USD", "BTC/USD on Kraken",
                                                     source_symbol="BTC/USD")
    assert client.market("ethusd").source_symbol == "ETH/USD"
    assert client.market("solusd").source_symbol == "SOL/USD"
    # ccxt's load_markets reads the asset list and the pair list, once per client.
    assert [path for path, _ in kraken.fake.requests] == ["/0/public/Assets", "/0/public/AssetPairs"]


def test_binance_symbols(make_client, binance):
    client = make_client("binance", binance)
    assert client.market("ethusdt") == lib.MarketInfo("binance", "ethusdt", "ETH", "USDT", "ETH/USDT on Binance",
                                                      source_symbol="ETH/USDT")
    assert client.market("ETH/BTC").pair == "ethbtc"
    # Spot markets only: the futures hosts are never asked.
    assert [path for path, _ in binance.fake.requests] == ["/api/v3/exchangeInfo"]


def test_an_unlisted_pair_is_not_found(make_client, kraken):
    with pytest.raises(errors.NotFoundError, match=r"kraken: no spot market 'dogeusd' \(the exchange does not list"):
        make_client("kraken", kraken).market("dogeusd")


def test_the_market_list_is_loaded_once_and_looked_at_again_for_a_new_pair(make_client, kraken, monkeypatch):
    client = make_client("kraken", kraken)
    pair_lists = lambda: len(kraken.fake.calls("/AssetPairs"))  # noqa: E731
    assert (client.market("btcusd").pair, client.market("ethusd").pair) == ("btcusd", "ethusd")
    assert pair_lists() == 1  # one load for every lookup
    with pytest.raises(errors.NotFoundError):
        client.market("dogeusd")
    assert pair_lists() == 1  # a list younger than MARKETS_RECHECK is not loaded again for an unknown pair
    # The exchange lists DOGE/USD; once the list is old enough, an unknown pair loads it again and finds it.
    monkeypatch.setitem(KRAKEN_PAIRS, "XDGUSD", ("XDGUSD", "XDG/USD", "XXDG", "ZUSD", 7))
    monkeypatch.setattr(lib.exchange, "MARKETS_RECHECK", 0.0)
    assert client.market("dogeusd").base == "DOGE"
    assert pair_lists() == 2
    monkeypatch.setattr(lib.exchange, "MARKETS_MAX_AGE", 0.0)  # and a list older than MARKETS_MAX_AGE is renewed
    client.market("btcusd")
    assert pair_lists() == 3


def test_an_unknown_exchange_is_not_found(make_client):
    with pytest.raises(errors.NotFoundError, match="unknown exchange 'nowhere'"):
        make_client("nowhere", None)
    with pytest.raises(errors.NotFoundError, match="unknown exchange 'nowhere'"):
        ExchangeSource({}).resolve(lib.parse_market("nowhere:btcusd"))


# -- candles ----------------------------------------------------------------------------------------

def test_kraken_serves_its_last_720_candles_whatever_since_asks(make_client, kraken, btc):
    client = make_client("kraken", kraken)
    info = client.market("btcusd")
    bars = client.candles(info, lib.Interval.MIN1, NOW - dt.timedelta(hours=24), now=NOW)
    assert bars == btc[-KRAKEN_CAP:-1]  # string prices parsed back; the open candle dropped
    assert bars[-1].timestamp + dt.timedelta(minutes=1) <= NOW < bars[-1].timestamp + dt.timedelta(minutes=2)
    since = int((NOW - dt.timedelta(hours=24)).timestamp())
    assert ohlc_calls(kraken) == [{"pair": "XXBTZUSD", "interval": "1", "since": str(since - 60)}]


def test_kraken_from_a_recent_since(make_client, kraken, btc):
    client = make_client("kraken", kraken)
    since = btc[-30].timestamp
    assert client.candles(client.market("btcusd"), lib.Interval.MIN1, since, now=NOW) == btc[-30:-1]


def test_binance_pages_through_its_1000_candle_cap(make_client, binance, eth):
    client = make_client("binance", binance)
    since = NOW - dt.timedelta(hours=24)
    bars = client.candles(client.market("ethusdt"), lib.Interval.MIN1, since, now=NOW)
    assert bars == [bar for bar in eth if bar.timestamp >= since][:-1]
    assert len(bars) == 1439
    klines = [query for path, query in binance.fake.requests if path == "/api/v3/klines"]
    assert [(q["symbol"], q["interval"], q["limit"]) for q in klines] == [("ETHUSDT", "1m", "1000")] * 2
    assert int(klines[1]["startTime"]) == int(bars[999].timestamp.timestamp() * 1000) + 60_000


def test_the_source_spans_exchanges(kraken, binance, btc, eth):
    source = ExchangeSource({"kraken": kraken.url, "binance": binance.url}, min_interval=0, retry=FAST_RETRY)
    try:
        for label, bars in (("kraken:xbtusd", btc), ("binance:ethusdt", eth)):
            info = source.resolve(lib.parse_market(label))
            assert source.candles(info, lib.Interval.MIN1, bars[-11].timestamp, now=NOW) == bars[-11:-1]
    finally:
        source.close()


# -- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario, error, text", [
    ("unavailable", errors.ServerError, 'kraken: {"error":["EService:Unavailable"]}'),
    ("rate_limited", errors.RateLimitedError, 'kraken: {"error":["EAPI:Rate limit exceeded"]}'),
    ("html200", errors.ServerError, "the body is not JSON (HTTP 200, starts '<!DOCTYPE html>"),
    ("truncated", errors.ServerError, "the body is not JSON (HTTP 200, starts '{\"error\":[],\"result\""),
    ("down", errors.ServerError, "502 Bad Gateway"),
])
def test_kraken_errors_sent_with_http_200_and_garbage_are_retried_then_raised(make_client, kraken, scenario, error,
                                                                              text):
    client = make_client("kraken", kraken)
    info = client.market("btcusd")
    kraken.fake.scenarios["XXBTZUSD"] = scenario
    with pytest.raises(error) as raised:
        client.candles(info, lib.Interval.MIN1, NOW - dt.timedelta(hours=1), now=NOW)
    assert type(raised.value) is error and text in str(raised.value)
    assert len(ohlc_calls(kraken)) == ATTEMPTS


def test_a_kraken_pair_delisted_after_the_market_list_loaded_is_not_found(make_client, kraken):
    """Kraken's `{"error":["EQuery:Unknown asset pair"],"result":null}` (HTTP 200), which ccxt raises as a plain
    ExchangeError, is an unknown market like the others: permanent, not retried."""
    client = make_client("kraken", kraken)
    info = client.market("btcusd")  # listed when the market list loaded
    kraken.fake.scenarios["XXBTZUSD"] = "delisted"
    with pytest.raises(errors.NotFoundError) as raised:
        client.candles(info, lib.Interval.MIN1, NOW - dt.timedelta(hours=1), now=NOW)
    assert str(raised.value) == ('kraken: {"error":["EQuery:Unknown asset pair"],"result":null} '
                                 '(unknown market: the exchange no longer lists it)')
    assert raised.value.retryable is False and raised.value.symbol == "kraken:btcusd"
    assert len(ohlc_calls(kraken)) == 1


def test_an_outage_then_recovery(make_client, kraken, btc):
    client = make_client("kraken", kraken)
    info = client.market("btcusd")
    kraken.fake.scenarios["XXBTZUSD"] = f"unavailable:{ATTEMPTS - 1}"
    assert client.candles(info, lib.Interval.MIN1, btc[-5].timestamp, now=NOW) == btc[-5:-1]
    assert len(ohlc_calls(kraken)) == ATTEMPTS


def test_an_exchange_that_is_down_fails_market_validation_as_retryable(make_client, kraken):
    kraken.fake.outage = True
    with pytest.raises(errors.ServerError, match="502 Bad Gateway"):
        make_client("kraken", kraken).market("btcusd")
    assert len(kraken.fake.requests) == ATTEMPTS


def test_binance_429_waits_for_retry_after_then_recovers(make_client, binance, eth):
    sleeps = []
    client = make_client("binance", binance, retry=RetryPolicy(attempts=3, backoff=0.001, max_backoff=5),
                         sleep=sleeps.append)
    info = client.market("ethusdt")
    binance.fake.scenarios["ETHUSDT"] = "rate_limited:1"
    assert client.candles(info, lib.Interval.MIN1, eth[-3].timestamp, now=NOW) == eth[-3:-1]
    assert sleeps == [1.0]  # the Retry-After header


@pytest.mark.parametrize("scenario, error, text, calls", [
    ("rate_limited", errors.RateLimitedError, "429 Too Many Requests", ATTEMPTS),
    ("banned", errors.RateLimitedError, "IP banned until", ATTEMPTS),
    ("restricted", errors.BadRequestError, "Service unavailable from a restricted location", 1),
    ("down", errors.ServerError, "502 Bad Gateway", ATTEMPTS),
])
def test_binance_errors(make_client, binance, scenario, error, text, calls):
    client = make_client("binance", binance)
    info = client.market("ethusdt")
    binance.fake.scenarios["ETHUSDT"] = scenario
    with pytest.raises(error) as raised:
        client.candles(info, lib.Interval.MIN1, NOW - dt.timedelta(hours=1), now=NOW)
    assert type(raised.value) is error and text in str(raised.value)
    assert len(binance.fake.calls("/klines")) == calls


def test_binance_invalid_symbol_body_is_not_found(make_client, binance):
    client = make_client("binance", binance)
    with pytest.raises(errors.NotFoundError, match='binance: {"code":-1121,"msg":"Invalid symbol."}'):
        client._call("binance:nopeusdt", client.exchange.publicGetKlines, {"symbol": "NOPEUSDT", "interval": "1m"})
    assert len(binance.fake.calls("/klines")) == 1


def test_no_answer_is_a_timeout_and_no_listener_a_network_error(make_client):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections into the backlog, never answers
        client = make_client("kraken", None, base_url=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(errors.RequestTimeout):
            client.market("btcusd")
    with pytest.raises(errors.NetworkError):
        make_client("kraken", None, base_url="http://127.0.0.1:9").market("btcusd")


# -- configuration ----------------------------------------------------------------------------------

def test_base_urls_from_the_environment(kraken, binance):
    environ = {"EXCHANGE_BASE_URLS": f"kraken={kraken.url}, binance={binance.url}/"}
    with ExchangeClient("kraken", environ=environ, min_interval=0) as client:
        assert client.market("xbtusd").pair == "btcusd"
    assert kraken.fake.requests
    source = ExchangeSource(environ=environ, min_interval=0)
    assert source.resolve(lib.parse_market("binance:ethusdt")).pair == "ethusdt"
    assert binance.fake.requests


def test_rebasing_replaces_every_origin_and_keeps_paths():
    urls = {"public": "https://api.binance.com/api/v3", "fapiPublic": "https://fapi.binance.com/fapi/v1",
            "nested": {"x": "https://x.binance.com"}, "doc": ["not a url"], "logo": None}
    assert rebase_urls(urls, "http://127.0.0.1:8002/") == {
        "public": "http://127.0.0.1:8002/api/v3", "fapiPublic": "http://127.0.0.1:8002/fapi/v1",
        "nested": {"x": "http://127.0.0.1:8002"}, "doc": ["not a url"], "logo": None}
    assert rebase_urls("https://api.kraken.com", "http://proxy:3128/kraken") == "http://proxy:3128/kraken"


def test_parse_base_urls():
    assert parse_base_urls(" Kraken=http://127.0.0.1:8001/ ,binance=https://mirror.example/b,") == {
        "kraken": "http://127.0.0.1:8001", "binance": "https://mirror.example/b"}
    assert parse_base_urls(None) == parse_base_urls("") == {}
    for bad in ("kraken", "kraken=ftp://x", "=http://x"):
        with pytest.raises(ValueError, match="is not exchange=http"):
            parse_base_urls(bad)


def test_session_timeout_and_pacing_go_to_ccxt(kraken):
    session = requests.Session()
    seen = []
    session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response.url))
    with ExchangeClient("kraken", base_url=kraken.url, session=session, timeout=2.5, environ={}) as client:
        client.market("btcusd")
        assert client.exchange.timeout == 2500
        assert client.exchange.enableRateLimit and client.exchange.rateLimit == 1000  # Kraken's own pace
    assert seen == [f"{kraken.url}/0/public/Assets", f"{kraken.url}/0/public/AssetPairs"]
    assert session.get(f"{kraken.url}/0/public/Time").status_code == 200  # the caller's session stays open
    paced = ExchangeClient("kraken", min_interval=0.25, environ={})
    assert paced.exchange.rateLimit == 250 and paced.exchange.enableRateLimit
    assert not ExchangeClient("kraken", min_interval=0, environ={}).exchange.enableRateLimit
    assert paced.candle_cap == KRAKEN_CAP and ExchangeClient("binance", environ={}).candle_cap == 1000
