"""lib.to_frame / lib.from_frame: the frame's shape, its values equal to the bars' floats, and exact round trips."""
import dataclasses
import datetime as dt
import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lib
from lib.bars import day_start
from tests.fakes.coin_csv import coin_bars
from tests.fakes.series import daily_bars, minute_bars

UTC = dt.timezone.utc
OHLCV = ["open", "high", "low", "close", "volume"]


def test_a_frame_is_indexed_by_utc_timestamps_with_the_bars_values():
    bars = daily_bars("IBM", end=dt.date(2026, 3, 6), count=5)
    frame = lib.to_frame(bars)
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "timestamp"
    assert str(frame.index.tz) == "UTC" and str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert list(frame.columns) == OHLCV and all(str(dtype) == "float64" for dtype in frame.dtypes)
    assert list(frame.index) == [pd.Timestamp(bar.timestamp) for bar in bars]
    for column in OHLCV:
        assert frame[column].tolist() == [getattr(bar, column) for bar in bars]  # the floats, unchanged
    assert frame.loc["2026-03-04", "close"] == bars[2].close  # pandas' own date selection works


def test_the_optional_columns_appear_when_any_bar_has_them_nan_elsewhere():
    bars = coin_bars("BTC", end=dt.date(2026, 3, 6), days=4, start_price=60000.0, supply=19.6e6)
    bars[1] = dataclasses.replace(bars[1], market_cap=None)
    bars[2] = dataclasses.replace(bars[2], adjusted_close=bars[2].close * 0.5)
    frame = lib.to_frame(bars)
    assert list(frame.columns) == OHLCV + ["adjusted_close", "market_cap"]
    caps = frame["market_cap"].tolist()
    assert math.isnan(caps[1]) and caps[:1] + caps[2:] == [bars[0].market_cap, bars[2].market_cap, bars[3].market_cap]
    assert frame["adjusted_close"].isna().tolist() == [True, True, False, True]
    assert lib.from_frame(frame) == bars


def test_an_empty_list_gives_an_empty_frame_with_the_columns():
    frame = lib.to_frame([])
    assert frame.empty and list(frame.columns) == OHLCV
    assert frame.index.name == "timestamp" and str(frame.index.dtype) == "datetime64[ns, UTC]"
    assert lib.from_frame(frame) == []


def test_minute_bars_round_trip_with_their_seconds():
    bars = minute_bars("x", end=dt.datetime(2026, 3, 6, 12, 0, 30, tzinfo=UTC), count=50, start_price=3000.0)
    assert lib.from_frame(lib.to_frame(bars)) == bars


finite = st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False)


@st.composite
def some_bars(draw):
    count = draw(st.integers(min_value=0, max_value=8))
    stamps = draw(st.lists(st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1)),
                           min_size=count, max_size=count))
    bars = []
    for stamp in stamps:
        low, high = sorted(draw(st.tuples(finite, finite)))
        bars.append(lib.Bar(stamp.replace(tzinfo=UTC), draw(finite), high, low, draw(finite), draw(finite),
                            draw(st.none() | finite), draw(st.none() | finite)))
    return bars


@settings(max_examples=150, deadline=None)
@given(some_bars())
def test_the_round_trip_is_exact(bars):
    back = lib.from_frame(lib.to_frame(bars))
    assert back == bars
    assert [bar.timestamp.tzinfo for bar in back] == [UTC] * len(bars)


def test_from_frame_reads_a_timestamp_column_naive_or_other_zones():
    bars = daily_bars("AAPL", end=dt.date(2026, 3, 6), count=3)
    frame = lib.to_frame(bars)
    assert lib.from_frame(frame.reset_index()) == bars
    naive = frame.tz_localize(None)
    assert lib.from_frame(naive) == bars  # naive means UTC
    assert lib.from_frame(frame.tz_convert("America/New_York")) == bars


def test_from_frame_names_what_is_wrong():
    bars = daily_bars("AAPL", end=dt.date(2026, 3, 6), count=3)
    frame = lib.to_frame(bars)
    with pytest.raises(ValueError, match="missing volume"):
        lib.from_frame(frame.drop(columns="volume"))
    with pytest.raises(ValueError, match="a DatetimeIndex or a 'timestamp' column"):
        lib.from_frame(frame.reset_index(drop=True))
    broken = frame.copy()
    broken.iloc[1, broken.columns.get_loc("close")] = float("nan")
    with pytest.raises(ValueError, match=r"row 1 \(2026-03-05T00:00:00\+00:00\): bar close must be a finite"):
        lib.from_frame(broken)
    several = pd.concat({"AAPL": frame}, names=["symbol"])
    with pytest.raises(ValueError, match=r"select one first, e.g. frame.loc\['IBM'\]"):
        lib.from_frame(several)
    assert lib.from_frame(several.loc["AAPL"]) == bars
    assert day_start(dt.date(2026, 3, 4)) == bars[0].timestamp
