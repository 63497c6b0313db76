"""`/api/metrics/{id}/candles` on both stacks: candles downsampled in SQL equal pandas' resampling of the same
bars (first open, max high, min low, last close, summed volume, buckets aligned on the epoch), never more
than `points` of them, the range back from the newest bar, coarser candles read from finer bars; errors."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import lib
from financial.services import candles
from tests.fakes.series import daily_bars, minute_bars
from tests.seed import assert_bad_request, store, store_crypto, today_utc

UTC = dt.timezone.utc
END = dt.datetime(2026, 3, 4, 17, 23, tzinfo=UTC)  # a pinned moment: bucket edges never depend on today


def instrument_id(client, symbol: str) -> int:
    return next(item["id"] for item in client.get("/api/metrics").get_json()["data"] if item["symbol"] == symbol)


def resampled(bars, width_seconds: int, *, after: dt.datetime | None = None) -> list[dict]:
    """What the endpoint must return, computed by pandas from the bars themselves."""
    frame = pd.DataFrame([{"time": bar.timestamp, "open": bar.open, "high": bar.high, "low": bar.low,
                           "close": bar.close, "volume": bar.volume} for bar in bars
                          if after is None or bar.timestamp > after]).set_index("time")
    grouped = frame.resample(f"{width_seconds}s", origin="epoch", closed="left", label="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna(subset=["open"])
    figures = ("open", "high", "low", "close", "volume")
    return [{"time": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"), **{key: float(row[key]) for key in figures}}
            for stamp, row in grouped.iterrows()]


def same_candles(got: list[dict], want: list[dict]) -> None:
    assert [candle["time"] for candle in got] == [candle["time"] for candle in want]
    for mine, theirs in zip(got, want):
        for key in ("open", "high", "low", "close"):
            assert mine[key] == theirs[key], (mine["time"], key)
        assert mine["volume"] == pytest.approx(theirs["volume"], rel=1e-12)


@pytest.fixture
def minutes(app):
    bars = minute_bars("candles", end=END, count=3 * 1440, start_price=200.0)
    store_crypto(app, bars, "kraken", "btcusd", base="BTC", quote="USD", name="BTC/USD on Kraken",
                 interval=lib.Interval.MIN1)
    return bars


def test_a_day_of_minutes_in_at_most_100_candles_is_15_minute_candles(client, minutes):
    body = client.get(f"/api/metrics/{instrument_id(client, 'btcusd')}/candles?range=1d&points=100").get_json()
    data = body["data"]
    newest = minutes[-1].timestamp
    # 10-minute candles would need 145 of them; 15-minute ones need 97 (a day plus the edge buckets).
    assert data["bucket_seconds"] == 900 and len(data["candles"]) <= 100
    same_candles(data["candles"], resampled(minutes, 900, after=newest - dt.timedelta(days=1)))
    assert data["bars"] == 1440 and data["last_time"] == newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {key: data[key] for key in ("asset_class", "exchange", "symbol", "name", "intervals", "interval",
                                       "source_interval", "range")} == {
        "asset_class": "crypto", "exchange": "kraken", "symbol": "btcusd", "name": "BTC/USD on Kraken",
        "intervals": ["1min"], "interval": "1min", "source_interval": "1min", "range": "1d"}


def test_candles_that_fit_are_the_bars_themselves(client, minutes):
    data = client.get(f"/api/metrics/{instrument_id(client, 'btcusd')}/candles?range=1d&points=2000"
                      ).get_json()["data"]
    day = [bar for bar in minutes if bar.timestamp > minutes[-1].timestamp - dt.timedelta(days=1)]
    assert data["bucket_seconds"] == 60 and len(data["candles"]) == 1440
    same_candles(data["candles"], [{"time": bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "open": bar.open,
                                    "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume}
                                   for bar in day])


@pytest.mark.parametrize("interval, seconds", [("5min", 300), ("60min", 3600), ("1day", 86400)])
def test_coarser_candles_are_made_of_the_stored_minutes(client, minutes, interval, seconds):
    data = client.get(f"/api/metrics/{instrument_id(client, 'btcusd')}/candles?interval={interval}&points=2000"
                      ).get_json()["data"]
    assert data["interval"] == interval and data["source_interval"] == "1min" and data["bucket_seconds"] == seconds
    same_candles(data["candles"], resampled(minutes, seconds))


def test_daily_bars_over_long_ranges_are_bounded(app, client):
    bars = daily_bars("IBM", end=today_utc() - dt.timedelta(days=1), count=3 * 261)
    store(app, bars, "IBM")
    url = f"/api/metrics/{instrument_id(client, 'IBM')}/candles"
    year = client.get(f"{url}?range=1y").get_json()["data"]
    newest = bars[-1].timestamp
    assert year["bucket_seconds"] == 86400 and year["source_interval"] == "1day"
    same_candles(year["candles"], resampled(bars, 86400, after=newest - dt.timedelta(days=365)))
    # About 1,090 days of bars: 14-day candles would be 79 (over 50), 28-day ones 40; 91-day ones 13 (over 10).
    for points, width in ((50, 28 * 86400), (10, 182 * 86400)):
        data = client.get(f"{url}?range=all&points={points}").get_json()["data"]
        assert len(data["candles"]) <= points and data["bucket_seconds"] == width
        same_candles(data["candles"], resampled(bars, width))
        assert sum(candle["volume"] for candle in data["candles"]) == pytest.approx(sum(bar.volume for bar in bars))


def test_the_width_grows_to_the_smallest_round_width_that_fits():
    first = dt.datetime(2026, 1, 1)
    assert candles.bucket_width(60, first, first + dt.timedelta(minutes=499), 500) == 60
    assert candles.bucket_width(60, first, first + dt.timedelta(minutes=500), 500) == 120
    assert candles.bucket_width(86400, first, first + dt.timedelta(days=3650), 500) == 14 * 86400
    # beyond the round widths: whole multiples of the longest (364 days), still within the bound
    width = candles.bucket_width(60, dt.datetime(1000, 1, 1), dt.datetime(9999, 1, 1), 10)
    assert width % (364 * 86400) == 0
    assert candles.bucket_count(dt.datetime(1000, 1, 1), dt.datetime(9999, 1, 1), width) <= 10


def test_errors_name_the_parameter(client, minutes):
    url = f"/api/metrics/{instrument_id(client, 'btcusd')}/candles"
    assert_bad_request(client.get(f"{url}?range=2w"), "range")
    assert_bad_request(client.get(f"{url}?points=9"), "points")
    assert_bad_request(client.get(f"{url}?points=2001"), "points")
    assert_bad_request(client.get(f"{url}?interval=2min"), "interval")
    assert_bad_request(client.get(f"{url}?window=24h"), "window")
    for missing_id in (999999, 988822158490041712640):  # the second is beyond any integer column
        missing = client.get(f"/api/metrics/{missing_id}/candles")
        assert missing.status_code == 404
        assert missing.get_json() == {"data": None, "info": {"error": f"no tracked instrument with id {missing_id}"}}


def test_an_interval_finer_than_the_stored_bars_is_not_found(app, client):
    """A valid interval the instrument's bars cannot make is a 404 (no such candles), not a 400: nothing in
    the request is malformed, and the spec cannot know which intervals each instrument stores."""
    store(app, daily_bars("AAPL", end=today_utc(), count=5), "AAPL")
    response = client.get(f"/api/metrics/{instrument_id(client, 'AAPL')}/candles?interval=1min")
    assert response.status_code == 404
    assert response.get_json() == {"data": None, "info": {
        "error": "interval: no 1min candles for this instrument: its finest stored bars are 1day"}}


def test_an_instrument_without_bars_has_no_candles(app, client):
    from financial import storage
    from financial.extensions import db
    from financial.models import AssetClass
    with app.app_context():
        instrument = storage.instruments.get_or_create(db.session, AssetClass.STOCK, "NEW")
        db.session.commit()
        new_id = instrument.id
    data = client.get(f"/api/metrics/{new_id}/candles").get_json()["data"]
    assert data["candles"] == [] and data["intervals"] == [] and data["bucket_seconds"] is None


def test_candles_are_cached_and_revalidated(app, client, minutes):
    url = f"/api/metrics/{instrument_id(client, 'btcusd')}/candles?range=1d"
    first = client.get(url)
    assert first.headers["Cache-Control"] == "no-cache" and first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    store_crypto(app, minute_bars("more", end=END + dt.timedelta(minutes=5), count=1, start_price=1.0), "kraken",
                 "btcusd", interval=lib.Interval.MIN1)
    changed = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]
    assert changed.get_json()["data"]["last_time"] == "2026-03-04T17:28:00Z"
