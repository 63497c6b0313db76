"""lib.history against the fake AlphaVantage, Binance, Kraken and Cryptowatch servers over real HTTP.

Expected frames are built here from the raw payloads (fetched with plain requests and read by hand) or from
the bars the fakes were loaded with, aggregated with pandas; never from lib's own parsers.
"""
from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest
import requests

import lib
from lib import errors
from tests.fakes.alphavantage import FakeAlphaVantage
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.exchanges import FakeBinance, FakeKraken
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.fakes.server import FakeServer

UTC = dt.timezone.utc
KEY = "HISTORYKEY0123456789"
TODAY = dt.datetime.now(UTC).date()
NOW = floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=30)  # the fakes' newest minute is still open
OHLCV = ["open", "high", "low", "close", "volume"]
FIELDS = {"open": "1. open", "high": "2. high", "low": "3. low", "close": "4. close"}


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    """lib.history reads NOW, the moment the fakes' data was made for, however long the suite has run."""
    monkeypatch.setattr(lib.series, "utc_now", lambda: NOW)


@pytest.fixture(scope="module")
def stock_bars():
    ibm = daily_bars("IBM", end=TODAY, count=260, start_price=180.0)
    # Adjusted closes below the raw ones, as after a dividend, to tell the two apart.
    ibm = [lib.Bar(b.timestamp, b.open, b.high, b.low, b.close, b.volume, round(b.close * 0.97, 4)) for b in ibm]
    return {"IBM": ibm, "AAPL": daily_bars("AAPL", end=TODAY, count=260, start_price=190.0)}


@pytest.fixture
def av(stock_bars):
    fake = FakeAlphaVantage(api_key=KEY)
    for symbol, bars in stock_bars.items():
        fake.add_daily(symbol, bars)
    fake.add_intraday("IBM", "1min", minute_bars("IBM-1m", end=NOW, count=150, start_price=180.0,
                                                 volume_decimals=0))
    with FakeServer(fake) as server:
        server.fake = fake
        yield server


@pytest.fixture
def environment(av, monkeypatch):
    """The service's variables pointing at the fakes, as a notebook user would set them."""
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", KEY)
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", av.url)
    monkeypatch.setenv("ALPHAVANTAGE_MIN_INTERVAL", "0")
    monkeypatch.delenv("LIB_CACHE_DIR", raising=False)
    monkeypatch.delenv("LIB_CACHE_EXPIRE", raising=False)


def raw(server, **params) -> dict:
    """The fake's answer, fetched without lib."""
    return requests.get(f"{server.url}/query", params={**params, "apikey": KEY}, timeout=5).json()


def payload_frame(series: dict, start: dt.date | None = None, end: dt.date | None = None) -> pd.DataFrame:
    """The rows of an AlphaVantage series object read by hand: oldest first, within [start, end]."""
    rows = []
    for key, row in series.items():
        day = dt.date.fromisoformat(key)
        if (start is None or day >= start) and (end is None or day <= end):
            values = {name: float(row[field]) for name, field in FIELDS.items()}
            values["volume"] = float(row.get("6. volume", row.get("5. volume")))
            if "5. adjusted close" in row:
                values["adjusted_close"] = float(row["5. adjusted close"])
            rows.append((pd.Timestamp(day, tz="UTC"), values))
    rows.sort(key=lambda item: item[0])
    frame = pd.DataFrame([values for _, values in rows], index=pd.DatetimeIndex([s for s, _ in rows], name="timestamp"))
    return frame.astype("float64")


def assert_same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(frame.columns) == list(expected.columns)
    assert list(frame.index) == list(expected.index)
    for column in expected.columns:
        assert frame[column].tolist() == expected[column].tolist(), column


# -- stocks -------------------------------------------------------------------------------------------

def test_a_stock_range_from_the_environment_equals_the_payload(av, environment):
    start, end = TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=10)
    frame = lib.history("IBM", start=start, end=end)
    assert [call["outputsize"] for call in av.fake.calls("IBM")] == ["compact"]  # 40 days fit in 100 trading days
    assert av.fake.calls("IBM")[0]["function"] == "TIME_SERIES_DAILY"
    expected = payload_frame(raw(av, function="TIME_SERIES_DAILY", symbol="IBM")["Time Series (Daily)"], start, end)
    assert len(expected) >= 19
    assert_same(frame, expected)
    assert frame.index.name == "timestamp" and str(frame.index.tz) == "UTC"
    assert frame.index.min().date() >= start and frame.index.max().date() <= end


def test_a_range_older_than_compact_asks_for_full(av, environment, stock_bars):
    start = TODAY - dt.timedelta(days=300)
    frame = lib.history("AAPL", start=start.isoformat())
    assert [call["outputsize"] for call in av.fake.calls("AAPL")] == ["full"]
    assert len(frame) == len([bar for bar in stock_bars["AAPL"] if bar.date >= start]) > 100
    assert_same(frame, payload_frame(raw(av, function="TIME_SERIES_DAILY", symbol="AAPL",
                                         outputsize="full")["Time Series (Daily)"], start))


def test_a_free_key_asking_for_full_gets_the_premium_error(av, environment):
    av.fake.premium_full = True
    with pytest.raises(errors.PremiumRequiredError, match="outputsize=full parameter value is a premium feature"):
        lib.history("IBM", start=TODAY - dt.timedelta(days=300))
    assert lib.history("IBM").shape == (100, 5)  # no start: the latest 100, which a free key gets


def test_several_symbols_share_one_frame_and_the_pacing(av, environment, monkeypatch):
    """Two names in one call, 0.3 s apart by the client's pacing, pass a fake refusing calls within 0.25 s."""
    monkeypatch.setenv("ALPHAVANTAGE_MIN_INTERVAL", "0.3")
    av.fake.burst, av.fake.burst_window = True, 0.25
    frame = lib.history(["IBM", "AAPL", "ibm"], start=TODAY - dt.timedelta(days=20))
    assert frame.index.names == ["symbol", "timestamp"]
    assert list(frame.index.get_level_values("symbol").unique()) == ["IBM", "AAPL"]  # order kept, once each
    assert len(av.fake.calls()) == 2  # no burst refusal, so no retry
    av.fake.burst = False
    for symbol in ("IBM", "AAPL"):
        assert_same(frame.loc[symbol], payload_frame(raw(av, function="TIME_SERIES_DAILY", symbol=symbol)[
            "Time Series (Daily)"], TODAY - dt.timedelta(days=20)))


def test_a_failing_name_raises_naming_every_failure_and_keeps_the_rest(av, environment, caplog):
    av.fake.scenarios["MSFT"] = "premium"
    with pytest.raises(lib.HistoryError) as raised:
        lib.history(["IBM", "NOPE", "MSFT"])
    error = raised.value
    assert str(error).startswith("2 of 3 series failed: NOPE: NotFoundError: unknown symbol 'NOPE' or invalid call")
    assert "; MSFT: PremiumRequiredError: premium plan required" in str(error)
    assert {name: type(failure) for name, failure in error.failures.items()} == {
        "NOPE": errors.NotFoundError, "MSFT": errors.PremiumRequiredError}
    assert error.retryable is False
    assert list(error.frame.index.get_level_values("symbol").unique()) == ["IBM"] and len(error.frame) == 100

    caplog.set_level(logging.WARNING, logger="lib.series")
    skipped = lib.history(["IBM", "NOPE", "MSFT"], errors="skip")
    assert skipped.equals(error.frame)
    assert [record.getMessage().split(":")[:2] for record in caplog.records] == [
        ["lib.history", " NOPE skipped"], ["lib.history", " MSFT skipped"]]
    with pytest.raises(errors.NotFoundError):  # one name: its own error
        lib.history("NOPE")
    empty = lib.history("NOPE", errors="skip")
    assert empty.empty and list(empty.columns) == OHLCV


def test_a_spent_quota_stops_the_calls_and_never_shows_the_key(av, environment):
    av.fake.quota = 1
    with pytest.raises(lib.HistoryError) as raised:
        lib.history(["IBM", "AAPL", "MSFT"])
    failures = raised.value.failures
    assert list(failures) == ["AAPL", "MSFT"] and failures["AAPL"] is failures["MSFT"]
    assert isinstance(failures["AAPL"], errors.QuotaExhaustedError)
    assert len(av.fake.calls("MSFT")) == 0  # not asked once the upstream said the quota is spent
    assert KEY not in str(raised.value) and "25 requests per day" in str(raised.value)


def test_an_empty_list_gives_an_empty_frame_with_the_columns(environment):
    frame = lib.history([])
    assert frame.empty and list(frame.columns) == OHLCV
    assert frame.index.names == ["symbol", "timestamp"]


# -- weekly, monthly, adjusted --------------------------------------------------------------------------

def calendar(bars: list[lib.Bar], period: str) -> pd.DataFrame:
    """Daily bars aggregated with pandas, each period labelled with its last trading day as AlphaVantage does."""
    daily = lib.to_frame(bars).reset_index()
    keys = daily.timestamp.dt.isocalendar()[["year", "week"]] if period == "week" else \
        pd.DataFrame({"year": daily.timestamp.dt.year, "month": daily.timestamp.dt.month})
    grouped = daily.groupby([keys[column] for column in keys.columns], sort=True)
    frame = grouped.agg(timestamp=("timestamp", "last"), open=("open", "first"), high=("high", "max"),
                        low=("low", "min"), close=("close", "last"), volume=("volume", "sum"))
    return frame.set_index("timestamp")[OHLCV]


@pytest.mark.parametrize("interval, period, function, series_key", [
    ("1week", "week", "TIME_SERIES_WEEKLY", "Weekly Time Series"),
    ("monthly", "month", "TIME_SERIES_MONTHLY", "Monthly Time Series"),
])
def test_weekly_and_monthly_series_are_whole_and_equal_the_payload(av, environment, stock_bars, interval, period,
                                                                   function, series_key):
    frames = lib.history(["IBM", "AAPL"], interval=interval)
    assert [call["function"] for call in av.fake.calls()] == [function] * 2
    assert all("outputsize" not in call for call in av.fake.calls())
    for symbol in ("IBM", "AAPL"):
        frame = frames.loc[symbol]
        assert_same(frame, payload_frame(raw(av, function=function, symbol=symbol)[series_key]))
        assert_same(frame, calendar(stock_bars[symbol], period))
    assert frames.loc["IBM"].index[-1].date() == stock_bars["IBM"][-1].date  # the period in progress: its latest day
    since = TODAY - dt.timedelta(days=70)
    assert lib.history("IBM", start=since, interval=interval).index.min().date() >= since


def test_the_adjusted_daily_series_is_premium_and_a_plan_gets_adjusted_closes(av, environment, stock_bars):
    with pytest.raises(errors.PremiumRequiredError, match="This is a premium endpoint"):
        lib.history("IBM", adjusted=True)
    assert av.fake.calls("IBM")[-1]["function"] == "TIME_SERIES_DAILY_ADJUSTED"
    av.fake.premium_adjusted = False  # a key with a plan
    frame = lib.history("IBM", start=TODAY - dt.timedelta(days=30), adjusted=True)
    assert list(frame.columns) == OHLCV + ["adjusted_close"]
    expected = payload_frame(raw(av, function="TIME_SERIES_DAILY_ADJUSTED", symbol="IBM")["Time Series (Daily)"],
                             TODAY - dt.timedelta(days=30))
    assert_same(frame, expected)
    by_day = {bar.timestamp: bar.adjusted_close for bar in stock_bars["IBM"]}
    assert frame["adjusted_close"].tolist() == [by_day[stamp.to_pydatetime()] for stamp in frame.index]


def test_weekly_adjusted_is_free(av, environment, stock_bars):
    frame = lib.history("IBM", interval="1week", adjusted=True)
    assert av.fake.calls("IBM")[-1]["function"] == "TIME_SERIES_WEEKLY_ADJUSTED"
    weekly = calendar(stock_bars["IBM"], "week")
    assert_same(frame[OHLCV], weekly)
    by_day = {bar.timestamp: bar.adjusted_close for bar in stock_bars["IBM"]}
    assert frame["adjusted_close"].tolist() == [by_day[stamp.to_pydatetime()] for stamp in weekly.index]


def test_intraday_stock_bars(av, environment):
    frame = lib.history("IBM", start=NOW - dt.timedelta(minutes=60), interval="1min")
    assert av.fake.calls("IBM")[-1]["outputsize"] == "compact"
    minutes = [bar for bar in av.fake.intraday[("IBM", "1min")] if bar.timestamp >= NOW - dt.timedelta(minutes=60)]
    assert lib.from_frame(frame) == minutes
    lib.history("IBM", start=NOW - dt.timedelta(hours=5), interval="1min")
    assert av.fake.calls("IBM")[-1]["outputsize"] == "full"


# -- crypto markets -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def eth():
    return minute_bars("binance-eth", end=NOW, count=1500, start_price=3000, price_decimals=2)


@pytest.fixture(scope="module")
def btc():
    return minute_bars("kraken-btc", end=NOW, count=200, start_price=60000, price_decimals=1)


@pytest.fixture
def exchanges(eth, btc, monkeypatch):
    binance, kraken = FakeBinance(), FakeKraken()
    binance.add_klines("ETHUSDT", eth)
    kraken.add_ohlc("XXBTZUSD", btc)
    with FakeServer(binance) as binance_server, FakeServer(kraken) as kraken_server:
        monkeypatch.setenv("EXCHANGE_BASE_URLS", f"binance={binance_server.url},kraken={kraken_server.url}")
        monkeypatch.setenv("EXCHANGE_MIN_INTERVAL", "0")
        yield binance, kraken


def test_a_market_pages_through_the_exchanges_candle_cap(exchanges, eth):
    binance, _ = exchanges
    start = NOW - dt.timedelta(minutes=1400)
    frame = lib.history("binance:ETH/USDT", start=start, interval="1min")
    assert lib.from_frame(frame) == [bar for bar in eth if bar.timestamp >= start][:-1]  # the open candle left out
    assert [int(query["limit"]) for _, query in binance.calls("/klines")] == [1000, 1000]  # two pages of the cap


def test_a_market_range_with_an_end(exchanges, eth):
    start, end = eth[100].timestamp, eth[159].timestamp + dt.timedelta(seconds=10)
    frame = lib.history("binance:ethusdt", start=start, end=end, interval="1min")
    assert lib.from_frame(frame) == eth[100:160]


def test_stocks_and_markets_in_one_frame(av, environment, exchanges, btc):
    frame = lib.history(["kraken:xbtusd", "IBM"], start=NOW - dt.timedelta(minutes=30), interval="1min")
    assert list(frame.index.get_level_values("symbol").unique()) == ["kraken:xbtusd", "IBM"]  # as written
    expected = [bar for bar in btc if bar.timestamp >= NOW - dt.timedelta(minutes=30)][:-1]
    assert lib.from_frame(frame.loc["kraken:xbtusd"]) == expected
    assert len(frame.loc["IBM"]) == 30


def test_no_start_gives_the_latest_100_candles(exchanges, btc):
    assert lib.from_frame(lib.history("kraken:btcusd", interval="1min")) == btc[-101:-1]


def test_a_delisted_kraken_pair_is_not_found(exchanges):
    _, kraken = exchanges
    kraken.scenarios["XXBTZUSD"] = "delisted"
    with pytest.raises(errors.NotFoundError, match="unknown market: the exchange no longer lists it"):
        lib.history("kraken:btcusd", interval="1min")
    with pytest.raises(errors.NotFoundError, match="no spot market 'dogeusd'"):
        lib.history("kraken:dogeusd", interval="1min")


def test_the_cryptowatch_source(monkeypatch):
    fake = FakeCryptowatch()
    bars = minute_bars("cw-btc", end=NOW, count=90, start_price=60000)
    fake.add_ohlc("kraken", "btcusd", bars)
    with FakeServer(fake) as server:
        monkeypatch.setenv("CRYPTOWATCH_BASE_URL", server.url)
        frame = lib.history("kraken:btcusd", start=bars[10].timestamp, interval="1min", source="cryptowatch")
    assert lib.from_frame(frame) == bars[10:-1]
    assert [path for path, _, _ in fake.requests] == ["/markets/kraken/btcusd", "/markets/kraken/btcusd/ohlc"]
