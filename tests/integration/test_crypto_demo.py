"""The demo's crypto markets: Cryptowatch OHLC fixture files, re-dated so the newest minute is the current one,
loaded through the live parser, and ranked like live data (what `make run` shows at /api/metrics)."""
import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa

import lib
from financial import ingest
from financial.ingest.sources import demo
from financial.extensions import db
from financial.models import AssetClass, Ranking
from tests import expected
from tests.seed import offline_context
from tests.fakes.make_fixtures import write_fixtures

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "data" / "fixtures"
UTC = dt.timezone.utc
MARKETS = {"binance:ethusdt": ("ETH", "USDT", "ETH/USDT on Binance"),
           "binance:solusdt": ("SOL", "USDT", "SOL/USDT on Binance"),
           "kraken:btcusd": ("BTC", "USD", "BTC/USD on Kraken"), "kraken:ethusd": ("ETH", "USD", "ETH/USD on Kraken")}


def fixture_rows(label):
    """The fixture's candles as (open, high, low, close, volume), oldest first, read here from the raw JSON."""
    exchange, pair = label.split(":")
    rows = json.loads((FIXTURES / "cryptowatch" / f"OHLC_{exchange}_{pair}.json").read_text())["result"]["60"]
    return [tuple(float(value) for value in row[1:6]) for row in sorted(rows)]


def test_the_fixture_files_are_what_the_generator_writes(tmp_path):
    written = write_fixtures(tmp_path)
    assert sorted(path.relative_to(tmp_path).as_posix() for path in written) == sorted(
        path.relative_to(FIXTURES).as_posix() for path in FIXTURES.glob("*/*.json"))
    for path in written:
        assert path.read_bytes() == (FIXTURES / path.relative_to(tmp_path)).read_bytes(), path


def test_crypto_markets_end_on_the_current_minute_with_the_fixture_prices():
    now = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
    series = {task.label: task.fetch(offline_context()) for task in demo.demo_tasks(now=now) if ":" in task.label}
    assert sorted(series) == sorted(MARKETS)
    for label, fetched in series.items():
        exchange, pair = label.split(":")
        base, quote, name = MARKETS[label]
        assert fetched.instrument == ingest.InstrumentSpec(AssetClass.CRYPTO, pair, exchange=exchange, base=base,
                                                           quote=quote, name=name)
        assert fetched.interval is lib.Interval.MIN1
        stamps = [bar.timestamp for bar in fetched.bars]
        assert len(stamps) == 1440 and stamps[-1] == dt.datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
        assert all(later - earlier == dt.timedelta(minutes=1) for earlier, later in zip(stamps, stamps[1:]))
        assert [(b.open, b.high, b.low, b.close, b.volume) for b in fetched.bars] == fixture_rows(label)


def test_the_demo_shows_a_live_looking_ranking(app, client):
    now = dt.datetime.now(UTC)
    tasks = demo.demo_tasks(now=now)
    bars = {tuple(task.label.split(":")): task.fetch(offline_context()).bars for task in tasks if ":" in task.label}
    with app.app_context():
        report = ingest.finish(ingest.run(tasks), now=now + dt.timedelta(seconds=1))
        as_of = db.session.scalar(sa.select(sa.func.max(Ranking.as_of))).replace(tzinfo=UTC)
    assert report.ok
    assert as_of == (now + dt.timedelta(seconds=1)).replace(microsecond=0)
    data = client.get("/api/metrics").get_json()["data"]
    crypto = [entry for entry in data if entry["exchange"]]
    want = expected.ranking(bars, as_of, 24, "stdev")
    assert [(e["exchange"], e["symbol"], e["rank"]) for e in crypto] == [(*key, rank) for key, _, rank in want]
    # The stocks' and sample coins' newest daily bar is yesterday's: no points in the last 24 hours.
    daily = [task for task in tasks if ":" not in task.label]
    assert [e["rank"] for e in data] == [1, 2, 3, 4] + [None] * len(daily)
    for entry, (_, figures, _) in zip(crypto, want):
        assert entry["points"] >= 1439 and entry["volatility"] > 0
        expected.assert_figures(entry, figures)
