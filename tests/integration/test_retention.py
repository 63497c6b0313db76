"""Retention of intraday bars on both stacks: old rows go, recent and daily rows stay, in batches of short
transactions that never hold up readers or an ingest writing at the same time."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import lib
from financial import ingest, storage
from financial.extensions import db
from financial.models import Bar, Instrument
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.seed import store, store_crypto

UTC = dt.timezone.utc
NOW = floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=30)
CUTOFF = NOW - dt.timedelta(days=30)


def all_rows(app) -> set[tuple[str, str, dt.datetime]]:
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(sa.select(Instrument.symbol, Bar.interval, Bar.ts)
                                  .join(Instrument, Instrument.id == Bar.instrument_id))
        return {(row.symbol, row.interval, row.ts) for row in rows}


def keys(symbol, interval, bars):
    return {(symbol, str(interval), bar.timestamp.replace(tzinfo=None)) for bar in bars}


@pytest.fixture
def history(app):
    """Bars on both sides of the 30-day cutoff, for crypto and stocks, minute, 5-minute and daily."""
    across = minute_bars("btc", end=CUTOFF + dt.timedelta(minutes=150), count=300, start_price=60000)
    recent = minute_bars("eth", end=NOW, count=120, start_price=3000)
    old_stock = minute_bars("IBM", end=NOW - dt.timedelta(days=35), count=90, start_price=150, volume_decimals=0)
    old_five = minute_bars("IBM5", end=NOW - dt.timedelta(days=31), count=40, start_price=150, interval_seconds=300,
                           volume_decimals=0)
    daily = daily_bars("IBM", end=NOW.date() - dt.timedelta(days=1), count=60, start_price=150)
    store_crypto(app, across, "kraken", "btcusd", interval=lib.Interval.MIN1)
    store_crypto(app, recent, "kraken", "ethusd", interval=lib.Interval.MIN1)
    store(app, old_stock, "IBM", interval=lib.Interval.MIN1)
    store(app, old_five, "IBM", interval=lib.Interval.MIN5)
    store(app, daily, "IBM")
    kept = (keys("btcusd", "1min", [bar for bar in across if bar.timestamp >= CUTOFF]) | keys("ethusd", "1min", recent)
            | keys("IBM", "1day", daily))
    assert len(kept) < len(all_rows(app))
    return kept


def test_old_intraday_bars_go_and_the_rest_stays(app, history):
    with app.app_context():
        before = storage.state.read_generation(db.session)
        db.session.rollback()
        batches = []
        deleted = ingest.prune_intraday_bars(dt.timedelta(days=30), now=NOW, batch_size=50, on_batch=batches.append)
        after = storage.state.read_generation(db.session)
        db.session.rollback()
    assert all_rows(app) == history
    assert deleted == 150 + 90 + 40  # half the BTC series, IBM's old minutes and 5-minute bars
    assert sum(batches) == deleted and max(batches) <= 50 and len(batches) >= deleted // 50
    assert after != before  # readers' caches are invalidated
    with app.app_context():
        assert ingest.prune_intraday_bars(dt.timedelta(days=30), now=NOW) == 0
        assert storage.state.read_generation(db.session) == after  # nothing deleted, nothing to invalidate


def test_readers_and_writers_go_on_while_pruning(app, history, stack_settings):
    """A reader holding a snapshot across the whole prune is not waited for and keeps its consistent view;
    between batches, another connection reads and writes at once (no lock outlives a batch)."""
    url = stack_settings.database_url
    sqlite = url.startswith("sqlite")
    reader = sa.create_engine(url, connect_args={"isolation_level": None} if sqlite else {})
    # No waiting at all for locks: a lock held by the prune would make these fail rather than wait.
    other = sa.create_engine(url, connect_args={"timeout": 0} if sqlite else {})
    with app.app_context():
        ibm = storage.instruments.find(db.session, "stock", "IBM").id
        db.session.rollback()
    try:
        with reader.connect() as snapshot, other.connect() as concurrent:
            if not sqlite:
                concurrent.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
            snapshot.exec_driver_sql("BEGIN" if sqlite else "START TRANSACTION WITH CONSISTENT SNAPSHOT")
            total = snapshot.exec_driver_sql("SELECT COUNT(*) FROM bars").scalar()
            seen, batches = [], []

            def between_batches(rows):
                batches.append(rows)
                seen.append(concurrent.execute(sa.select(sa.func.count()).select_from(Bar)).scalar())
                stamp = floor_time(NOW, 3600).replace(tzinfo=None) - dt.timedelta(hours=len(seen))
                concurrent.execute(sa.insert(Bar).values(instrument_id=ibm, interval="60min", ts=stamp, open=1,
                                                         high=1, low=1, close=1, volume=1))
                concurrent.commit()

            with app.app_context():
                deleted = ingest.prune_intraday_bars(dt.timedelta(days=30), now=NOW, batch_size=40,
                                                     on_batch=between_batches)
            assert deleted == 280 and len(batches) >= 7
            # Each batch was committed and visible to others at once; each write went through at once.
            assert seen == [total - sum(batches[:number + 1]) + number for number in range(len(batches))]
            assert snapshot.exec_driver_sql("SELECT COUNT(*) FROM bars").scalar() == total  # its own view
            snapshot.exec_driver_sql("COMMIT")
            assert snapshot.exec_driver_sql("SELECT COUNT(*) FROM bars").scalar() == total - deleted + len(seen)
    finally:
        reader.dispose()
        other.dispose()


def test_the_minute_ingest_prunes_after_its_tasks(app, history):
    lines = []
    with app.app_context():
        report = ingest.finish(ingest.Report(), ingest.AfterRun(retention=dt.timedelta(days=30)),
                               progress=lines.append, now=NOW)
    assert report.ok and [(step.label, step.status) for step in report.steps] == [
        ("(retention)", "ok"), ("(rankings)", "ok")]
    assert report.steps[0].rows == 280
    assert lines == ["retention: removed 280 intraday bars older than 30 days"]
    assert all_rows(app) == history


def test_a_failing_step_fails_the_run_and_says_so(app, monkeypatch):
    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("DELETE FROM rankings", {}, Exception("database is locked"))

    monkeypatch.setattr(storage.metrics, "replace_rankings", broken)
    lines = []
    with app.app_context():
        report = ingest.finish(ingest.Report(), progress=lines.append)
    assert not report.ok
    assert lines == ["(rankings): failed (database error: OperationalError)"]
    assert report.render().splitlines() == [
        "symbol      status     rows  detail", "(rankings)  failed        0  database error: OperationalError",
        "0 instruments: 0 ok, 0 failed, 0 skipped; 0 rows stored"]
