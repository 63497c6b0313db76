"""lib.history's arguments, its AlphaVantage output-size choice and lib.Settings, without any upstream.

Bad arguments must fail before any call: these tests give settings pointing at a closed port, so a call
would show up as a NetworkError instead of the ValueError expected.
"""
import datetime as dt
import socket
from pathlib import Path

import numpy as np
import pytest

import lib
from lib import errors
from lib.series import WEEK, MONTH, daily_outputsize, intraday_outputsize, parse_bound, parse_period, weekdays

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def nowhere() -> lib.Settings:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    return lib.Settings(alphavantage_api_key="k", alphavantage_base_url=url, cryptowatch_base_url=url,
                        exchange_base_urls={"kraken": url})


@pytest.mark.parametrize("text, period", [
    ("1day", lib.Interval.DAY), ("daily", lib.Interval.DAY), ("1min", lib.Interval.MIN1), ("1h", lib.Interval.MIN60),
    (lib.Interval.MIN5, lib.Interval.MIN5), ("1week", WEEK), ("Weekly", WEEK), ("1wk", WEEK), ("1month", MONTH),
    ("monthly", MONTH), ("1mo", MONTH),
])
def test_periods(text, period):
    assert parse_period(text) == period


def test_an_unknown_period_lists_every_choice():
    with pytest.raises(ValueError, match="unknown interval '2day'; expected one of 1min, 5min, 15min, 30min, 60min, "
                                         "1day, 1week, 1month"):
        parse_period("2day")


def test_weekly_and_monthly_are_not_intervals_the_service_could_store():
    assert [interval.value for interval in lib.Interval] == ["1min", "5min", "15min", "30min", "60min", "1day"]
    with pytest.raises(ValueError, match="unknown interval '1week'"):
        lib.Interval.parse("1week")


@pytest.mark.parametrize("value, end, expected", [
    (dt.date(2026, 1, 5), False, dt.datetime(2026, 1, 5, tzinfo=UTC)),
    (dt.date(2026, 1, 5), True, dt.datetime(2026, 1, 5, 23, 59, 59, 999999, tzinfo=UTC)),  # the whole end day
    ("2026-01-05", True, dt.datetime(2026, 1, 5, 23, 59, 59, 999999, tzinfo=UTC)),
    ("2026-01-05T14:30", True, dt.datetime(2026, 1, 5, 14, 30, tzinfo=UTC)),  # naive means UTC
    ("2026-01-05T14:30:00+01:00", False, dt.datetime(2026, 1, 5, 13, 30, tzinfo=UTC)),
    (dt.datetime(2026, 1, 5, 9), False, dt.datetime(2026, 1, 5, 9, tzinfo=UTC)),
    (None, True, None),
])
def test_bounds(value, end, expected):
    bound = parse_bound(value, end=end)
    assert bound == expected and (bound is None or bound.utcoffset() == dt.timedelta(0))


def test_a_pandas_timestamp_is_a_datetime_bound():
    import pandas as pd
    assert parse_bound(pd.Timestamp("2026-01-05 10:00", tz="Europe/Paris")) == dt.datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_weekdays_match_numpy():
    start = dt.date(2025, 12, 1)
    for first_offset in range(9):
        for length in range(-2, 30):
            first = start + dt.timedelta(days=first_offset)
            last = first + dt.timedelta(days=length)
            expected = int(np.busday_count(first, last + dt.timedelta(days=1))) if length >= 0 else 0
            assert weekdays(first, last) == expected, (first, last)


def test_compact_is_chosen_only_when_it_holds_the_whole_range():
    now = dt.datetime(2026, 3, 6, 15, tzinfo=UTC)  # a Friday
    # 100 weekdays back from Friday 2026-03-06 start on Monday 2025-10-20.
    assert weekdays(dt.date(2025, 10, 20), now.date()) == 100
    assert daily_outputsize(dt.datetime(2025, 10, 20, tzinfo=UTC), now) == "compact"
    assert daily_outputsize(dt.datetime(2025, 10, 17, tzinfo=UTC), now) == "full"
    assert daily_outputsize(None, now) == "compact"
    minute = lib.Interval.MIN1
    assert intraday_outputsize(now - dt.timedelta(minutes=100), minute, now) == "compact"
    assert intraday_outputsize(now - dt.timedelta(minutes=101), minute, now) == "full"
    assert intraday_outputsize(now - dt.timedelta(hours=8), lib.Interval.MIN5, now) == "compact"


@pytest.mark.parametrize("call, message", [
    (dict(names="I B M"), "'I B M' is not a valid symbol"),
    (dict(names=["IBM", "bad symbol", "kraken:"]), "'bad symbol' is not a valid symbol; 'kraken:' is not a market"),
    (dict(names=[42]), "a name must be a str"),
    (dict(names="IBM", interval="2h"), "unknown interval '2h'"),
    (dict(names="IBM", start="2026-02-01", end="2026-01-01"), "start 2026-02-01T00:00:00+00:00 is after end"),
    (dict(names="IBM", start="yesterday"), "'yesterday' is not a date or time"),
    (dict(names="IBM", source="yahoo"), "unknown source 'yahoo'"),
    (dict(names="IBM", source="cryptowatch"), "'IBM' is a stock symbol; source='cryptowatch' serves crypto"),
    (dict(names="kraken:btcusd", source="alphavantage"), "'kraken:btcusd' is a crypto market"),
    (dict(names="kraken:btcusd", interval="1week"), "kraken:btcusd: interval 1week is for stock symbols"),
    (dict(names="kraken:btcusd", adjusted=True), "kraken:btcusd: adjusted=True is for stock symbols"),
    (dict(names="IBM", interval="1min", adjusted=True), "adjusted=True is for 1day, 1week and 1month"),
    (dict(names="IBM", errors="ignore"), "errors must be 'raise' or 'skip'"),
])
def test_bad_arguments_fail_before_any_call(nowhere, call, message):
    with pytest.raises(ValueError) as raised:
        lib.history(**call, settings=nowhere)
    assert message in str(raised.value)


def test_a_bound_of_another_type_is_a_type_error(nowhere):
    with pytest.raises(TypeError, match="a range bound must be a date, a datetime or an ISO string, got int"):
        lib.history("IBM", start=20260101, settings=nowhere)


def test_without_a_key_stock_series_say_how_to_set_one(nowhere):
    with pytest.raises(errors.ConfigurationError, match="set ALPHAVANTAGE_API_KEY"):
        lib.history("IBM", settings=lib.Settings(alphavantage_base_url=nowhere.alphavantage_base_url))


def test_settings_from_the_services_variables(tmp_path):
    environ = {"ALPHAVANTAGE_API_KEY": " secret ", "ALPHAVANTAGE_BASE_URL": "http://127.0.0.1:9",
               "ALPHAVANTAGE_MIN_INTERVAL": "0.5", "CRYPTOWATCH_API_KEY": "", "CRYPTOWATCH_BASE_URL": "https://cw.test",
               "EXCHANGE_BASE_URLS": "kraken=http://127.0.0.1:8001, binance=http://127.0.0.1:8002/",
               "EXCHANGE_MIN_INTERVAL": "0", "LIB_CACHE_DIR": str(tmp_path), "LIB_CACHE_EXPIRE": "60"}
    settings = lib.Settings.from_env(environ)
    assert settings == lib.Settings(
        alphavantage_api_key="secret", alphavantage_base_url="http://127.0.0.1:9", alphavantage_min_interval=0.5,
        cryptowatch_base_url="https://cw.test",
        exchange_base_urls={"kraken": "http://127.0.0.1:8001", "binance": "http://127.0.0.1:8002"},
        exchange_min_interval=0.0, cache_dir=tmp_path, cache_expire=60.0)
    assert "secret" not in repr(settings)
    assert lib.Settings.from_env({}) == lib.Settings()
    override = lib.Settings.from_env(environ, alphavantage_api_key="other", cache_dir="~/x")
    assert override.alphavantage_api_key == "other" and override.cache_dir == Path("~/x").expanduser()
    with pytest.raises(TypeError, match="unknown settings: api_key"):
        lib.Settings.from_env({}, api_key="x")


@pytest.mark.parametrize("variable, value, message", [
    ("ALPHAVANTAGE_BASE_URL", "ftp://x", "ALPHAVANTAGE_BASE_URL must start with http:// or https://"),
    ("ALPHAVANTAGE_MIN_INTERVAL", "fast", "ALPHAVANTAGE_MIN_INTERVAL must be a number of seconds between 0 and 60"),
    ("EXCHANGE_MIN_INTERVAL", "nan", "EXCHANGE_MIN_INTERVAL must be a number of seconds"),
    ("EXCHANGE_MIN_INTERVAL", "61", "EXCHANGE_MIN_INTERVAL must be a number of seconds"),
    ("EXCHANGE_BASE_URLS", "kraken", "EXCHANGE_BASE_URLS: 'kraken' is not exchange=http(s)://"),
    ("LIB_CACHE_EXPIRE", "0", "LIB_CACHE_EXPIRE must be a positive number of seconds, got '0'"),
])
def test_bad_settings_name_the_variable(variable, value, message):
    with pytest.raises(errors.ConfigurationError) as raised:
        lib.Settings.from_env({variable: value})
    assert str(raised.value).startswith(message)


def test_history_error_keeps_each_failure():
    failures = {"AAPL": errors.NotFoundError("unknown symbol 'AAPL'"), "MSFT": errors.RateLimitedError("slow down")}
    error = lib.HistoryError(failures, asked=3, frame="partial")
    assert str(error) == "2 of 3 series failed: AAPL: NotFoundError: unknown symbol 'AAPL'; MSFT: RateLimitedError: " \
                         "slow down"
    assert error.failures == failures and error.frame == "partial" and error.retryable is False
    assert lib.HistoryError({"MSFT": failures["MSFT"]}, asked=1).retryable is True
    assert isinstance(error, lib.MarketDataError)
