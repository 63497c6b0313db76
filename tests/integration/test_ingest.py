"""financial.ingest.run with hand-made tasks, on both stacks: isolation, atomicity, coalescing, the report."""
import datetime as dt

import pytest
import sqlalchemy as sa

import lib
from financial import ingest, storage
from financial.extensions import db
from financial.ingest.sources.alphavantage import StockTask
from financial.upstreams import Upstreams
from tests.conftest import base_settings
from tests.seed import HandMadeTask
from financial.models import AssetClass, Bar, Instrument
from tests.fakes.series import daily_bars, minute_bars

YESTERDAY = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)


def spec(symbol):
    return ingest.InstrumentSpec(AssetClass.STOCK, symbol)


def task(symbol, bars=None, *, error=None, source="test", note="", calls=None):
    return HandMadeTask(spec(symbol), lib.Interval.DAY, bars, error, source, note,
                        calls if calls is not None else [])


def stored(app, symbol):
    """{naive UTC ts: (open, high, low, close, volume, market_cap)} of a stock's daily bars, read afresh."""
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Bar.ts, Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume, Bar.market_cap)
            .join(Instrument, Instrument.id == Bar.instrument_id)
            .where(Instrument.symbol == symbol, Instrument.asset_class == AssetClass.STOCK, Bar.interval == "1day"))
        return {row.ts: tuple(row[1:]) for row in rows}


def instruments(app):
    with app.app_context(), db.engine.connect() as connection:
        return sorted(connection.scalars(sa.select(Instrument.symbol)))


def expected(bars):
    return {bar.timestamp.replace(tzinfo=None): (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.market_cap)
            for bar in bars}


def run(app, tasks, **kwargs):
    with app.app_context():
        return ingest.run(tasks, **kwargs)


def test_tasks_are_stored_with_their_values(app):
    ibm = daily_bars("IBM", end=YESTERDAY, count=12, start_price=180)
    aapl = daily_bars("AAPL", end=YESTERDAY, count=7, start_price=190)
    report = run(app, [task("IBM", ibm), task("AAPL", aapl)])
    assert [(o.label, o.status, o.rows) for o in report.outcomes] == [("IBM", "ok", 12), ("AAPL", "ok", 7)]
    assert report.ok and report.rows == 19
    assert stored(app, "IBM") == expected(ibm)
    assert stored(app, "AAPL") == expected(aapl)


def test_malformed_payload_stores_nothing_and_the_others_go_on(app):
    good = daily_bars("IBM", end=YESTERDAY, count=5)
    error = lib.errors.MalformedPayloadError("malformed AlphaVantage payload: row 2024-01-02 field '1. open' "
                                             "is not a number: 'n/a'", source="alphavantage", symbol="BAD")
    report = run(app, [task("BAD", error=error), task("IBM", good)])
    bad, ibm = report.outcomes
    assert (bad.status, bad.rows) == ("failed", 0)
    assert bad.detail == ("MalformedPayloadError: malformed AlphaVantage payload: row 2024-01-02 field '1. open' "
                          "is not a number: 'n/a'")
    assert (ibm.status, ibm.rows) == ("ok", 5)
    assert not report.ok
    assert stored(app, "BAD") == {}
    assert instruments(app) == ["IBM"]
    assert stored(app, "IBM") == expected(good)


@pytest.mark.parametrize("failure", [
    sa.exc.OperationalError("UPDATE service_state", {}, Exception("disk I/O error")),
    RuntimeError("a bug after the upsert"),
], ids=["database-error", "unexpected-error"])
def test_failure_during_the_write_rolls_back_the_whole_instrument(app, monkeypatch, failure):
    before = daily_bars("IBM", end=YESTERDAY, count=8)
    assert run(app, [task("IBM", before)]).ok

    real_bump = storage.state.bump_generation
    upserted = []

    def failing_bump(session):
        # The bars are already written in this transaction when the generation is bumped.
        upserted.append(session.scalar(sa.select(sa.func.count()).select_from(Bar)))
        if len(upserted) == 1:
            raise failure
        return real_bump(session)

    monkeypatch.setattr(storage.state, "bump_generation", failing_bump)
    changed = [lib.Bar(timestamp=b.timestamp, open=b.open + 1, high=b.high + 1, low=b.low + 1, close=b.close + 1,
                       volume=b.volume + 1) for b in before]
    new_symbol = daily_bars("MSFT", end=YESTERDAY, count=6)
    report = run(app, [task("MSFT", new_symbol), task("IBM", changed)])

    msft, ibm = report.outcomes
    assert upserted[0] == 8 + 6  # the failure came after MSFT's upsert, inside its transaction
    assert (msft.status, msft.rows) == ("failed", 0)
    if isinstance(failure, sa.exc.SQLAlchemyError):
        assert msft.detail == "database error: OperationalError"
    else:
        assert msft.detail == "unexpected error: RuntimeError (see the log)"
    assert stored(app, "MSFT") == {}
    assert instruments(app) == ["IBM"]  # the instrument row went with the bars
    assert (ibm.status, ibm.rows) == ("ok", 8)  # the next task was not affected
    assert stored(app, "IBM") == expected(changed)


def test_upsert_keeps_the_market_cap_a_source_lacks(app):
    days = daily_bars("IBM", end=YESTERDAY, count=4)
    with_cap = [lib.Bar(timestamp=b.timestamp, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume,
                        adjusted_close=round(b.close * 0.99, 4), market_cap=1e11 + i) for i, b in enumerate(days)]
    assert run(app, [task("IBM", with_cap)]).ok

    # A second source without market cap or adjusted close: new prices for the last two days, plus a new day.
    def repriced(timestamp, price):
        return lib.Bar(timestamp=timestamp, open=price, high=price + 2, low=price - 2, close=price + 1, volume=1234)
    second = [repriced(days[2].timestamp, 50.0), repriced(days[3].timestamp, 51.0),
              repriced(days[3].timestamp + dt.timedelta(days=1), 52.0)]
    assert run(app, [task("IBM", second)]).ok

    rows = stored(app, "IBM")
    naive = [b.timestamp.replace(tzinfo=None) for b in days]
    assert len(rows) == 5
    assert rows[naive[0]] == expected(with_cap)[naive[0]]  # untouched
    assert rows[naive[1]] == expected(with_cap)[naive[1]]
    assert rows[naive[2]] == (50.0, 52.0, 48.0, 51.0, 1234.0, 1e11 + 2)  # new prices, the cap kept
    assert rows[naive[3]] == (51.0, 53.0, 49.0, 52.0, 1234.0, 1e11 + 3)
    assert rows[naive[3] + dt.timedelta(days=1)] == (52.0, 54.0, 50.0, 53.0, 1234.0, None)  # none to keep
    with app.app_context(), db.engine.connect() as connection:
        adjusted = dict(connection.execute(sa.select(Bar.ts, Bar.adjusted_close)).all())
    assert adjusted[naive[3]] == with_cap[3].adjusted_close
    assert adjusted[naive[3] + dt.timedelta(days=1)] is None


def test_quota_spent_skips_the_rest_of_that_source_only(app):
    calls = []
    quota = lib.QuotaExhaustedError("daily quota spent: ... 25 requests per day", source="alphavantage")
    bars = daily_bars("X", end=YESTERDAY, count=3)
    report = run(app, [
        task("IBM", bars, source="alphavantage", calls=calls),
        task("AAPL", error=quota, source="alphavantage", calls=calls),
        task("MSFT", bars, source="alphavantage", calls=calls),
        task("DEMO", bars, source="demo", calls=calls),
    ])
    assert calls == ["IBM", "AAPL", "DEMO"]  # MSFT never fetched
    assert [(o.label, o.status, o.rows) for o in report.outcomes] == [
        ("IBM", "ok", 3), ("AAPL", "failed", 0), ("MSFT", "skipped", 0), ("DEMO", "ok", 3)]
    assert report.outcomes[1].detail == "daily quota spent: ... 25 requests per day"
    assert report.outcomes[2].detail == "not fetched: the alphavantage daily quota is spent"
    assert instruments(app) == ["DEMO", "IBM"]


def test_no_bars_without_a_note_is_a_failure_and_a_note_alone_is_ok(app):
    report = run(app, [task("EMPTY", []), task("QUIET", [], note="no bars in the last 14 days")])
    assert [(o.label, o.status, o.rows, o.detail) for o in report.outcomes] == [
        ("EMPTY", "failed", 0, "the upstream returned no bars"),
        ("QUIET", "ok", 0, "no bars in the last 14 days")]
    assert instruments(app) == []


def test_report_render_lists_every_outcome():
    report = ingest.Report([
        ingest.Outcome("IBM", "ok", 10, "only the latest 100 points"),
        ingest.Outcome("kraken:btcusd", "failed", 0, "NotFoundError: unknown market"),
        ingest.Outcome("AAPL", "skipped", 0, "not fetched: the alphavantage daily quota is spent"),
        ingest.Outcome("MSFT", "ok", 7),
    ])
    assert report.render().splitlines() == [
        "symbol         status     rows  detail",
        "IBM            ok           10  only the latest 100 points",
        "kraken:btcusd  failed        0  NotFoundError: unknown market",
        "AAPL           skipped       0  not fetched: the alphavantage daily quota is spent",
        "MSFT           ok            7",
        "4 instruments: 2 ok, 1 failed, 1 skipped; 17 rows stored",
    ]
    assert not report.ok and report.rows == 17
    assert ingest.Report().render().splitlines() == [
        "symbol  status     rows  detail", "0 instruments: 0 ok, 0 failed, 0 skipped; 0 rows stored"]
    assert ingest.Report().ok


def test_progress_is_called_once_per_task(app):
    lines = []
    bars = daily_bars("P", end=YESTERDAY, count=2)
    missing = lib.NotFoundError("unknown symbol 'NOPE'", source="alphavantage", symbol="NOPE")
    run(app, [task("IBM", bars), task("NOPE", error=missing), task("AAPL", bars)], progress=lines.append)
    assert lines == [
        "[1/3] IBM: ok, 2 rows",
        "[2/3] NOPE: failed, 0 rows (NotFoundError: unknown symbol 'NOPE')",
        "[3/3] AAPL: ok, 2 rows",
    ]


def test_each_stored_instrument_bumps_the_data_generation(app):
    bars = daily_bars("G", end=YESTERDAY, count=2)
    with app.app_context():
        first = storage.state.read_generation(db.session)
        db.session.rollback()
        ingest.run([task("IBM", bars)])
        second = storage.state.read_generation(db.session)
        db.session.rollback()
        ingest.run([task("BAD", error=lib.NotFoundError("nope"))])
        third = storage.state.read_generation(db.session)
        db.session.rollback()
    assert first is None and second is not None
    assert third == second  # a failed task changes nothing, so cached results stay valid


# -- AlphaVantage tasks: the window and the outputsize, with a stand-in client and a fixed clock -------

class StubClient:
    """Answers like AlphaVantageClient.daily/intraday; `premium_full` refuses outputsize=full."""

    def __init__(self, daily=(), intraday=(), premium_full=False):
        self.daily_bars, self.intraday_bars, self.premium_full = list(daily), list(intraday), premium_full
        self.calls = []

    def _answer(self, kind, bars, outputsize):
        self.calls.append((kind, outputsize))
        if outputsize == "full" and self.premium_full:
            raise lib.errors.PremiumRequiredError("premium plan required: outputsize=full is a premium feature")
        return bars if outputsize == "full" else bars[-100:]

    def daily(self, symbol, outputsize="compact"):
        return self._answer("daily", self.daily_bars, outputsize)

    def intraday(self, symbol, interval=lib.Interval.MIN1, outputsize="compact"):
        return self._answer(f"intraday {interval}", self.intraday_bars, outputsize)


NOW = dt.datetime(2030, 1, 15, 10, 30, tzinfo=dt.timezone.utc)  # a Tuesday


def fetched(client, *, interval, days):
    context = ingest.FetchContext(Upstreams(base_settings(), alphavantage=client), stored=None, clock=lambda: NOW)
    return StockTask("ibm", interval, days).fetch(context)


def test_daily_window_is_the_bars_dated_on_or_after_now_minus_days():
    bars = daily_bars("W", end=dt.date(2030, 1, 14), count=40)
    client = StubClient(daily=bars)
    series = fetched(client, interval=lib.Interval.DAY, days=14)
    assert series.instrument == ingest.InstrumentSpec(AssetClass.STOCK, "IBM")
    assert [bar.date for bar in series.bars] == [bar.date for bar in bars if bar.date >= dt.date(2030, 1, 1)]
    assert series.bars[0].date == dt.date(2030, 1, 1) and series.bars[-1].date == dt.date(2030, 1, 14)
    assert client.calls == [("daily", "compact")]
    assert series.note == ""


def test_intraday_asks_for_full_and_falls_back_to_compact_with_a_note():
    end = NOW - dt.timedelta(minutes=1)
    bars = minute_bars("W", end=end, count=300, volume_decimals=0)
    client = StubClient(intraday=bars, premium_full=True)
    series = fetched(client, interval=lib.Interval.MIN1, days=1)
    assert client.calls == [("intraday 1min", "full"), ("intraday 1min", "compact")]
    assert series.bars == bars[-100:]
    assert series.note == "only the latest 100 points: the full history is a premium feature for this key"

    free = StubClient(intraday=bars)
    assert fetched(free, interval=lib.Interval.MIN1, days=1).bars == bars
    assert free.calls == [("intraday 1min", "full")]


def test_stale_series_is_ok_with_a_note_and_an_empty_one_is_not_found():
    old = daily_bars("W", end=dt.date(2029, 11, 30), count=5)
    series = fetched(StubClient(daily=old), interval=lib.Interval.DAY, days=14)
    assert series.bars == []
    assert series.note == "no bars in the last 14 days (latest 2029-11-30 00:00 UTC)"
    with pytest.raises(lib.NotFoundError, match="no bars for ibm"):
        fetched(StubClient(), interval=lib.Interval.DAY, days=14)
