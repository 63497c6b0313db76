import datetime as dt
import math

import pytest

from lib.bars import Bar, Interval, day_start, utc
from tests.fakes.series import daily_bars, minute_bars

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("1min", Interval.MIN1), ("1m", Interval.MIN1), (" 1MIN ", Interval.MIN1),
    ("5m", Interval.MIN5), ("15min", Interval.MIN15), ("30m", Interval.MIN30),
    ("60min", Interval.MIN60), ("1h", Interval.MIN60), ("60m", Interval.MIN60),
    ("1day", Interval.DAY), ("daily", Interval.DAY), ("1d", Interval.DAY), ("Day", Interval.DAY),
])
def test_interval_parse_accepts_canonical_names_and_aliases(text, expected):
    assert Interval.parse(text) is expected


@pytest.mark.parametrize("text", ["", "2min", "weekly", "1w", "minute", "1 min"])
def test_interval_parse_rejects_unknown_spellings_and_lists_the_choices(text):
    with pytest.raises(ValueError) as info:
        Interval.parse(text)
    assert repr(text) in str(info.value)
    assert "1min, 5min, 15min, 30min, 60min, 1day" in str(info.value)


def test_interval_properties():
    assert [i.seconds for i in Interval] == [60, 300, 900, 1800, 3600, 86400]
    assert [i.is_intraday for i in Interval] == [True] * 5 + [False]
    assert str(Interval.MIN5) == "5min"
    assert Interval.parse(str(Interval.MIN15)) is Interval.MIN15


def bar(**overrides):
    fields = dict(timestamp=T0, open=10.0, high=12.0, low=9.0, close=11.0, volume=1000.0)
    fields.update(overrides)
    return Bar(**fields)


def test_valid_bar_keeps_its_values_and_date():
    b = bar(adjusted_close=10.5)
    assert (b.open, b.high, b.low, b.close, b.volume, b.adjusted_close, b.market_cap) == \
        (10.0, 12.0, 9.0, 11.0, 1000.0, 10.5, None)
    assert b.date == dt.date(2026, 11, 20)
    with pytest.raises(AttributeError):
        b.close = 3.0  # frozen


def test_zero_volume_and_flat_bar_are_valid():
    b = bar(open=5.0, high=5.0, low=5.0, close=5.0, volume=0.0)
    assert b.low == b.high == 5.0


def test_naive_timestamp_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        bar(timestamp=dt.datetime(2026, 11, 20, 14, 30))


def test_non_utc_offset_is_rejected():
    with pytest.raises(ValueError, match="UTC"):
        bar(timestamp=dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))))


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume"])
def test_negative_values_are_rejected(field):
    with pytest.raises(ValueError, match=f"bar {field} must be a finite non-negative number"):
        bar(**{field: -1.0, **({"low": -2.0} if field == "high" else {})})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", ["open", "close", "volume"])
def test_non_finite_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        bar(**{field: value})


def test_low_above_high_is_rejected():
    with pytest.raises(ValueError, match="low 12.5 is above its high 12.0"):
        bar(low=12.5)


def test_utc_and_day_start():
    assert utc(dt.datetime(2026, 3, 9, 14, 0)) == dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    eastern = dt.datetime(2026, 3, 9, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert utc(eastern) == dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    assert utc(eastern).utcoffset() == dt.timedelta(0)
    assert day_start(dt.date(2026, 11, 20)) == dt.datetime(2026, 11, 20, tzinfo=UTC)


# -- the synthetic series of tests/fakes/series.py ---------------------------------------------------

def check_candles(bars):
    for b in bars:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.low > 0 and b.volume > 0


def test_daily_bars_are_weekdays_ending_on_the_last_weekday_oldest_first():
    sunday = dt.date(2026, 11, 22)
    bars = daily_bars("IBM", end=sunday, count=262, start_price=220.0)
    assert len(bars) == 262
    assert bars[-1].timestamp == day_start(dt.date(2026, 11, 20))  # the Friday before
    assert all(b.date.weekday() < 5 for b in bars)
    assert [b.timestamp for b in bars] == sorted({b.timestamp for b in bars})
    assert bars[0].date == dt.date(2025, 11, 20)  # 262 weekdays back
    assert all(b.timestamp.hour == 0 and b.timestamp.minute == 0 for b in bars)
    check_candles(bars)
    assert all(round(v, 4) == v for b in bars for v in (b.open, b.high, b.low, b.close))
    assert all(b.volume == int(b.volume) and 1e5 < b.volume < 1e9 for b in bars)
    assert 150 < bars[0].open < 300  # starts near the start price
    assert len({b.close for b in bars}) > 250  # it moves


def test_daily_bars_are_deterministic_per_seed():
    a = daily_bars("IBM", end=dt.date(2026, 11, 20), count=30)
    assert a == daily_bars("IBM", end=dt.date(2026, 11, 20), count=30)
    assert a != daily_bars("AAPL", end=dt.date(2026, 11, 20), count=30)
    assert daily_bars(7, end=dt.date(2026, 11, 20), count=3) == daily_bars(7, end=dt.date(2026, 11, 20), count=3)
    assert daily_bars("X", end=dt.date(2026, 11, 20), count=0) == []


def test_minute_bars_are_consecutive_and_end_at_the_floored_end():
    end = dt.datetime(2026, 11, 20, 12, 34, 56, tzinfo=UTC)
    bars = minute_bars("kraken:btcusd", end=end, count=1440, start_price=60000.0)
    assert len(bars) == 1440
    assert bars[-1].timestamp == dt.datetime(2026, 11, 20, 12, 34, tzinfo=UTC)
    assert bars[0].timestamp == dt.datetime(2026, 11, 19, 12, 35, tzinfo=UTC)
    assert all(b2.timestamp - b1.timestamp == dt.timedelta(minutes=1) for b1, b2 in zip(bars, bars[1:]))
    assert all(b2.open == b1.close for b1, b2 in zip(bars, bars[1:]))
    check_candles(bars)
    assert any(b.volume != int(b.volume) for b in bars)  # fractional volumes
    assert bars == minute_bars("kraken:btcusd", end=end, count=1440, start_price=60000.0)


def test_minute_bars_other_intervals_and_decimals():
    end = dt.datetime(2026, 11, 20, 9, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 14:59 UTC
    bars = minute_bars("x", end=end, count=4, start_price=0.35, interval_seconds=300)
    assert [b.timestamp.strftime("%H:%M") for b in bars] == ["14:40", "14:45", "14:50", "14:55"]
    assert any(round(b.close, 4) != b.close for b in bars) and all(round(b.close, 8) == b.close for b in bars)
    whole = minute_bars("x", end=end, count=50, volume_decimals=0)
    assert all(b.volume == int(b.volume) for b in whole)
    with pytest.raises(ValueError, match="aware"):
        minute_bars("x", end=dt.datetime(2026, 11, 20), count=1)


@pytest.mark.parametrize("name, value", [("market_cap", float("nan")), ("market_cap", -1.0),
                                         ("adjusted_close", float("inf"))])
def test_bar_rejects_bad_optional_figures(name, value):
    with pytest.raises(ValueError, match=name):
        bar(**{name: value})
    assert getattr(bar(**{name: None}), name) is None
