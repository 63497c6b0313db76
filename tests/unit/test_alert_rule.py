"""The alert rule as a pure function, at its edges, against a reference written here with pandas
from the rule's wording: latest value >= factor x the mean of the OTHER values of the window, with enough
points, on fresh data. (The cooldown needs stored alerts: tests/integration/test_alerts.py.)"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from financial.services.alerts import Point, Rule, Trigger, evaluate
from tests.fakes.series import floor_time, minute_bars

MINUTE = dt.timedelta(minutes=1)
RULE = Rule(factor=3.0, window_minutes=60, min_points=4, cooldown_minutes=60, stale_minutes=5)


def reference(points: list[Point], now: dt.datetime, rule: Rule = RULE) -> dict[str, tuple[float, float, int]]:
    """{quantity: (value, average, points)} of the quantities that must alert."""
    frame = pd.DataFrame([(p.time, p.close, p.volume) for p in points], columns=["time", "price", "volume"])
    frame = frame[frame.time <= now].sort_values("time")
    if frame.empty or frame.time.iloc[-1] < now - pd.Timedelta(minutes=rule.stale_minutes):
        return {}
    latest = frame.time.iloc[-1]
    window = frame[frame.time > latest - pd.Timedelta(minutes=rule.window_minutes)]
    if len(window) < rule.min_points:
        return {}
    found = {}
    for quantity in ("price", "volume"):
        value, average = window[quantity].iloc[-1], window[quantity].iloc[:-1].mean()
        if average > 0 and value >= rule.factor * average * (1 - 1e-12):  # the documented rounding allowance
            found[quantity] = (float(value), float(average), len(window))
    return found


def as_dict(triggers: list[Trigger]) -> dict[str, tuple[float, float, int]]:
    return {t.quantity: (t.value, pytest.approx(t.average, rel=1e-12), t.points) for t in triggers}


@pytest.fixture
def now():
    return floor_time(dt.datetime.now(dt.timezone.utc), 60).replace(tzinfo=None) + dt.timedelta(seconds=30)


def series(now: dt.datetime, prices: list[float], volumes: list[float], *, latest_age: dt.timedelta = 90 * dt.timedelta(
        seconds=1)) -> list[Point]:
    """Consecutive minute points, the last one starting `latest_age` before `now`."""
    last = now - latest_age
    count = len(prices)
    return [Point(last - (count - 1 - i) * MINUTE, price, volume)
            for i, (price, volume) in enumerate(zip(prices, volumes))]


def check(points, now, rule=RULE, *, want):
    """The rule agrees with the reference, and the reference with what the case is about."""
    got = evaluate(points, rule, now)
    assert {t.quantity for t in got} == set(reference(points, now, rule)) == set(want)
    for trigger in got:
        value, average, count = reference(points, now, rule)[trigger.quantity]
        assert (trigger.value, trigger.points) == (value, count)
        assert trigger.average == pytest.approx(average, rel=1e-12)
        assert trigger.bar_time == max(p.time for p in points if p.time <= now)
    return got


def test_exactly_the_factor_alerts(now):
    check(series(now, [100, 100, 100, 100], [10, 20, 30, 60]), now, want={"volume"})
    check(series(now, [10, 20, 30, 60], [5, 5, 5, 5]), now, want={"price"})
    # Averages that are not exact binary fractions: 0.1, 0.2, 0.3 average 0.2 (0.20000000000000004 summed).
    check(series(now, [1, 1, 1, 1], [0.1, 0.2, 0.3, 0.6]), now, want={"volume"})


def test_just_under_the_factor_does_not(now):
    check(series(now, [100, 100, 100, 100], [10, 20, 30, 60 * (1 - 1e-9)]), now, want=set())
    check(series(now, [10, 20, 30, 59.99], [5, 5, 5, 5]), now, want=set())


def test_price_and_volume_are_separate_quantities(now):
    both = check(series(now, [10, 10, 10, 31], [2, 2, 2, 7]), now, want={"price", "volume"})
    assert {t.quantity: t.value for t in both} == {"price": 31, "volume": 7}
    check(series(now, [10, 10, 10, 31], [2, 2, 2, 2]), now, want={"price"})
    check(series(now, [10, 10, 10, 10], [2, 2, 2, 7]), now, want={"volume"})


def test_the_latest_point_is_left_out_of_the_average(now):
    # With the latest in it the mean would be 15 and 30 would be only 2x; without it, 30 is 3x of 10.
    [trigger] = check(series(now, [1, 1, 1, 1], [10, 10, 10, 30]), now, want={"volume"})
    assert trigger.average == 10


def test_fewer_points_than_the_minimum_do_not_alert(now):
    check(series(now, [1, 1, 1], [10, 10, 100]), now, want=set())  # 3 points, the minimum is 4
    check(series(now, [1, 1, 1, 1], [10, 10, 10, 100]), now, want={"volume"})
    check(series(now, [1, 1], [10, 100]), now, Rule(min_points=2), want={"volume"})


def test_points_count_only_the_window(now):
    """Bars at or before latest − window are outside it: a huge old volume neither counts as a point nor lifts
    the average."""
    points = series(now, [1] * 4, [10, 10, 10, 30])
    old = Point(points[-1].time - dt.timedelta(minutes=60), 1, 1_000_000)
    check(points + [old], now, want={"volume"})
    # Two bars in the window plus the old one: not enough points.
    check(points[2:] + [old], now, want=set())
    # One minute later it is inside, and the average is out of reach.
    inside = Point(points[-1].time - dt.timedelta(minutes=59), 1, 1_000_000)
    check(points + [inside], now, want=set())


def test_stale_data_is_not_evaluated(now):
    volumes = [10, 10, 10, 100]
    check(series(now, [1] * 4, volumes, latest_age=dt.timedelta(minutes=5)), now, want={"volume"})
    check(series(now, [1] * 4, volumes, latest_age=dt.timedelta(minutes=5, seconds=1)), now, want=set())
    check(series(now, [1] * 4, volumes, latest_age=dt.timedelta(hours=3)), now, want=set())


def test_bars_after_the_run_are_not_the_latest(now):
    points = series(now, [1] * 4, [10, 10, 10, 100])
    future = Point(now + MINUTE, 1, 10)
    check(points + [future], now, want={"volume"})


def test_a_zero_average_never_alerts(now):
    check(series(now, [1, 1, 1, 1], [0, 0, 0, 5]), now, want=set())
    check(series(now, [1, 1, 1, 1], [0, 0, 0, 0]), now, want=set())


def test_no_points_no_alert(now):
    assert evaluate([], RULE, now) == []


def test_other_settings(now):
    rule = Rule(factor=1.5, window_minutes=10, min_points=6, stale_minutes=2)
    prices = [100.0] * 12
    volumes = [50.0, 50.0] + [10.0] * 9 + [15.0]  # the two 50s are 11 and 10 minutes before the latest
    check(series(now, prices, volumes), now, rule, want={"volume"})
    check(series(now, prices, volumes[:-1] + [14.99]), now, rule, want=set())
    check(series(now, prices, volumes, latest_age=dt.timedelta(minutes=3)), now, rule, want=set())


def test_realistic_series_agree_with_the_reference(now):
    """Random walks with every kind of spike, compared case by case with the reference."""
    seen = set()
    last_minute = floor_time(now.replace(tzinfo=dt.timezone.utc), 60) - MINUTE
    for seed in range(60):
        bars = minute_bars(f"rule-{seed}", end=last_minute, count=90, start_price=100)
        spike_volume, spike_price = (seed % 3 == 0, seed % 5 == 0)
        points = [Point(b.timestamp.replace(tzinfo=None), b.close, b.volume) for b in bars]
        latest = points[-1]
        if spike_volume:
            average = sum(p.volume for p in points[-60:-1]) / 59
            latest = Point(latest.time, latest.close, average * (2.9 + seed % 4 * 0.05))
        if spike_price:
            latest = Point(latest.time, latest.close * 3.01, latest.volume)
        points[-1] = latest
        got = evaluate(points, RULE, now)
        assert as_dict(got) == reference(points, now)
        seen.add(frozenset(t.quantity for t in got))
    assert seen == {frozenset(), frozenset({"volume"}), frozenset({"price"}), frozenset({"price", "volume"})}
