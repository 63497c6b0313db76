"""lib.cryptowatch's offline steps: the OHLC query, reading responses (errors first), parsing the wire format.

Payloads are the documented shapes (reference B.2), written here or rendered by the fake's own renderer.
"""
import datetime as dt

import pytest

import lib
from lib import errors
from lib.cryptowatch import (Allowance, Summary, check_response, market_info, ohlc_query, parse_allowance,
                             parse_market, parse_ohlc, parse_price, parse_summary)
from lib.http import Response
from tests.fakes.cryptowatch import render_ohlc
from tests.fakes.series import minute_bars

UTC = dt.timezone.utc


def test_ohlc_query_takes_periods_and_close_time_bounds():
    after, before = dt.datetime(2030, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 2, tzinfo=UTC)
    assert ohlc_query([lib.Interval.MIN1, 3600], after=after, before=before) == {
        "periods": "60,3600", "after": str(int(after.timestamp())), "before": str(int(before.timestamp()))}
    assert ohlc_query() == {"periods": "60"}
    assert ohlc_query([86400], after=1700000000) == {"periods": "86400", "after": "1700000000"}


@pytest.mark.parametrize("periods", [[], [61], [60, 120]])
def test_ohlc_query_refuses_unknown_periods(periods):
    with pytest.raises(ValueError, match="periods must be among 60, 180"):
        ohlc_query(periods)


def test_ohlc_query_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="timezone-aware"):
        ohlc_query(after=dt.datetime(2030, 1, 1))


def test_bars_start_one_period_before_their_close_time():
    bars = minute_bars("btc", end=dt.datetime(2030, 1, 1, 12, 0, tzinfo=UTC), count=5, start_price=60000)
    result, allowance = check_response(Response(200, {}, render_ohlc(bars)))
    assert parse_ohlc(result, lib.Interval.MIN1) == bars
    assert allowance == Allowance(cost=0.015, remaining=9.985, upgrade="For unlimited API access, create an account "
                                                                       "at https://cryptowat.ch")
    hourly = {"3600": [[1893499200, 1.5, 2.0, 1.0, 1.75, 10.0, 17.5]]}  # close 2030-01-01 12:00 UTC
    [bar] = parse_ohlc(hourly, 3600)
    assert bar == lib.Bar(dt.datetime(2030, 1, 1, 11, 0, tzinfo=UTC), 1.5, 2.0, 1.0, 1.75, 10.0)


def test_old_six_field_rows_and_missing_periods():
    assert parse_ohlc({"60": [[1893499200, 1, 2, 0.5, 1.5, 7]]}, 60)[0].volume == 7.0
    assert parse_ohlc({"3600": []}, 60) == []


@pytest.mark.parametrize("result, message", [
    ([], "the OHLC result is not an object"),
    ({"60": {}}, "OHLC period 60 is not a list"),
    ({"60": [[1893499200, 1, 2, 0.5]]}, "OHLC row 0 is not a list of 6 or 7 numbers"),
    ({"60": [[1893499200, "1", 2, 0.5, 1.5, 7, 1]]}, "row 0 field open is not a number: '1'"),
    ({"60": [[1893499200, 1, 2, 0.5, None, 7, 1]]}, "row 0 field close is not a number: None"),
    ({"60": [[1893499200, 1, 0.5, 2, 1.5, 7, 1]]}, "OHLC row 0: bar low 2.0 is above its high 0.5"),
    ({"60": [[1893499200, -1, 2, 0.5, 1.5, 7, 1]]}, "bar open must be a finite non-negative number"),
])
def test_malformed_ohlc_is_a_permanent_error_naming_the_problem(result, message):
    with pytest.raises(errors.MalformedPayloadError, match="malformed Cryptowatch payload for kraken:btcusd") as raised:
        parse_ohlc(result, 60, what="kraken:btcusd")
    assert message in str(raised.value)
    assert not raised.value.retryable


@pytest.mark.parametrize("status, body, error, text", [
    (404, {"error": "Instrument not found"}, errors.NotFoundError, "cryptowatch: kraken:nope: Instrument not found"),
    (404, {"error": "Exchange not found"}, errors.NotFoundError, "cryptowatch: kraken:nope: Exchange not found"),
    (404, None, errors.NotFoundError, "cryptowatch: kraken:nope: HTTP 404"),
    (400, {"error": "Unkown sort parameter"}, errors.BadRequestError, "Unkown sort parameter"),
    (401, {"error": "Invalid API key"}, errors.AuthenticationError, "Invalid API key"),
    (200, {"allowance": {"cost": 0.001, "remaining": 1}}, errors.MalformedPayloadError,
     "no 'result' in the response (found allowance)"),
    (200, [1, 2], errors.MalformedPayloadError, "(found list)"),
])
def test_error_statuses_and_bodies_become_typed_errors(status, body, error, text):
    with pytest.raises(error) as raised:
        check_response(Response(status, {}, body), what="kraken:nope")
    assert text in str(raised.value)
    assert type(raised.value) is error


def test_allowance_in_both_eras_and_with_a_key():
    assert parse_allowance({"cost": 16767, "remaining": 1999983233}) == Allowance(16767.0, 1999983233.0)
    keyed = parse_allowance({"cost": 0.003, "remaining": 9.572, "remainingPaid": 0, "account": "a-uuid"})
    assert keyed == Allowance(0.003, 9.572, remaining_paid=0.0, account="a-uuid")
    assert parse_allowance(None) is None
    assert parse_allowance({"cost": "x", "remaining": True}) == Allowance(None, None)


def test_market_price_and_summary():
    assert parse_market({"id": 1, "exchange": "kraken", "pair": "btcusd", "active": True, "routes": {}}) == \
        market_info("kraken", "btcusd") == lib.MarketInfo("kraken", "btcusd", "BTC", "USD", "BTC/USD on Kraken",
                                                          source_symbol="btcusd")
    assert parse_market({"exchange": "kraken", "pair": "abcxyz", "active": False}).active is False
    assert parse_price({"price": 17536.1}) == 17536.1
    summary = {"price": {"last": 100.5, "high": 110, "low": 95, "change": {"percentage": -0.0070, "absolute": -0.7}},
               "volume": 12.5, "volumeQuote": 1250.0}
    assert parse_summary(summary) == Summary(100.5, 110.0, 95.0, -0.007, -0.7, 12.5, 1250.0)
    for bad in ({"price": {"last": 1}}, {"exchange": "kraken"}, []):
        with pytest.raises(errors.MalformedPayloadError):
            (parse_summary if bad != {"exchange": "kraken"} else parse_market)(bad)
    with pytest.raises(errors.MalformedPayloadError, match="price is not a number: '1.0'"):
        parse_price({"price": "1.0"})
