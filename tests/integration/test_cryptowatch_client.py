"""The real CryptowatchClient against the fake Cryptowatch over real HTTP on 127.0.0.1."""
import datetime as dt

import pytest
import requests

import lib
from lib import CryptowatchClient, errors
from lib.http import RetryPolicy
from tests.fakes.cryptowatch import UPGRADE, FakeCryptowatch
from tests.fakes.series import minute_bars
from tests.fakes.server import FakeServer

UTC = dt.timezone.utc
KEY = "cw-public-key-1234"
END = dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
ATTEMPTS = 3
FAST_RETRY = RetryPolicy(attempts=ATTEMPTS, backoff=0.001, max_backoff=0.002)


@pytest.fixture(scope="module")
def btc():
    return minute_bars("btc", end=END, count=180, start_price=60000, price_decimals=1)


@pytest.fixture(scope="module")
def eth():
    return minute_bars("eth", end=END, count=60, start_price=3000, price_decimals=2)


@pytest.fixture
def fake(btc, eth):
    upstream = FakeCryptowatch()
    upstream.add_ohlc("kraken", "btcusd", btc)
    upstream.add_ohlc("kraken", "ethusd", eth)
    upstream.add_ohlc("binance", "ethusdt", eth)
    return upstream


@pytest.fixture
def server(fake):
    with FakeServer(fake) as running:
        yield running


@pytest.fixture
def make_client(server):
    clients = []

    def make(**options):
        settings = dict(base_url=server.url, retry=FAST_RETRY, timeout=5.0, sleep=lambda seconds: None, environ={})
        settings.update(options)
        client = CryptowatchClient(**settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_ohlc_is_every_candle_as_bars_starting_one_period_before_close(make_client, fake, btc):
    client = make_client()
    assert client.ohlc("kraken", "btcusd") == btc
    [(path, query, key)] = fake.requests
    assert (path, query, key) == ("/markets/kraken/btcusd/ohlc", {"periods": "60"}, None)


def test_after_and_before_bound_the_close_times(make_client, fake, btc):
    after, before = btc[10].timestamp + dt.timedelta(minutes=1), btc[20].timestamp + dt.timedelta(minutes=1)
    assert make_client().ohlc("kraken", "btcusd", after=after, before=before) == btc[10:21]
    assert fake.requests[-1][1] == {"periods": "60", "after": str(int(after.timestamp())),
                                    "before": str(int(before.timestamp()))}


def test_several_periods_in_one_call(make_client, fake, btc):
    hourly = minute_bars("btc-hourly", end=END, count=5, start_price=60000, interval_seconds=3600)
    fake.add_ohlc("kraken", "btcusd", hourly, period=3600)
    assert make_client().ohlc_periods("kraken", "btcusd", [lib.Interval.MIN1, lib.Interval.MIN60]) == {
        60: btc, 3600: hourly}
    assert len(fake.requests) == 1


def test_candles_are_the_closed_ones_from_since(make_client, btc):
    client = make_client()
    info = client.resolve(lib.parse_market("kraken:btcusd"))
    now = btc[-1].timestamp + dt.timedelta(seconds=30)  # the newest candle is still open
    assert client.candles(info, lib.Interval.MIN1, btc[100].timestamp, now) == btc[100:-1]


def test_allowance_of_the_last_call_anonymous_and_with_a_key(make_client, fake):
    anonymous = make_client()
    assert anonymous.allowance is None
    anonymous.price("kraken", "btcusd")
    first = anonymous.allowance
    anonymous.ohlc("kraken", "btcusd")
    assert first.cost == 0.005 and anonymous.allowance.cost == 0.015
    assert anonymous.allowance.remaining == pytest.approx(first.remaining - 0.015)
    assert anonymous.allowance.upgrade == UPGRADE and anonymous.allowance.account is None

    keyed = make_client(api_key=KEY)
    keyed.price("kraken", "btcusd")
    assert keyed.allowance.account == fake.account and keyed.allowance.remaining_paid == 0
    assert fake.requests[-1][2] == KEY  # sent as the X-CW-API-Key header


def test_key_and_base_url_from_the_environment(server, fake):
    with CryptowatchClient(environ={"CRYPTOWATCH_API_KEY": KEY, "CRYPTOWATCH_BASE_URL": server.url}) as client:
        assert client.price("kraken", "ethusd") > 0
    assert fake.requests[-1] == ("/markets/kraken/ethusd/price", {}, KEY)


def test_markets_follow_the_cursor(make_client, fake):
    fake.page_size = 2
    markets = make_client().markets()
    assert [market.label for market in markets] == ["binance:ethusdt", "kraken:btcusd", "kraken:ethusd"]
    assert [query for path, query, _ in fake.requests] == [{}, {"cursor": "2"}]
    assert [market.label for market in make_client().markets("kraken")] == ["kraken:btcusd", "kraken:ethusd"]
    assert markets[0] == lib.MarketInfo("binance", "ethusdt", "ETH", "USDT", "ETH/USDT on Binance",
                                        source_symbol="ethusdt")


def test_market_lookup_price_and_summary(make_client, btc):
    client = make_client()
    assert client.market("kraken", "btcusd") == lib.MarketInfo("kraken", "btcusd", "BTC", "USD", "BTC/USD on Kraken",
                                                               source_symbol="btcusd")
    assert client.price("kraken", "btcusd") == btc[-1].close
    summary = client.summary("kraken", "btcusd")
    assert (summary.last, summary.high, summary.low) == (
        btc[-1].close, max(b.high for b in btc), min(b.low for b in btc))
    assert summary.volume == pytest.approx(sum(b.volume for b in btc))


@pytest.mark.parametrize("call, text", [
    (lambda c: c.ohlc("kraken", "nopeusd"), "cryptowatch: kraken:nopeusd: Instrument not found"),
    (lambda c: c.market("nowhere", "btcusd"), "cryptowatch: nowhere:btcusd: Exchange not found"),
    (lambda c: c.resolve(lib.parse_market("kraken:dogeusd")), "cryptowatch: kraken:dogeusd: Instrument not found"),
    (lambda c: c.markets("nowhere"), "Exchange not found"),
])
def test_unknown_markets_are_not_found_and_not_retried(make_client, fake, call, text):
    with pytest.raises(errors.NotFoundError) as raised:
        call(make_client())
    assert str(raised.value) == text or text in str(raised.value)
    assert not raised.value.retryable
    assert len(fake.requests) == 1


def test_spent_allowance_is_429_rate_limited_after_retries(make_client, fake):
    fake.remaining = 0.02
    client = make_client()
    client.ohlc("kraken", "btcusd")  # 0.015 credits
    with pytest.raises(errors.RateLimitedError, match=r"cryptowatch: rate limited \(HTTP 429\)"):
        client.ohlc("kraken", "btcusd")
    assert len(fake.requests) == 1 + ATTEMPTS


def test_outage_then_recovery_is_retried(make_client, fake, eth):
    fake.scenarios["kraken:ethusd"] = f"down:{ATTEMPTS - 1}"
    assert make_client().ohlc("kraken", "ethusd") == eth
    assert len(fake.requests) == ATTEMPTS


@pytest.mark.parametrize("scenario, error, text, calls", [
    ("down", errors.ServerError, "cryptowatch: server error (HTTP 503)", ATTEMPTS),
    ("html200", errors.ServerError, "cryptowatch: body is not JSON (HTTP 200, starts '<!DOCTYPE html>", ATTEMPTS),
    ("malformed", errors.MalformedPayloadError, "malformed Cryptowatch payload for kraken:ethusd: no 'result'", 1),
    ("bad_row", errors.MalformedPayloadError, "field close is not a number: 'n/a'", 1),
])
def test_outages_and_garbage(make_client, fake, scenario, error, text, calls):
    fake.scenarios["kraken:ethusd"] = scenario
    with pytest.raises(error) as raised:
        make_client().ohlc("kraken", "ethusd")
    assert text in str(raised.value)
    assert len(fake.requests) == calls


def test_a_gone_host_is_a_network_error(make_client):
    client = make_client(base_url="http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(errors.NetworkError, match="cryptowatch: connection failed"):
        client.price("kraken", "btcusd")


def test_the_key_never_appears_in_errors(make_client, fake):
    fake.scenarios["kraken:ethusd"] = "down"
    with pytest.raises(errors.ServerError) as raised:
        make_client(api_key=KEY).ohlc("kraken", "ethusd")
    assert KEY not in str(raised.value)


def test_an_injected_session_is_used_and_left_open(server):
    session = requests.Session()
    seen = []
    session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response.url))
    with CryptowatchClient(base_url=server.url, session=session, environ={}) as client:
        client.price("kraken", "btcusd")
    assert seen == [f"{server.url}/markets/kraken/btcusd/price"]
    assert session.get(f"{server.url}/").status_code == 200  # still usable: the caller owns it
