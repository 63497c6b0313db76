"""get_raw_data.py as its users run it: a subprocess with its environment, against the fake AlphaVantage.

Expected rows are the fake's own bars filtered here; averages are computed here with pandas.
"""
import datetime as dt
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import lib
from financial.extensions import db
from financial.locks import exclusive
from financial.models import AssetClass, Bar, Instrument
from tests.conftest import base_settings, env_for
from tests.fakes.series import daily_bars, minute_bars

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "get_raw_data.py")
KEY = "test-key"
BARS = Bar.__table__
INSTRUMENTS = Instrument.__table__


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def cli(env, *args, timeout=60):
    result = subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    key = env.get("ALPHAVANTAGE_API_KEY")
    if key:
        assert key not in result.stdout + result.stderr, "the API key leaked into the output"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def summary(stdout):
    """{label: (status, rows, detail)} from the per-symbol table, plus the closing line."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["symbol", "status", "rows", "detail"], stdout
    table = {}
    for line in lines[1:-1]:
        label, status, rows, *detail = line.split(maxsplit=3)
        table[label] = (status, int(rows), detail[0] if detail else "")
    return table, lines[-1]


def stored(url, symbol, interval="1day"):
    """{naive UTC timestamp: (open, high, low, close, volume)} of one stock's bars, read with a private engine."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(BARS.c.ts, BARS.c.open, BARS.c.high, BARS.c.low, BARS.c.close, BARS.c.volume)
                .join(INSTRUMENTS, INSTRUMENTS.c.id == BARS.c.instrument_id)
                .where(INSTRUMENTS.c.symbol == symbol, INSTRUMENTS.c.asset_class == AssetClass.STOCK,
                       BARS.c.interval == interval))
            return {row.ts: tuple(row[1:]) for row in rows}
    finally:
        engine.dispose()


def stored_symbols(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return sorted(connection.scalars(sa.select(INSTRUMENTS.c.symbol)))
    finally:
        engine.dispose()


def rows_of(bars):
    return {bar.timestamp.replace(tzinfo=None): (bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in bars}


def last_days(bars, days, today):
    """The daily bars dated within the last `days` calendar days (on or after today - days, UTC)."""
    return [bar for bar in bars if bar.date >= today - dt.timedelta(days=days)]


def queries(fake, symbol=None):
    return [(r["function"], r["symbol"], r.get("interval"), r.get("outputsize")) for r in fake.app.calls(symbol)]


@pytest.fixture
def upstream(fake_av):
    """The fake loaded with 150 weekday bars each of IBM and AAPL, the newest on the last weekday <= yesterday."""
    yesterday = today_utc() - dt.timedelta(days=1)
    fake_av.app.add_daily("IBM", daily_bars("IBM", end=yesterday, count=150, start_price=180.0))
    fake_av.app.add_daily("AAPL", daily_bars("AAPL", end=yesterday, count=150, start_price=190.0))
    return fake_av


@pytest.fixture
def stack_env(stack_settings, upstream):
    """Environment for the current stack (the `app` fixture's database and cache)."""
    return env_for(stack_settings, ALPHAVANTAGE_BASE_URL=upstream.url, ALPHAVANTAGE_API_KEY=KEY)


@pytest.fixture
def sqlite_env(tmp_path, upstream):
    """(database URL, environment) for a fresh SQLite file: for behaviour that is about the process."""
    settings = base_settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}")
    return settings.database_url, env_for(settings, ALPHAVANTAGE_BASE_URL=upstream.url, ALPHAVANTAGE_API_KEY=KEY)


# -- the default run, re-runs and the caches of other processes (both stacks) ------------------------

def expected_statistics(bars, start, end):
    frame = pd.DataFrame([{"date": b.date, "open": b.open, "close": b.close, "volume": b.volume} for b in bars])
    frame = frame[(frame.date >= start) & (frame.date <= end)]
    return frame.open.mean(), frame.close.mean(), frame.volume.mean(), len(frame)


def assert_statistics(data, bars, start, end):
    mean_open, mean_close, mean_volume, points = expected_statistics(bars, start, end)
    assert points >= 5
    assert data["symbol"] == "IBM" and (data["start_date"], data["end_date"]) == (str(start), str(end))
    # Rounded to cents (half-up on the stored mean): within half a cent, and exactly two decimals.
    for name, mean in (("average_daily_open_price", mean_open), ("average_daily_close_price", mean_close)):
        assert abs(data[name] - mean) <= 0.005 + 1e-9, (name, data[name], mean)
        assert Decimal(str(data[name])) == Decimal(str(data[name])).quantize(Decimal("0.01"))
    assert isinstance(data["average_daily_volume"], int) and abs(data["average_daily_volume"] - mean_volume) <= 0.5


def test_default_run_stores_the_last_14_days_and_reruns_update_in_place(
        app, client, stack_settings, stack_env, upstream):
    url = stack_settings.database_url
    today = today_utc()
    fake = upstream.app
    result = cli(stack_env)
    assert result.returncode == 0, result.stderr
    ibm, aapl = last_days(fake.daily["IBM"], 14, today), last_days(fake.daily["AAPL"], 14, today)
    assert len(ibm) == len(aapl) == 10  # today - 14 .. yesterday: two whole weeks, ten weekdays
    table, total = summary(result.stdout)
    assert table == {"IBM": ("ok", len(ibm), ""), "AAPL": ("ok", len(aapl), "")}
    assert total == f"2 instruments: 2 ok, 0 failed, 0 skipped; {len(ibm) + len(aapl)} rows stored"
    assert stored(url, "IBM") == rows_of(ibm)
    assert stored(url, "AAPL") == rows_of(aapl)
    assert queries(upstream) == [("TIME_SERIES_DAILY", "IBM", None, "compact"),
                                 ("TIME_SERIES_DAILY", "AAPL", None, "compact")]
    assert result.stderr.splitlines() == [f"[1/2] IBM: ok, {len(ibm)} rows", f"[2/2] AAPL: ok, {len(aapl)} rows"]

    # Statistics over the stored range, computed once and cached by this (API) process.
    start, end = ibm[0].date, ibm[-1].date
    statistics = f"/api/statistics?symbol=IBM&start_date={start}&end_date={end}"
    before = client.get(statistics).get_json()["data"]
    assert_statistics(before, ibm, start, end)
    with app.app_context():  # behind the service's back (no new generation): the cached answer stays
        db.session.execute(sa.text("UPDATE bars SET close = close + 1000"))
        db.session.commit()
    assert client.get(statistics).get_json()["data"] == before

    # Upstream corrects one close; another process re-ingests: no duplicates, the value updated, and this
    # process's cached statistics are not served any more.
    index = fake.daily["IBM"].index(ibm[-3])
    corrected = replace(ibm[-3], close=round(ibm[-3].close + 25.0, 4), high=round(ibm[-3].high + 25.0, 4))
    fake.daily["IBM"][index] = corrected
    again = cli(stack_env)
    assert again.returncode == 0, again.stderr
    ibm_now = last_days(fake.daily["IBM"], 14, today)
    assert corrected in ibm_now and len(ibm_now) == len(ibm)
    assert stored(url, "IBM") == rows_of(ibm_now)
    assert stored(url, "AAPL") == rows_of(aapl)
    after = client.get(statistics).get_json()["data"]
    assert_statistics(after, ibm_now, start, end)
    assert after["average_daily_close_price"] > before["average_daily_close_price"] + 2  # 25 / 10 days


# -- failures ----------------------------------------------------------------------------------------

FAILING = {"UNKN": "unknown", "PREM": "premium", "HTML": "html200", "DOWN": "html503", "NUMB": "bad_number"}


def test_failed_symbols_are_reported_and_the_others_stored(sqlite_env, upstream):
    url, env = sqlite_env
    fake = upstream.app
    fake.scenarios.update(FAILING)
    fake.add_daily("NUMB", daily_bars("NUMB", end=today_utc() - dt.timedelta(days=1), count=30))
    result = cli(env, "--symbols", "IBM,UNKN,PREM,HTML,DOWN,NUMB,AAPL")
    assert result.returncode == 1
    table, total = summary(result.stdout)
    today = today_utc()
    ibm, aapl = last_days(fake.daily["IBM"], 14, today), last_days(fake.daily["AAPL"], 14, today)
    assert list(table) == ["IBM", "UNKN", "PREM", "HTML", "DOWN", "NUMB", "AAPL"]
    assert table["IBM"] == ("ok", len(ibm), "") and table["AAPL"] == ("ok", len(aapl), "")
    newest_numb = fake.daily["NUMB"][-1].date
    expected_details = {
        "UNKN": "NotFoundError: unknown symbol 'UNKN' or invalid call: Invalid API call.",
        "PREM": "PremiumRequiredError: premium plan required: Thank you for using Alpha Vantage! This is a premium "
                "endpoint.",
        "HTML": "ServerError: alphavantage: body is not JSON (HTTP 200, starts '<!DOCTYPE html>",
        "DOWN": "ServerError: alphavantage: server error (HTTP 503)",
        "NUMB": f"MalformedPayloadError: malformed AlphaVantage payload: row {newest_numb} field '1. open' is not a "
                f"number: 'n/a'",
    }
    for symbol, start in expected_details.items():
        status, rows, detail = table[symbol]
        assert (status, rows) == ("failed", 0), symbol
        assert detail.startswith(start), (symbol, detail)
    assert total == f"7 instruments: 2 ok, 5 failed, 0 skipped; {len(ibm) + len(aapl)} rows stored"
    assert stored_symbols(url) == ["AAPL", "IBM"]
    assert stored(url, "IBM") == rows_of(ibm) and stored(url, "AAPL") == rows_of(aapl)
    attempts = lib.RetryPolicy().attempts
    assert len(fake.calls("HTML")) == len(fake.calls("DOWN")) == attempts  # transient-looking: retried
    assert len(fake.calls("UNKN")) == len(fake.calls("PREM")) == len(fake.calls("NUMB")) == 1  # permanent: not


def test_transient_failures_are_retried_then_stored(sqlite_env, upstream):
    url, env = sqlite_env
    fake = upstream.app
    fake.scenarios["IBM"] = "fail_then_ok:2"
    result = cli(env, "--symbols", "IBM")
    assert result.returncode == 0, result.stderr
    ibm = last_days(fake.daily["IBM"], 14, today_utc())
    assert summary(result.stdout) == ({"IBM": ("ok", len(ibm), "")},
                                      f"1 instruments: 1 ok, 0 failed, 0 skipped; {len(ibm)} rows stored")
    assert stored(url, "IBM") == rows_of(ibm)
    assert len(fake.calls("IBM")) == 3


def test_spent_quota_stops_the_calls_and_reports_the_rest(sqlite_env, upstream):
    url, env = sqlite_env
    fake = upstream.app
    secret = "Q7-SECRET-KEY-4242"
    fake.api_key, env["ALPHAVANTAGE_API_KEY"] = secret, secret
    fake.add_daily("MSFT", daily_bars("MSFT", end=today_utc() - dt.timedelta(days=1), count=30))
    fake.quota = 1
    result = cli(env, "--symbols", "IBM,AAPL,MSFT")  # cli() checks that the key appears nowhere
    assert result.returncode == 1
    ibm = last_days(fake.daily["IBM"], 14, today_utc())
    table, total = summary(result.stdout)
    assert table["IBM"] == ("ok", len(ibm), "")
    status, rows, detail = table["AAPL"]
    assert (status, rows) == ("failed", 0)
    assert detail.startswith("daily quota spent: We have detected your API key as *** and our standard API rate "
                             "limit is 25 requests per day.")
    assert table["MSFT"] == ("skipped", 0, "not fetched: the alphavantage daily quota is spent")
    assert total == f"3 instruments: 1 ok, 1 failed, 1 skipped; {len(ibm)} rows stored"
    assert [call["symbol"] for call in fake.calls()] == ["IBM", "AAPL"]
    assert stored_symbols(url) == ["IBM"]


# -- usage and configuration errors: one line, the right exit code, no traceback ---------------------

def test_usage_and_configuration_errors(sqlite_env, tmp_path):
    url, env = sqlite_env
    no_key = {k: v for k, v in env.items() if k != "ALPHAVANTAGE_API_KEY"}
    untouched = tmp_path / "untouched.db"  # the database of the cases that must stop before opening one
    early = {**env, "DATABASE_URL": f"sqlite:///{untouched}"}
    script, app_py = [sys.executable, SCRIPT], [sys.executable, str(ROOT / "app.py")]
    cases = {
        "no key": (script, no_key),
        "--days 0": (script + ["--days", "0"], early),
        "--interval 2min": (script + ["--interval", "2min"], early),
        "--symbols I B M": (script + ["--symbols", "I B M"], early),
        "ingest PORT": (script, {**early, "PORT": "abc"}),
        "ingest DATABASE_URL": (script, {**env, "DATABASE_URL": "postgres://x"}),
        "ingest unreachable database": (script, {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/x.db"}),
        "app PORT": (app_py, {**early, "PORT": "abc"}),
        "app unreachable database": (app_py, {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/x.db"}),
    }
    processes = {name: subprocess.Popen(command, cwd=ROOT, env=case_env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, (command, case_env) in cases.items()}
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        results[name] = (process.returncode, out, err.splitlines())
        assert "Traceback" not in err, (name, err)
        assert KEY not in out + err
    usage = "usage: get_raw_data.py"

    code, out, err = results["no key"]
    assert (code, out) == (2, "")
    assert len(err) == 1 and "ALPHAVANTAGE_API_KEY" in err[0], err
    assert err[0].startswith("error: no AlphaVantage API key: set ALPHAVANTAGE_API_KEY")

    for name, message in [("--days 0", "--days must be between 1 and 36500, got 0"),
                          ("--interval 2min", "--interval: unknown interval '2min'; expected one of 1min, 5min, "
                                              "15min, 30min, 60min, 1day"),
                          ("--symbols I B M", "--symbols: 'I B M' is not a valid symbol")]:
        code, out, err = results[name]
        assert (code, out) == (2, ""), name
        assert err[0].startswith(usage) and err[-1] == f"get_raw_data.py: error: {message}", (name, err)

    assert results["ingest PORT"] == (2, "", ["configuration error: PORT must be an integer, got 'abc'"])
    assert results["ingest DATABASE_URL"] == (2, "", [
        "configuration error: DATABASE_URL must start with sqlite:// or mysql+pymysql:// or mysql:// or "
        "mariadb+pymysql://, got 'postgres'"])
    code, out, err = results["ingest unreachable database"]
    assert (code, out, len(err)) == (1, "", 1), err
    assert err[0].startswith("error: cannot open the database of DATABASE_URL (sqlite:///")
    assert results["app PORT"] == (2, "", ["configuration error: PORT must be an integer, got 'abc'"])
    code, out, err = results["app unreachable database"]
    assert (code, out, len(err)) == (1, "", 1), err
    assert err[0].startswith("error: cannot open the database of DATABASE_URL (sqlite:///")
    assert not untouched.exists()  # usage and configuration errors stop before the database is opened


# -- intraday and the premium fallback ----------------------------------------------------------------

def trading_hours_end(now):
    """18:00 UTC (13:00 or 14:00 in New York) of today if that is past, else of yesterday: minute bars ending
    there never touch the hour that US/Eastern repeats when daylight saving time ends."""
    end = now.replace(hour=18, minute=0, second=0, microsecond=0)
    return end if end <= now - dt.timedelta(minutes=5) else end - dt.timedelta(days=1)


def test_intraday_stores_utc_timestamps_of_the_window(sqlite_env, upstream):
    url, env = sqlite_env
    fake = upstream.app
    end = trading_hours_end(dt.datetime.now(dt.timezone.utc))
    recent = minute_bars("IBM", end=end, count=120, start_price=180.0, volume_decimals=0)
    too_old = minute_bars("IBM-old", end=end - dt.timedelta(days=20), count=30, start_price=170.0, volume_decimals=0)
    fake.add_intraday("IBM", "1min", too_old + recent)
    result = cli(env, "--symbols", "IBM", "--interval", "1min")
    assert result.returncode == 0, result.stderr
    assert summary(result.stdout) == ({"IBM": ("ok", 120, "")},
                                      "1 instruments: 1 ok, 0 failed, 0 skipped; 120 rows stored; alerts: 0 raised; "
                                      "e-mail off (no SMTP_HOST)")
    assert queries(upstream) == [("TIME_SERIES_INTRADAY", "IBM", "1min", "full")]
    rows = stored(url, "IBM", "1min")
    assert rows == rows_of(recent)
    assert min(rows) == (end - dt.timedelta(minutes=119)).replace(tzinfo=None)
    assert max(rows) == end.replace(tzinfo=None)
    assert stored(url, "IBM") == {}  # no daily bars


def test_long_daily_history_falls_back_to_compact_without_premium(sqlite_env, upstream):
    url, env = sqlite_env
    fake = upstream.app
    fake.premium_full = True
    result = cli(env, "--symbols", "IBM", "--days", "200")
    assert result.returncode == 0, result.stderr
    newest_100 = fake.daily["IBM"][-100:]
    assert all(bar.date >= today_utc() - dt.timedelta(days=200) for bar in newest_100)
    assert summary(result.stdout) == (
        {"IBM": ("ok", 100, "only the latest 100 points: the full history is a premium feature for this key")},
        "1 instruments: 1 ok, 0 failed, 0 skipped; 100 rows stored")
    assert queries(upstream) == [("TIME_SERIES_DAILY", "IBM", None, "full"),
                                 ("TIME_SERIES_DAILY", "IBM", None, "compact")]
    assert stored(url, "IBM") == rows_of(newest_100)


# -- scheduler mode ----------------------------------------------------------------------------------

def test_scheduler_runs_every_interval_up_to_max_runs(sqlite_env, upstream, tmp_path):
    url, env = sqlite_env
    heartbeat = tmp_path / "heartbeat"
    started, started_wall = time.monotonic(), time.time()
    result = cli(env, "--every", "1", "--max-runs", "2", "--heartbeat", str(heartbeat))
    elapsed = time.monotonic() - started
    assert started_wall <= heartbeat.stat().st_mtime <= time.time()  # touched by the runs
    assert result.returncode == 0, result.stderr
    ibm = last_days(upstream.app.daily["IBM"], 14, today_utc())
    aapl = last_days(upstream.app.daily["AAPL"], 14, today_utc())
    totals = [line for line in result.stdout.splitlines() if line.startswith("2 instruments:")]
    assert totals == [f"2 instruments: 2 ok, 0 failed, 0 skipped; {len(ibm) + len(aapl)} rows stored"] * 2
    assert [call["symbol"] for call in upstream.app.calls()] == ["IBM", "AAPL", "IBM", "AAPL"]
    assert elapsed >= 1.0  # the second run waited for its tick
    assert stored(url, "IBM") == rows_of(ibm)


def test_scheduler_skips_while_another_process_holds_the_lock(app, stack_settings, stack_env, upstream):
    with app.app_context(), exclusive(db.engine, "scheduled-ingest"):
        result = cli(stack_env, "--every", "1", "--max-runs", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "another ingest holds the scheduler lock; skipping this run" in result.stderr
    assert upstream.app.calls() == []
    assert stored_symbols(stack_settings.database_url) == []


def test_sigterm_between_runs_ends_the_scheduler_promptly(sqlite_env, upstream):
    url, env = sqlite_env
    process = subprocess.Popen([sys.executable, SCRIPT, "--symbols", "IBM", "--every", "60"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        seen = []
        while not (seen and seen[-1].startswith("1 instruments:")):
            seen.append(lines.get(timeout=30).rstrip("\n"))  # the first run's summary: now it sleeps
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        assert time.monotonic() - signalled < 3
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.communicate()[1]
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert len(upstream.app.calls()) == 1
    assert len(stored(url, "IBM")) == len(last_days(upstream.app.daily["IBM"], 14, today_utc()))


# -- known defects ----------------------------------------------------------------------------------

def test_progress_is_the_only_console_output_at_info_level(sqlite_env, upstream):
    url, env = sqlite_env
    env.update(LOG_LEVEL="INFO", LOG_DIR="")
    result = cli(env, "--symbols", "IBM")
    assert result.returncode == 0
    rows = len(last_days(upstream.app.daily["IBM"], 14, today_utc()))
    assert result.stderr.splitlines() == [f"[1/1] IBM: ok, {rows} rows"]
