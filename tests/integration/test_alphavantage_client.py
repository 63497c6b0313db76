"""The real AlphaVantageClient against the fake AlphaVantage over real HTTP on 127.0.0.1."""
import datetime as dt
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lib import AlphaVantageClient, errors
from lib.alphavantage import daily_query
from lib.http import RetryPolicy
from tests.fakes.alphavantage import FakeAlphaVantage
from tests.fakes.series import daily_bars, minute_bars
from tests.fakes.server import FakeServer

KEY = "TESTKEY0123456789"
END_DAY = dt.date(2026, 11, 20)
MINUTE_END = dt.datetime(2026, 11, 20, 20, 59, tzinfo=dt.timezone.utc)
ATTEMPTS = 3
FAST_RETRY = RetryPolicy(attempts=ATTEMPTS, backoff=0.001, max_backoff=0.002)


@pytest.fixture(scope="module")
def ibm_daily():
    return daily_bars("IBM", end=END_DAY, count=150, start_price=220.0)


@pytest.fixture(scope="module")
def ibm_minutes():
    return minute_bars("IBM", end=MINUTE_END, count=120, start_price=220.0, volume_decimals=0)


@pytest.fixture
def fake(ibm_daily, ibm_minutes):
    av = FakeAlphaVantage(api_key=KEY)
    av.add_daily("IBM", ibm_daily)
    av.add_intraday("IBM", "1min", ibm_minutes)
    return av


@pytest.fixture
def server(fake):
    with FakeServer(fake) as running:
        yield running


@pytest.fixture
def make_client(server):
    clients = []

    def make(**options):
        settings = dict(api_key=KEY, base_url=server.url, min_interval=0, retry=FAST_RETRY, timeout=5.0,
                        sleep=lambda seconds: None)
        settings.update(options)
        client = AlphaVantageClient(**settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- data -------------------------------------------------------------------------------------------

def test_daily_compact_is_the_newest_100_bars_oldest_first(make_client, fake, ibm_daily):
    bars = make_client().daily("IBM")
    assert len(bars) == 100
    assert bars == ibm_daily[-100:]
    assert bars[0].timestamp < bars[-1].timestamp
    assert bars[-1].timestamp == dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    [sent] = fake.requests
    assert sent == {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact",
                    "datatype": "json", "apikey": KEY}


def test_daily_full_is_every_bar(make_client, fake, ibm_daily):
    assert make_client().daily("IBM", "full") == ibm_daily
    assert fake.requests[-1]["outputsize"] == "full"


def test_intraday_1min_in_utc(make_client, fake, ibm_minutes):
    bars = make_client().intraday("IBM", "1min", "full")
    assert bars == ibm_minutes
    assert bars[-1].timestamp == MINUTE_END  # 15:59 US/Eastern on the wire
    assert all(b.timestamp.utcoffset() == dt.timedelta(0) for b in bars)
    assert fake.requests[-1]["interval"] == "1min"
    assert make_client().intraday("IBM") == ibm_minutes[-100:]


def test_key_and_base_url_come_from_environ(server, fake, ibm_daily):
    environ = {"ALPHAVANTAGE_API_KEY": KEY, "ALPHAVANTAGE_BASE_URL": server.url}
    with AlphaVantageClient(environ=environ, min_interval=0) as client:
        assert client.api_key == KEY
        assert client.http.base_url == server.url
        assert client.daily("IBM") == ibm_daily[-100:]
    assert fake.requests[-1]["apikey"] == KEY


def test_missing_key_is_a_configuration_error():
    with pytest.raises(errors.ConfigurationError, match="ALPHAVANTAGE_API_KEY"):
        AlphaVantageClient(environ={})
    with pytest.raises(errors.ConfigurationError, match="ALPHAVANTAGE_API_KEY"):
        AlphaVantageClient(environ={"ALPHAVANTAGE_API_KEY": ""})


def test_default_base_url_is_alphavantage():
    with AlphaVantageClient(api_key="x" * 16, environ={}) as client:
        assert client.http.base_url == "https://www.alphavantage.co"
        assert client.http.limiter.min_interval == 1.0  # paced to 1 request per second by default


# -- API-level errors (HTTP 200) ---------------------------------------------------------------------

def test_wrong_key_is_an_authentication_error(make_client, fake):
    with pytest.raises(errors.AuthenticationError, match="apikey is invalid or missing"):
        make_client(api_key="WRONG-KEY").daily("IBM")
    assert len(fake.requests) == 1


def test_unknown_symbol_is_not_found(make_client, fake):
    with pytest.raises(errors.NotFoundError, match="for TIME_SERIES_DAILY"):
        make_client().daily("NOPE")
    assert fake.requests == [{"function": "TIME_SERIES_DAILY", "symbol": "NOPE", "outputsize": "compact",
                              "datatype": "json", "apikey": KEY}]


SCENARIOS = [
    # scenario, error class, requests the fake should see
    ("unknown", errors.NotFoundError, 1),
    ("empty", errors.NotFoundError, 1),
    ("empty_quote", errors.NotFoundError, 1),
    ("premium", errors.PremiumRequiredError, 1),
    ("demo", errors.AuthenticationError, 1),
    ("bad_number", errors.MalformedPayloadError, 1),
    ("missing_series", errors.MalformedPayloadError, 1),
    ("note", errors.RateLimitedError, ATTEMPTS),
    ("html200", errors.ServerError, ATTEMPTS),
    ("html503", errors.ServerError, ATTEMPTS),
    ("truncated", errors.ServerError, ATTEMPTS),
    ("incomplete", errors.NetworkError, ATTEMPTS),
    ("reset", errors.NetworkError, ATTEMPTS),
]


@pytest.mark.parametrize("scenario, expected, requests_seen", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenario_raises_the_typed_error(make_client, fake, scenario, expected, requests_seen):
    fake.scenarios["IBM"] = scenario
    with pytest.raises(expected) as info:
        make_client().daily("IBM")
    assert type(info.value) is expected
    assert info.value.symbol == "IBM" and info.value.source == "alphavantage"
    assert len(fake.requests) == requests_seen  # permanent errors are not retried
    assert KEY not in str(info.value)


def test_html503_fails_after_exactly_attempts_requests(make_client, fake):
    fake.scenarios["IBM"] = "html503"
    with pytest.raises(errors.ServerError) as info:
        make_client(retry=RetryPolicy(attempts=5, backoff=0.001, max_backoff=0.001)).daily("IBM")
    assert info.value.status == 503 and "HTTP 503" in str(info.value)
    assert len(fake.requests) == 5


def test_fail_then_ok_succeeds_after_retries(make_client, fake, ibm_daily):
    fake.scenarios["IBM"] = "fail_then_ok:2"
    sleeps = []
    bars = make_client(sleep=sleeps.append).daily("IBM")
    assert bars == ibm_daily[-100:]
    assert len(fake.requests) == 3
    assert len(sleeps) == 2  # one backoff before each retry


def test_slow_answer_is_a_request_timeout(make_client, fake):
    fake.scenarios["IBM"] = "slow:1.0"
    started = time.monotonic()
    with pytest.raises(errors.RequestTimeout, match="no answer within 0.2s"):
        make_client(timeout=0.2, retry=RetryPolicy(attempts=1)).daily("IBM")
    assert time.monotonic() - started < 0.9


def test_body_stalling_half_way_is_a_request_timeout(make_client, fake):
    fake.scenarios["IBM"] = "slow_body:1.0"
    with pytest.raises(errors.RequestTimeout):
        make_client(timeout=0.2, retry=RetryPolicy(attempts=1)).daily("IBM")


def test_connection_refused_is_a_network_error(make_client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(errors.NetworkError) as info:
        make_client(base_url=f"http://127.0.0.1:{port}").daily("IBM")
    assert type(info.value) is errors.NetworkError
    assert KEY not in str(info.value)


# -- quota, premium, burst --------------------------------------------------------------------------

def test_quota_exhaustion_is_permanent_and_redacted(make_client, fake, ibm_daily):
    fake.quota = 2
    client = make_client()
    assert client.daily("IBM") == ibm_daily[-100:]
    assert client.intraday("IBM")[-1].timestamp == MINUTE_END
    with pytest.raises(errors.QuotaExhaustedError) as info:
        client.daily("IBM")
    assert not info.value.retryable
    assert KEY not in str(info.value)
    assert "We have detected your API key as ***" in str(info.value)
    assert len(fake.requests) == 3  # not retried


def test_premium_full_is_not_retried(make_client, fake):
    fake.premium_full = True
    with pytest.raises(errors.PremiumRequiredError, match="outputsize=full parameter value is a premium feature"):
        make_client().daily("IBM", "full")
    assert len(fake.requests) == 1


def test_premium_adjusted_endpoint_is_not_retried(make_client, fake):
    client = make_client()
    with pytest.raises(errors.PremiumRequiredError, match="premium endpoint"):
        client.fetch(daily_query("IBM", adjusted=True))
    assert len(fake.requests) == 1
    fake.premium_adjusted = False
    body = client.fetch(daily_query("IBM", adjusted=True))
    assert body["Meta Data"]["1. Information"] == "Daily Time Series with Splits and Dividend Events"


def test_burst_refusal_is_retried_after_a_second_and_succeeds(server, ibm_daily):
    clock = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    fake = FakeAlphaVantage(api_key=KEY, clock=lambda: clock[0])
    fake.add_daily("IBM", ibm_daily)
    fake.burst = True
    with FakeServer(fake) as own, AlphaVantageClient(KEY, own.url, min_interval=0, sleep=sleep,
                                                     retry=RetryPolicy(attempts=3, backoff=0.01)) as client:
        assert client.daily("IBM") == ibm_daily[-100:]
        assert client.daily("IBM") == ibm_daily[-100:]  # refused once (same instant), then retried
    assert len(fake.requests) == 3
    assert len(sleeps) == 1 and sleeps[0] >= 1.0  # waited out the burst window (retry_after = 1 s)


def test_burst_refusals_exhaust_the_attempts_without_waiting(make_client, fake):
    fake.burst = True  # real clock, but the client's sleeps are no-ops: every retry is too soon
    client = make_client()
    client.daily("IBM")
    with pytest.raises(errors.RateLimitedError, match="1 request per second") as info:
        client.daily("IBM")
    assert info.value.retryable and info.value.retry_after == 1.0
    assert len(fake.requests) == 1 + ATTEMPTS


# -- pacing -----------------------------------------------------------------------------------------

def test_client_paces_real_calls(make_client, fake):
    client = make_client(min_interval=0.2, sleep=time.sleep)
    started = time.monotonic()
    for _ in range(3):
        client.daily("IBM")
    assert time.monotonic() - started >= 0.4
    assert len(fake.requests) == 3


def test_unknown_function_is_a_bad_request(make_client, fake):
    with pytest.raises(errors.BadRequestError, match=r"This API function \(FOO\) does not exist"):
        make_client().fetch({"function": "FOO", "symbol": "IBM"})
    assert len(fake.requests) == 1


# -- the fake's own wire behaviour ------------------------------------------------------------------

def get(server, **params):
    return requests.get(f"{server.url}/query", params=params, timeout=5)


def test_fake_answers_api_errors_with_http_200_json(server):
    cases = [
        ({"function": "FOO", "apikey": KEY}, {"Error Message": "This API function (FOO) does not exist."}),
        ({"function": "TIME_SERIES_DAILY", "symbol": "IBM"},
         {"Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on "
                           "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."}),
        ({"function": "TIME_SERIES_INTRADAY", "symbol": "IBM", "interval": "2min", "apikey": KEY},
         {"Error Message": "Invalid API call. Please retry or visit the documentation "
                           "(https://www.alphavantage.co/documentation/) for TIME_SERIES_INTRADAY."}),
        ({"function": "GLOBAL_QUOTE", "symbol": "NOPE", "apikey": KEY}, {"Global Quote": {}}),
    ]
    for params, body in cases:
        response = get(server, **params)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == body


def test_fake_key_rules(server, fake):
    assert "Error Message" in get(server, function="TIME_SERIES_DAILY", symbol="IBM", apikey="").json()
    assert "Time Series (Daily)" in get(server, function="TIME_SERIES_DAILY", symbol="IBM", apikey="demo").json()
    fake.add_daily("AAPL", daily_bars("AAPL", end=END_DAY, count=5))
    demo = get(server, function="TIME_SERIES_DAILY", symbol="AAPL", apikey="demo").json()
    assert demo["Information"].startswith("The **demo** API key is for demo purposes only.")
    fake.api_key = None  # any non-empty key
    assert "Time Series (Daily)" in get(server, function="TIME_SERIES_DAILY", symbol="IBM", apikey="abc").json()
    assert "Error Message" in get(server, function="TIME_SERIES_DAILY", symbol="IBM", apikey="").json()


def test_fake_csv_mode_and_quote(server, ibm_daily):
    response = get(server, function="TIME_SERIES_DAILY", symbol="IBM", datatype="csv", apikey=KEY)
    lines = response.text.split("\r\n")
    assert lines[0] == "timestamp,open,high,low,close,volume"
    assert lines[1] == (f"2026-11-20,{ibm_daily[-1].open:.4f},{ibm_daily[-1].high:.4f},{ibm_daily[-1].low:.4f},"
                        f"{ibm_daily[-1].close:.4f},{ibm_daily[-1].volume:.0f}")
    assert len(lines) == 1 + 100 + 1 and lines[-1] == ""  # header, compact rows, final CRLF
    quote = get(server, function="GLOBAL_QUOTE", symbol="IBM", apikey=KEY).json()["Global Quote"]
    assert list(quote)[0] == "01. symbol" and list(quote)[-1] == "10. change percent"
    assert quote["05. price"] == f"{ibm_daily[-1].close:.4f}"
    assert quote["08. previous close"] == f"{ibm_daily[-2].close:.4f}"
    assert quote["10. change percent"].endswith("%")
    errors_stay_json = get(server, function="TIME_SERIES_DAILY", symbol="NOPE", datatype="csv", apikey=KEY)
    assert "Error Message" in errors_stay_json.json()


def test_fake_unknown_path_is_an_html_404(server):
    response = requests.get(f"{server.url}/nothing", timeout=5)
    assert response.status_code == 404 and response.headers["Content-Type"] == "text/html"


def test_fake_records_requests_from_concurrent_clients(make_client, fake):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: len(make_client().daily("IBM")), range(12)))
    assert results == [100] * 12
    assert len(fake.requests) == 12
    assert all(r["symbol"] == "IBM" and r["apikey"] == KEY for r in fake.requests)


def test_fake_server_stops_fast_and_frees_its_port(fake):
    server = FakeServer(fake).start()
    url = server.url
    assert get(server, function="FOO", apikey=KEY).status_code == 200
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 0.5
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/query", timeout=1)
    with pytest.raises(RuntimeError, match="not running"):
        server.url
