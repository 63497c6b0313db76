import copy
import datetime as dt

import pytest

from lib import errors
from lib.alphavantage import check_payload, daily_query, intraday_query, parse_daily, parse_intraday
from lib.bars import Bar, Interval
from tests.fakes import alphavantage as fake
from tests.fakes.series import daily_bars, minute_bars

UTC = dt.timezone.utc
END_DAY = dt.date(2026, 11, 20)
KEY = "K3YS3CR3T0000XYZ"


@pytest.fixture(scope="module")
def ibm_daily():
    return daily_bars("IBM", end=END_DAY, count=130, start_price=220.0)


@pytest.fixture(scope="module")
def ibm_minutes():
    return minute_bars("IBM-1min", end=dt.datetime(2026, 11, 20, 20, 59, 30, tzinfo=UTC), count=150,
                       start_price=220.0, volume_decimals=0)


# -- queries ----------------------------------------------------------------------------------------

def test_queries():
    assert daily_query("IBM") == {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "outputsize": "compact",
                                  "datatype": "json"}
    assert daily_query("IBM", "full", adjusted=True)["function"] == "TIME_SERIES_DAILY_ADJUSTED"
    assert intraday_query("IBM", "5m") == {"function": "TIME_SERIES_INTRADAY", "symbol": "IBM", "interval": "5min",
                                           "outputsize": "compact", "datatype": "json"}
    with pytest.raises(ValueError, match="outputsize"):
        daily_query("IBM", "huge")
    with pytest.raises(ValueError, match="intraday interval"):
        intraday_query("IBM", "daily")


# -- success bodies ---------------------------------------------------------------------------------

def test_rendered_daily_has_the_wire_shape(ibm_daily):
    body = fake.render_daily("IBM", ibm_daily)
    meta = body["Meta Data"]
    assert list(meta) == ["1. Information", "2. Symbol", "3. Last Refreshed", "4. Output Size", "5. Time Zone"]
    assert meta["4. Output Size"] == "Compact" and meta["5. Time Zone"] == "US/Eastern"
    assert meta["3. Last Refreshed"] == "2026-11-20"
    series = body["Time Series (Daily)"]
    assert len(series) == 100
    keys = list(series)
    assert keys == sorted(keys, reverse=True) and keys[0] == "2026-11-20"  # newest first
    row = series["2026-11-20"]
    assert list(row) == ["1. open", "2. high", "3. low", "4. close", "5. volume"]
    assert all(isinstance(v, str) for v in row.values())
    assert row["1. open"] == f"{ibm_daily[-1].open:.4f}" and len(row["1. open"].split(".")[1]) == 4
    assert row["5. volume"].isdigit()
    assert fake.render_daily("IBM", ibm_daily, "full")["Meta Data"]["4. Output Size"] == "Full size"


def test_parse_daily_round_trips_the_bars(ibm_daily):
    assert parse_daily(fake.render_daily("IBM", ibm_daily, "full"), symbol="IBM") == ibm_daily
    compact = parse_daily(fake.render_daily("IBM", ibm_daily), symbol="IBM")
    assert compact == ibm_daily[-100:]
    assert compact[0].timestamp < compact[-1].timestamp  # oldest first
    assert compact[-1].timestamp == dt.datetime(2026, 11, 20, tzinfo=UTC)


def test_parse_intraday_round_trips_the_bars(ibm_minutes):
    body = fake.render_intraday("IBM", ibm_minutes, "1min", "full")
    assert list(body["Meta Data"])[3:] == ["4. Interval", "5. Output Size", "6. Time Zone"]
    assert body["Meta Data"]["4. Interval"] == "1min"
    assert "Time Series (1min)" in body
    # 20:59 UTC on 20 Nov is 15:59 EST (UTC-5)
    assert next(iter(body["Time Series (1min)"])) == "2026-11-20 15:59:00"
    assert parse_intraday(body, "1min", symbol="IBM") == ibm_minutes
    assert parse_intraday(fake.render_intraday("IBM", ibm_minutes, "1min"), Interval.MIN1) == ibm_minutes[-100:]


def test_parse_intraday_needs_the_series_of_its_interval(ibm_minutes):
    body = fake.render_intraday("IBM", ibm_minutes, "1min")
    with pytest.raises(errors.MalformedPayloadError, match=r"Time Series \(5min\)"):
        parse_intraday(body, "5min")


def _intraday_body(rows):
    body = {"Meta Data": {"1. Information": "Intraday (60min) open, high, low, close prices and volume",
                          "2. Symbol": "IBM", "3. Last Refreshed": "2026-03-09 10:00:00", "4. Interval": "60min",
                          "5. Output Size": "Compact", "6. Time Zone": "US/Eastern"},
            "Time Series (60min)": {}}
    for stamp in rows:
        body["Time Series (60min)"][stamp] = {"1. open": "250.0000", "2. high": "251.0000", "3. low": "249.5000",
                                              "4. close": "250.5000", "5. volume": "12345"}
    return body


def test_intraday_daylight_saving_time():
    # US DST started on Sunday 2026-03-08: Friday 10:00 is EST (UTC-5), Monday 10:00 is EDT (UTC-4).
    bars = parse_intraday(_intraday_body(["2026-03-09 10:00:00", "2026-03-06 10:00:00"]), "60min")
    assert [b.timestamp for b in bars] == [dt.datetime(2026, 3, 6, 15, 0, tzinfo=UTC),
                                           dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)]
    assert bars[0].volume == 12345.0 and bars[0].close == 250.5


def test_fake_renders_utc_bars_as_eastern_wall_clock_across_dst():
    stamps = [dt.datetime(2026, 3, 6, 15, 0, tzinfo=UTC), dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)]
    bars = [Bar(timestamp=t, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0) for t in stamps]
    body = fake.render_intraday("IBM", bars, "60min")
    assert list(body["Time Series (60min)"]) == ["2026-03-09 10:00:00", "2026-03-06 10:00:00"]


def test_adjusted_rows_take_volume_from_field_6_and_keep_the_adjusted_close():
    row = {"1. open": "122.6700", "2. high": "122.8000", "3. low": "121.0600", "4. close": "121.7900",
           "5. adjusted close": "118.1234", "6. volume": "2538547", "7. dividend amount": "1.6300",
           "8. split coefficient": "1.0000"}
    body = {"Meta Data": {"1. Information": "Daily Time Series with Splits and Dividend Events",
                          "2. Symbol": "IBM", "3. Last Refreshed": "2020-05-08 14:07:03",
                          "4. Output Size": "Compact", "5. Time Zone": "US/Eastern"},
            "Time Series (Daily)": {"2020-05-08": row}}
    [b] = parse_daily(body)
    assert b == Bar(timestamp=dt.datetime(2020, 5, 8, tzinfo=UTC), open=122.67, high=122.8, low=121.06,
                    close=121.79, volume=2538547.0, adjusted_close=118.1234)


def test_fake_adjusted_render_round_trips(ibm_daily):
    body = fake.render_daily("IBM", ibm_daily, "full", adjusted=True)
    assert list(body["Time Series (Daily)"]["2026-11-20"])[4:] == [
        "5. adjusted close", "6. volume", "7. dividend amount", "8. split coefficient"]
    parsed = parse_daily(body)
    assert [b.close for b in parsed] == [b.adjusted_close for b in parsed] == [b.close for b in ibm_daily]
    assert [b.volume for b in parsed] == [b.volume for b in ibm_daily]


# -- error bodies -----------------------------------------------------------------------------------

ERROR_BODIES = [
    ("unknown symbol", {"Error Message": fake.invalid_call_message("TIME_SERIES_DAILY")}, errors.NotFoundError),
    ("bad apikey", {"Error Message": fake.APIKEY_MESSAGE}, errors.AuthenticationError),
    ("unknown function", {"Error Message": fake.unknown_function_message("FOO")}, errors.BadRequestError),
    ("premium endpoint", {"Information": fake.PREMIUM_ENDPOINT_MESSAGE}, errors.PremiumRequiredError),
    ("premium outputsize", {"Information": fake.PREMIUM_FULL_MESSAGE}, errors.PremiumRequiredError),
    ("demo key", {"Information": fake.DEMO_MESSAGE}, errors.AuthenticationError),
    ("legacy note", {"Note": fake.NOTE_MESSAGE}, errors.RateLimitedError),
    ("burst", {"Information": fake.BURST_MESSAGE}, errors.RateLimitedError),
    ("daily quota", {"Information": fake.QUOTA_MESSAGE.format(key=KEY)}, errors.QuotaExhaustedError),
    ("daily quota variant", {"Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 "
                                            "requests per day. Please subscribe to any of the premium plans at "
                                            "https://www.alphavantage.co/premium/ to instantly remove all daily "
                                            "rate limits."}, errors.QuotaExhaustedError),
    ("empty object", {}, errors.NotFoundError),
    ("empty quote", {"Global Quote": {}}, errors.NotFoundError),
]


@pytest.mark.parametrize("case, body, expected", ERROR_BODIES, ids=[c[0] for c in ERROR_BODIES])
def test_every_error_body_is_classified(case, body, expected):
    for parse in (lambda p: parse_daily(p, symbol="IBM"), lambda p: parse_intraday(p, "1min", symbol="IBM")):
        with pytest.raises(expected) as info:
            parse(copy.deepcopy(body))
        assert type(info.value) is expected
        assert info.value.source == "alphavantage" and info.value.symbol == "IBM"


def test_retryability_of_the_notices():
    def error_of(body):
        with pytest.raises(errors.MarketDataError) as info:
            check_payload(body, api_key=KEY)
        return info.value

    burst = error_of({"Information": fake.BURST_MESSAGE})
    assert burst.retryable and burst.retry_after == 1.0  # although it says "25 requests per day"
    assert error_of({"Note": fake.NOTE_MESSAGE}).retryable
    for body in ({"Information": fake.PREMIUM_ENDPOINT_MESSAGE}, {"Information": fake.PREMIUM_FULL_MESSAGE},
                 {"Information": fake.QUOTA_MESSAGE.format(key=KEY)}):
        err = error_of(body)
        assert not err.retryable and isinstance(err, errors.PermanentError)


def test_quota_message_has_the_key_redacted():
    body = {"Information": fake.QUOTA_MESSAGE.format(key=KEY)}
    with pytest.raises(errors.QuotaExhaustedError) as info:
        check_payload(body, symbol="IBM", api_key=KEY)
    assert KEY not in str(info.value) and "***" in str(info.value)
    assert "25 requests per day" in str(info.value)
    # Even a caller that does not pass the key (the parse functions) gets it redacted.
    with pytest.raises(errors.QuotaExhaustedError) as info:
        parse_daily(body)
    assert KEY not in str(info.value) and "detected your API key as ***" in str(info.value)


def test_missing_series_is_malformed(ibm_daily):
    body = fake.render_daily("IBM", ibm_daily)
    del body["Time Series (Daily)"]
    with pytest.raises(errors.MalformedPayloadError, match=r"no 'Time Series \(Daily\)' object \(found Meta Data\)"):
        parse_daily(body, symbol="IBM")


def test_bad_number_is_malformed(ibm_daily):
    body = fake.render_daily("IBM", ibm_daily)
    body["Time Series (Daily)"]["2026-11-19"]["1. open"] = "n/a"
    with pytest.raises(errors.MalformedPayloadError, match=r"row 2026-11-19 field '1. open' is not a number: 'n/a'"):
        parse_daily(body)


@pytest.mark.parametrize("value, message", [
    ("NaN", "must be a finite non-negative number"), ("-3.0000", "must be a finite non-negative number"),
    (None, "is missing"), (True, "is missing"),
])
def test_impossible_numbers_are_malformed(ibm_daily, value, message):
    body = fake.render_daily("IBM", ibm_daily)
    body["Time Series (Daily)"]["2026-11-19"]["4. close"] = value
    with pytest.raises(errors.MalformedPayloadError, match=message):
        parse_daily(body)


def test_missing_field_and_inverted_range_are_malformed(ibm_daily):
    body = fake.render_daily("IBM", ibm_daily)
    del body["Time Series (Daily)"]["2026-11-19"]["5. volume"]
    with pytest.raises(errors.MalformedPayloadError, match="'5. volume' is missing"):
        parse_daily(body)
    body = fake.render_daily("IBM", ibm_daily)
    body["Time Series (Daily)"]["2026-11-19"].update({"2. high": "1.0000", "3. low": "2.0000"})
    with pytest.raises(errors.MalformedPayloadError, match="above its high"):
        parse_daily(body)


@pytest.mark.parametrize("key", ["2026-13-01", "yesterday", "2026/11/19"])
def test_bad_date_is_malformed(ibm_daily, key):
    body = fake.render_daily("IBM", ibm_daily)
    body["Time Series (Daily)"][key] = body["Time Series (Daily)"].pop("2026-11-19")
    with pytest.raises(errors.MalformedPayloadError, match="bad date"):
        parse_daily(body)


def test_bad_intraday_timestamp_and_row_are_malformed():
    body = _intraday_body(["2026-03-09 10:00"])
    with pytest.raises(errors.MalformedPayloadError, match="bad timestamp '2026-03-09 10:00'"):
        parse_intraday(body, "60min")
    body = _intraday_body(["2026-03-09 10:00:00"])
    body["Time Series (60min)"]["2026-03-09 10:00:00"] = ["250.0", "251.0"]
    with pytest.raises(errors.MalformedPayloadError, match="is not an object"):
        parse_intraday(body, "60min")


@pytest.mark.parametrize("payload", [None, [], ["Time Series (Daily)"], "Error", 42])
def test_non_object_is_malformed(payload):
    with pytest.raises(errors.MalformedPayloadError, match="expected a JSON object"):
        parse_daily(payload)
