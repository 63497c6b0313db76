import pandas as pd
import pytest

from lib import stats

PRICES = [100.0, 102.0, 99.5, 101.25, 101.25, 98.0, 103.4]


def test_mean_matches_pandas_and_hand_value():
    assert stats.mean([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert stats.mean(PRICES) == pytest.approx(pd.Series(PRICES).mean(), rel=1e-12)


def test_mean_is_exact_where_naive_summation_is_not():
    values = [1e16, 1.0, -1e16, 1.0]
    assert stats.mean(values) == 0.5  # fsum; sum() would give 0.25


def test_pstdev_matches_pandas_ddof0_and_hand_value():
    # values 2,4,4,4,5,5,7,9: mean 5, squared deviations sum 32, 32/8 = 4 -> 2
    assert stats.pstdev([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(2.0)
    assert stats.pstdev(PRICES) == pytest.approx(pd.Series(PRICES).std(ddof=0), rel=1e-12)
    # population, not sample: differs from ddof=1
    assert stats.pstdev(PRICES) != pytest.approx(pd.Series(PRICES).std(ddof=1), rel=1e-6)


def test_stats_accept_pandas_series():
    series = pd.Series(PRICES)
    assert stats.mean(series) == pytest.approx(series.mean())
    assert stats.pstdev(series) == pytest.approx(series.std(ddof=0))
    assert stats.mean(pd.Series([], dtype=float)) is None


def test_simple_returns_by_hand_and_zero_price_skipped():
    assert stats.simple_returns([100.0, 110.0, 99.0]) == pytest.approx([0.10, -0.10])
    assert stats.simple_returns([0.0, 5.0, 10.0]) == pytest.approx([1.0])


def test_volatility_matches_pandas_pct_change():
    expected = pd.Series(PRICES).pct_change().dropna().std(ddof=0) * 100
    assert stats.volatility(PRICES) == pytest.approx(expected, rel=1e-12)
    # by hand: returns +10% and -10% -> mean 0, pstdev 10%
    assert stats.volatility([100.0, 110.0, 99.0]) == pytest.approx(10.0)


def test_percent_change_by_hand_and_against_pandas():
    assert stats.percent_change(100.0, 103.0) == pytest.approx(3.0)
    assert stats.percent_change(80.0, 60.0) == pytest.approx(-25.0)
    assert stats.percent_change(PRICES[0], PRICES[-1]) == \
        pytest.approx(pd.Series([PRICES[0], PRICES[-1]]).pct_change().iloc[-1] * 100)


@pytest.mark.parametrize("old, new", [(None, 1.0), (1.0, None), (None, None), (0.0, 5.0)])
def test_percent_change_undefined(old, new):
    assert stats.percent_change(old, new) is None


def test_empty_inputs_give_none():
    assert stats.mean([]) is None
    assert stats.pstdev([]) is None
    assert stats.simple_returns([]) == []
    assert stats.volatility([]) is None


def test_single_point():
    assert stats.mean([42.5]) == 42.5
    assert stats.pstdev([42.5]) == 0.0
    assert stats.volatility([42.5]) is None  # no return at all
    assert stats.volatility([42.5, 43.0]) == 0.0  # one return: no spread
    assert stats.pstdev([1e300, 1e300]) == 0.0  # no overflow from squaring the values themselves
