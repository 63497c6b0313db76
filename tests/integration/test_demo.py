"""`get_raw_data.py --demo`: the bundled IBM and AAPL daily bars, re-dated to end on the last weekday before
today, the sample coins' daily rows, re-dated to end yesterday, loaded offline and idempotently, with the
fixture files' prices. (The crypto markets of the demo: tests/integration/test_crypto_demo.py.)"""
import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from financial import ingest
from financial.ingest.sources import demo
from financial.extensions import db
from tests.conftest import base_settings, env_for
from tests.seed import offline_context

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "data" / "fixtures" / "alphavantage"
SYMBOLS = ("AAPL", "IBM")
BARS_PER_SYMBOL = 262
CRYPTO_ROWS = 4 * 1440  # the demo's crypto markets (test_crypto_demo.py)
COIN_FILES = sorted((ROOT / "data" / "fixtures" / "csv").glob("*.csv"))


def fixture_rows(symbol):
    """The fixture file's rows, newest first, as (date, open, high, low, close, volume), parsed here."""
    payload = json.loads((FIXTURES / f"TIME_SERIES_DAILY_{symbol}.json").read_text())
    series = payload["Time Series (Daily)"]
    fields = ("1. open", "2. high", "3. low", "4. close", "5. volume")
    rows = [(dt.date.fromisoformat(day), *(float(values[k]) for k in fields)) for day, values in series.items()]
    return sorted(rows, reverse=True)


def weekdays_before(today, count):
    """The `count` weekdays strictly before `today`, newest first."""
    days, day = [], today
    while len(days) < count:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def stored_rows(url, symbol):
    """Stored daily bars of a stock, newest first, as (date, open, high, low, close, volume)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT b.ts, b.open, b.high, b.low, b.close, b.volume FROM bars b "
                "JOIN instruments i ON i.id = b.instrument_id "
                "WHERE i.symbol = :symbol AND i.asset_class = 'stock' AND b.interval = '1day' ORDER BY b.ts DESC"),
                {"symbol": symbol}).all()
    finally:
        engine.dispose()
    return [(_as_datetime(ts).date(), *map(float, values)) for ts, *values in rows]


def _as_datetime(value):
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def expected_rows(symbol, today):
    """The fixture's prices, newest first, on the weekdays that end on the last weekday before `today`."""
    rows = fixture_rows(symbol)
    return [(day, *values[1:]) for day, values in zip(weekdays_before(today, len(rows)), rows)]


def coin_file_rows(path):
    """(symbol, name, rows newest first as (date, open, high, low, close, volume, market cap)) of a sample
    coin file, read here with the csv module."""
    with path.open(newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    rows = [(dt.date.fromisoformat(r["Date"][:10]), *(float(r[k]) for k in ("Open", "High", "Low", "Close", "Volume")),
             float(r["Marketcap"]) if r["Marketcap"] else None) for r in records]
    return records[0]["Symbol"], records[0]["Name"], sorted(rows, reverse=True)


def expected_coin_rows(path, today):
    """The file's figures, newest first, on consecutive calendar days ending yesterday."""
    _, _, rows = coin_file_rows(path)
    assert [row[0] for row in rows] == [rows[0][0] - dt.timedelta(days=n) for n in range(len(rows))]  # no gaps
    return [(today - dt.timedelta(days=1 + n), *row[1:]) for n, row in enumerate(rows)]


def stored_coin_rows(url, symbol):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT i.name, b.ts, b.open, b.high, b.low, b.close, b.volume, b.market_cap FROM bars b "
                "JOIN instruments i ON i.id = b.instrument_id WHERE i.symbol = :symbol AND i.asset_class = 'crypto' "
                "AND i.exchange = '' AND b.interval = '1day' ORDER BY b.ts DESC"), {"symbol": symbol}).all()
    finally:
        engine.dispose()
    names = {row[0] for row in rows}
    return names, [(_as_datetime(ts).date(), *map(float, values[:5]), None if values[5] is None else float(values[5]))
                   for _, ts, *values in rows]


def test_fixture_files_are_consecutive_weekdays():
    for symbol in SYMBOLS:
        dates = [row[0] for row in fixture_rows(symbol)]
        assert len(dates) == BARS_PER_SYMBOL
        assert dates == weekdays_before(dates[0] + dt.timedelta(days=1), BARS_PER_SYMBOL)


def test_demo_command_loads_the_sample_offline(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = env_for(base_settings(database_url=url))
    for name in [name for name in env if name.startswith(("ALPHAVANTAGE_", "REDIS_", "CRYPTOWATCH_"))]:
        del env[name]
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")  # any fetch would fail
    today = dt.datetime.now(dt.timezone.utc).date()
    result = subprocess.run([sys.executable, str(ROOT / "get_raw_data.py"), "--demo"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["symbol", "status", "rows", "detail"]
    table = lines[1:-1]
    stocks = sorted(line.split() for line in table if line.split()[0] in SYMBOLS)
    assert stocks == [["AAPL", "ok", "262"], ["IBM", "ok", "262"]]
    coins = {path.name: coin_file_rows(path) for path in COIN_FILES}
    assert len(coins) >= 8
    assert [line.split(maxsplit=3) for line in table if line.split()[0] in coins] == [
        [name, "ok", str(len(rows)), f"{symbol} {coin}"] for name, (symbol, coin, rows) in coins.items()]
    assert len([line for line in table if ":" in line.split()[0]]) == 4  # the crypto markets
    rows = 524 + CRYPTO_ROWS + sum(len(rows) for _, _, rows in coins.values())
    assert lines[-1] == f"{len(table)} instruments: {len(table)} ok, 0 failed, 0 skipped; {rows} rows stored"
    assert "Traceback" not in result.stderr
    for symbol in SYMBOLS:
        assert stored_rows(url, symbol) == expected_rows(symbol, today)
    for path in COIN_FILES:
        symbol, name, _ = coin_file_rows(path)
        assert stored_coin_rows(url, symbol) == ({name}, expected_coin_rows(path, today))
    newest = stored_rows(url, "IBM")[0][0]
    assert newest == weekdays_before(today, 1)[0] and newest < today
    assert {row[0].weekday() for symbol in SYMBOLS for row in stored_rows(url, symbol)} <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize("offset", range(7))
def test_newest_demo_bar_is_the_last_weekday_before_today(offset):
    today = dt.date(2030, 1, 7) + dt.timedelta(days=offset)  # Monday 2030-01-07 .. Sunday 2030-01-13
    last_weekday = {0: dt.date(2030, 1, 4), 1: dt.date(2030, 1, 7), 2: dt.date(2030, 1, 8), 3: dt.date(2030, 1, 9),
                    4: dt.date(2030, 1, 10), 5: dt.date(2030, 1, 11), 6: dt.date(2030, 1, 11)}[today.weekday()]
    series = {task.label: task.fetch(offline_context()) for task in demo.demo_tasks(today) if task.label in SYMBOLS}
    assert sorted(series) == list(SYMBOLS)
    for symbol, fetched in series.items():
        bars = fetched.bars
        assert bars[-1].date == last_weekday
        assert all(bar.date.weekday() < 5 for bar in bars)
        assert [(bar.date, bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in reversed(bars)] == \
            expected_rows(symbol, today)


def test_demo_load_twice_keeps_one_row_per_day_on_both_stacks(app):
    today = dt.datetime.now(dt.timezone.utc).date()
    with app.app_context():
        first = ingest.run(demo.demo_tasks())
        second = ingest.run(demo.demo_tasks())
        url = db.engine.url.render_as_string(hide_password=False)
    coin_rows = {path.name: len(coin_file_rows(path)[2]) for path in COIN_FILES}
    outcomes = [(o.label, o.status, o.rows) for o in first.outcomes]
    assert [o for o in outcomes if o[0] in SYMBOLS] == [("AAPL", "ok", 262), ("IBM", "ok", 262)]
    assert [o for o in outcomes if o[0] in coin_rows] == [(name, "ok", rows) for name, rows in coin_rows.items()]
    assert first.ok and second.ok
    assert second.rows == first.rows == 524 + CRYPTO_ROWS + sum(coin_rows.values())
    for symbol in SYMBOLS:
        assert stored_rows(url, symbol) == expected_rows(symbol, today)
    for path in COIN_FILES:
        symbol, name, _ = coin_file_rows(path)
        assert stored_coin_rows(url, symbol) == ({name}, expected_coin_rows(path, today))


def test_the_demo_fills_the_dashboard(app, client):
    """What `make run` shows: every sample coin (and the two stocks) with figures as of yesterday."""
    with app.app_context():
        assert ingest.run(demo.demo_tasks()).ok
    body = client.get("/api/dashboard").get_json()
    entries = {entry["symbol"]: entry for entry in body["data"]}
    coins = [coin_file_rows(path) for path in COIN_FILES]
    assert set(entries) == {symbol for symbol, _, _ in coins} | set(SYMBOLS)
    for symbol, name, rows in coins:
        entry = entries[symbol]
        assert (entry["crypto"], entry["price"], entry["24h-volume"]) == (name, rows[0][4], rows[0][5])
        assert entry["24h"] == pytest.approx((rows[0][4] - rows[1][4]) / rows[1][4] * 100, rel=1e-12)
        assert (entry["1m"] is None) == (len(rows) <= 30)
    assert any(entry["1m"] is None for entry in entries.values())  # the recent listing
    assert [entry["market-cap"] for entry in body["data"]][-2:] == [None, None]  # the stocks have none
