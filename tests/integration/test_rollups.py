"""Hourly rollups give the same figures as computing from every bar, whatever the series went through.

A property test on both stacks: random minute series (gaps of minutes and of hours, repeated and zero
closes), stored through the write path, then corrected (some bars stored again with other figures),
pruned at a random moment, and measured over random windows that do not start or end on the hour. Each
window's figures through the rollups equal `lib.stats` over the bars still stored in the window, and the
raw path's, to a relative 1e-9.
"""
from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa

import lib
from financial import ingest, storage
from financial.extensions import db
from financial.models import AssetClass, Bar, BarRollup
from lib import stats

UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
START = dt.datetime(2031, 5, 6, 7, 0, tzinfo=UTC)
SEEDS = range(8)


def random_series(rng: random.Random, length: int) -> list[lib.Bar]:
    bars, stamp, price = [], START + rng.randrange(0, 59) * MINUTE, rng.uniform(1, 1e5)
    for _ in range(length):
        stamp += MINUTE * (1 if rng.random() < 0.8 else rng.choice([2, 7, 61, 130]))  # gaps, some of hours
        kind = rng.random()
        if kind < 0.03:
            close = 0.0  # a close of zero: no return from it
        elif kind < 0.1:
            close = price  # repeated
        else:
            close = max(0.0, price * (1 + rng.gauss(0, 0.01)))
        price = close or price
        bars.append(lib.Bar(stamp, open=close, high=close * 1.01, low=close * 0.99, close=close,
                            volume=rng.uniform(0, 10)))
    return bars


def corrected(rng: random.Random, bars: list[lib.Bar]) -> list[lib.Bar]:
    """Some bars again, with other closes, as an exchange correcting its candles would send them."""
    picked = rng.sample(bars, k=max(1, len(bars) // 20))
    return [lib.Bar(bar.timestamp, bar.open, bar.high * 2 + 1, bar.low, bar.close * rng.uniform(0.5, 1.5) + 0.01,
                    bar.volume) for bar in picked]


def store(pair: str, bars: list[lib.Bar]) -> None:
    spec = ingest.InstrumentSpec(AssetClass.CRYPTO, pair, exchange="prop")
    ingest.store_series(ingest.Series(spec, lib.Interval.MIN1, bars))


def stored_closes(instrument_id: int, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float]]:
    return db.session.execute(sa.select(Bar.ts, Bar.close).where(
        Bar.instrument_id == instrument_id, Bar.interval == "1min", Bar.ts >= start, Bar.ts <= end)
        .order_by(Bar.ts)).all()


def assert_close(got, want, what):
    if want is None:
        assert got is None, what
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), what


@pytest.mark.parametrize("seed", SEEDS)
def test_figures_through_rollups_equal_the_figures_of_every_bar(app, monkeypatch, seed):
    rng = random.Random(seed)
    with app.app_context():
        for number in range(3):
            bars = random_series(rng, rng.randrange(50, 700))
            store(f"p{number}", bars)
            store(f"p{number}", corrected(rng, bars))
        session = db.session
        ids = sorted(session.scalars(sa.select(BarRollup.instrument_id).distinct()))
        assert len(ids) == 3
        last = max(session.scalar(sa.select(sa.func.max(Bar.ts))), START.replace(tzinfo=None))
        cutoff = START.replace(tzinfo=None) + dt.timedelta(minutes=rng.randrange(30, 400), seconds=rng.randrange(60))
        storage.bars.prune(db.engine, [lib.Interval.MIN1], cutoff, batch_size=rng.choice([7, 50, 5000]))
        span = int((last - cutoff).total_seconds() // 60) + 90
        for _ in range(8):  # windows starting before the cutoff, inside the data, not on the minute
            start = cutoff + dt.timedelta(minutes=rng.randrange(-90, span), seconds=rng.randrange(1, 60))
            end = start + dt.timedelta(minutes=rng.randrange(1, 3000), seconds=rng.randrange(60))
            through_rollups = {row.instrument_id: row for row in
                               storage.metrics.window_figures(session, ids, "1min", start, end)}
            with monkeypatch.context() as raw_only:
                raw_only.setattr(storage.rollups, "kept_for", lambda interval: False)
                from_bars = {row.instrument_id: row for row in
                             storage.metrics.window_figures(session, ids, "1min", start, end)}
            assert through_rollups.keys() == from_bars.keys()
            for instrument_id in ids:
                rows = stored_closes(instrument_id, start, end)
                what = (seed, instrument_id, str(start), str(end))
                if not rows:
                    assert instrument_id not in through_rollups, what
                    continue
                closes = [close for _, close in rows]
                figures, raw = through_rollups[instrument_id], from_bars[instrument_id]
                assert figures.points == raw.points == len(closes), what
                assert (figures.last_time, figures.last_price) == (raw.last_time, raw.last_price) == rows[-1], what
                assert_close(figures.mean, stats.mean(closes), what)
                assert_close(figures.variance ** 0.5, stats.pstdev(closes), what)
                volatility = stats.volatility(closes)
                assert_close(None if figures.return_variance is None else figures.return_variance ** 0.5 * 100,
                             volatility, what)
                assert_close(figures.variance, raw.variance, what)
                assert_close(figures.return_variance, raw.return_variance, what)
        assert last >= cutoff


def test_each_rollup_summarises_its_hour_of_bars(app):
    """By hand: two hours, a gap, a zero close; then a correction re-summarises only its hour."""
    hour = START.replace(hour=10)
    closes = {hour + MINUTE * 0: 10.0, hour + MINUTE * 1: 12.0, hour + MINUTE * 5: 0.0, hour + MINUTE * 6: 9.0,
              hour + dt.timedelta(hours=1, minutes=30): 20.0}
    bars = [lib.Bar(ts, close, close, close, close, 1.0) for ts, close in closes.items()]
    with app.app_context():
        store("hand", bars)
        rows = db.session.execute(sa.select(BarRollup).order_by(BarRollup.bucket)).scalars().all()
        assert [(r.bucket, r.points, r.first_close, r.last_close, r.returns) for r in rows] == [
            (hour.replace(tzinfo=None), 4, 10.0, 9.0, 2),
            ((hour + dt.timedelta(hours=1)).replace(tzinfo=None), 1, 20.0, 20.0, 0)]
        first = rows[0]
        assert first.mean == pytest.approx(31 / 4)
        assert first.m2 == pytest.approx(sum((c - 31 / 4) ** 2 for c in (10, 12, 0, 9)))
        # Returns inside the hour: 12/10 - 1 = 0.2 and 0/12 - 1 = -1; none from the zero close to 9.
        assert first.return_mean == pytest.approx(-0.4)
        assert first.return_m2 == pytest.approx((0.2 + 0.4) ** 2 + (-1 + 0.4) ** 2)
        assert (rows[1].return_mean, rows[1].return_m2) == (None, None)
        db.session.rollback()
        store("hand", [lib.Bar(hour + MINUTE, 11.0, 11.0, 11.0, 11.0, 1.0)])
        again = db.session.execute(sa.select(BarRollup).order_by(BarRollup.bucket)).scalars().all()
        assert again[0].mean == pytest.approx(30 / 4) and again[1].mean == rows[1].mean
