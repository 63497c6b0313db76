"""After an ingest, only what it changed is looked at again: the figures of the markets it stored (and of
those whose figures have aged), the alerts of the markets that got new bars; and no statement outlives its
caller. On both stacks."""
from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

import lib
from financial import create_app, ingest
from financial.extensions import app_state, db
from financial.models import AssetClass, Ranking
from financial.services import metrics
from tests import expected
from tests.conftest import base_settings
from tests.fakes.series import floor_time, minute_bars
from tests.seed import HandMadeTask, store_crypto

UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
NOW = floor_time(dt.datetime.now(UTC), 60)
MARKETS = ("btcusd", "ethusd", "solusd")


def market(pair):
    return ingest.InstrumentSpec(AssetClass.CRYPTO, pair, exchange="kraken")


@pytest.fixture
def three_markets(app):
    series = {pair: minute_bars(pair, end=NOW - 10 * MINUTE, count=600, start_price=100.0 * (n + 1))
              for n, pair in enumerate(MARKETS)}
    for pair, bars in series.items():
        store_crypto(app, bars, "kraken", pair, interval=lib.Interval.MIN1)
    with app.app_context():
        metrics.refresh_rankings(now=NOW - 5 * MINUTE)
    return series


def rankings(app) -> dict[tuple[str, int], Ranking]:
    with app.app_context():
        from financial.models import Instrument
        rows = db.session.execute(sa.select(Instrument.symbol, Ranking).join(Instrument)).all()
        db.session.expunge_all()
        return {(symbol, ranking.window_hours): ranking for symbol, ranking in rows}


def test_a_run_recomputes_the_markets_it_stored_and_ranks_them_all_again(app, three_markets):
    before = rankings(app)
    # eth jumps: ten new minutes far above its level; the run stores them and ends with its after-run steps.
    jump = minute_bars("jump", end=NOW, count=10, start_price=10_000.0)
    with app.app_context():
        report = ingest.run([HandMadeTask(market("ethusd"), lib.Interval.MIN1, jump)])
        ingest.finish(report, ingest.AfterRun(), now=NOW)
    assert report.changed is not None and len(report.changed) == 1
    after = rankings(app)
    as_of_before, as_of_now = (NOW - 5 * MINUTE).replace(tzinfo=None), NOW.replace(tzinfo=None)
    for hours in metrics.STANDARD_WINDOWS:
        # The others keep the figures of their last computation, as of its moment...
        for pair in ("btcusd", "solusd"):
            kept, old = after[(pair, hours)], before[(pair, hours)]
            assert (kept.as_of, kept.points, kept.stdev) == (as_of_before, old.points, old.stdev)
            want = expected.figures(three_markets[pair], (NOW - 5 * MINUTE), hours)
            assert kept.stdev == pytest.approx(want["stdev"], rel=1e-9)
        # ...eth is measured again, as of the run,
        eth = after[("ethusd", hours)]
        want = expected.figures(three_markets["ethusd"] + jump, NOW, hours)
        assert eth.as_of == as_of_now and eth.points == want["points"]
        assert eth.stdev == pytest.approx(want["stdev"], rel=1e-9)
        # ...and all are ranked again: eth's jump makes it the most volatile by far.
        ranks = {pair: after[(pair, hours)].rank_stdev for pair in MARKETS}
        assert ranks["ethusd"] == 1 and sorted(ranks.values()) == [1, 2, 3]


def test_figures_that_aged_are_measured_again(app, three_markets):
    later = NOW + metrics.REFRESH_AFTER + MINUTE
    with app.app_context():
        metrics.refresh_rankings(now=later, changed=set())  # nothing changed, but every figure is an hour old
    after = rankings(app)
    for pair, bars in three_markets.items():
        row = after[(pair, 24)]
        assert row.as_of == later.replace(tzinfo=None)
        assert row.points == expected.figures(bars, later, 24)["points"]


def test_alerts_look_only_at_the_markets_that_got_new_bars(app, three_markets):
    spike = [lib.Bar(NOW, 1e6, 1e6, 1e6, 1e6, 1.0)]  # btc's close jumps a hundredfold, stored outside any run
    store_crypto(app, spike, "kraken", "btcusd", interval=lib.Interval.MIN1)
    quiet = minute_bars("quiet", end=NOW, count=2, start_price=300.0)
    with app.app_context():
        run = ingest.run([HandMadeTask(market("solusd"), lib.Interval.MIN1, quiet)])
        ingest.finish(run, ingest.AfterRun(alerts=True), now=NOW + 30 * dt.timedelta(seconds=1))
        assert run.alerts is not None and run.alerts.raised == 0  # btc got no bars in this run
        unknown = ingest.Report()  # a report that does not know what changed: every market is looked at
        ingest.finish(unknown, ingest.AfterRun(alerts=True), now=NOW + 30 * dt.timedelta(seconds=1))
        assert unknown.alerts is not None and unknown.alerts.raised == 1


SLOW = {  # minutes of work for either database
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
              "SELECT COUNT(*) FROM n",
    "mysql": "SELECT COUNT(*) FROM seq_1_to_100000 a, seq_1_to_100000 b WHERE a.seq + b.seq = 3",  # MariaDB's
}


def test_a_statement_that_outlives_its_timeout_is_ended_by_the_database(app_factory, stack):
    app = app_factory(statement_timeout=0.5)
    with app.app_context():
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as raised:
            db.session.execute(sa.text(SLOW[stack]))
        db.session.rollback()
        assert time.monotonic() - started < 5
        assert "interrupted" in str(raised.value).lower() or "max_statement_time" in str(raised.value)
        if stack == "mysql":  # ended on the server too, not left running there
            running = db.session.execute(sa.text(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE '%seq_1_to_100000 b%' "
                "AND info NOT LIKE '%processlist%'")).scalar()
            assert running == 0
        assert db.session.execute(sa.text("SELECT 1")).scalar() == 1  # and the connection goes on serving
        assert not app_state(app).cache.breaker.is_open  # the server answered: no reason to fail fast


def test_the_ingest_gets_its_own_longer_timeout(mysql_url):
    """The server's own setting on each connection: a request's, or the ingest's longer one (in-process, or
    on a Celery worker)."""
    timeouts = {}
    for process in ("app", "ingest", "worker"):
        app = create_app(base_settings(database_url=mysql_url, statement_timeout=7, ingest_statement_timeout=90),
                         process=process)
        with app.app_context():
            timeouts[process] = float(db.session.execute(sa.text("SELECT @@max_statement_time")).scalar())
            db.engine.dispose()
    assert timeouts == {"app": 7.0, "ingest": 90.0, "worker": 90.0}
