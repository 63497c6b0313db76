"""`make bench`: throughput and latency of the main endpoints under gunicorn, as ratios to a bare Flask
endpoint served by the same gunicorn configuration in the same run; ingest rows per second; uncached
statistics over a large bars table; worker memory after the load.

    python -m tests.bench.run [--duration 10] [--rows 1000000] [--stacks sqlite,mysql] [--connections 8]

Each stack gets its own database, seeded through the product's own upsert path (which is also how the
ingest rate is measured): IBM, AAPL and a few more stocks with ten years of daily bars, plus filler
minute bars of other instruments up to `--rows` rows, so that queries run against a large table.
Load comes from wrk on this machine (it shares the CPU with the server: the ratio to the bare endpoint
is the meaningful figure). `/api/metrics` is measured as served (from the cache), and the rankings refresh
each ingest ends with is timed once over the whole table. Results are printed as a table and written to
data/bench/latest.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

import lib
from financial import create_app, storage
from financial.extensions import db
from financial.models import CRYPTO, STOCK
from financial.services import metrics
from tests.conftest import MYSQL_ADMIN_URL, REDIS_URL, base_settings, empty_tables
from tests.fakes.series import daily_bars, minute_bars

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "bench"
HERE = Path(__file__).resolve().parent
STOCKS = {"IBM": 140.0, "AAPL": 150.0, "MSFT": 300.0, "GOOG": 120.0, "AMZN": 130.0}
DAILY_YEARS = 10
FILLER_INSTRUMENTS = 40


# -- seeding and ingest rate ------------------------------------------------------------------------

def stack_settings(stack: str, database_url: str):
    if stack == "sqlite":
        return base_settings(database_url=database_url, cache_key_prefix="bench:")
    return base_settings(database_url=database_url, redis_url=REDIS_URL.rsplit("/", 1)[0] + "/14",
                         cache_key_prefix="bench:")


def prepare_database(stack: str) -> str:
    if stack == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / "bench.db"
        for leftover in OUT.glob("bench.db*"):
            leftover.unlink()
        return f"sqlite:///{path}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text("DROP DATABASE IF EXISTS mdt_bench"))
        connection.execute(sa.text("CREATE DATABASE mdt_bench CHARACTER SET utf8mb4"))
    admin.dispose()
    return sa.engine.make_url(MYSQL_ADMIN_URL).set(database="mdt_bench").render_as_string(hide_password=False)


def seed(stack: str, database_url: str, total_rows: int) -> dict:
    """Fill the database; returns the ingest figures (rows/s for inserts and for updates)."""
    app = create_app(stack_settings(stack, database_url), process="bench")
    empty_tables(app)
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    figures = {}
    with app.app_context():
        session = db.session
        for symbol, price in STOCKS.items():
            instrument = storage.get_or_create_instrument(session, STOCK, symbol)
            bars = daily_bars(symbol, end=yesterday, count=DAILY_YEARS * 261, start_price=price)
            storage.upsert_bars(session, storage.bar_rows(instrument.id, lib.Interval.DAY, bars))
        storage.bump_generation(session)
        session.commit()
        daily_rows = len(STOCKS) * DAILY_YEARS * 261
        filler = max(0, total_rows - daily_rows)
        per_instrument = max(1, filler // FILLER_INSTRUMENTS)
        now = dt.datetime.now(dt.timezone.utc)
        insert_seconds, inserted = 0.0, 0
        sample_rows: list[dict] = []
        for number in range(FILLER_INSTRUMENTS if filler else 0):
            instrument = storage.get_or_create_instrument(session, CRYPTO, f"pair{number}", exchange="bench")
            session.commit()
            bars = minute_bars(f"filler{number}", end=now, count=per_instrument, start_price=100 + number)
            rows = storage.bar_rows(instrument.id, lib.Interval.MIN1, bars)
            started = time.perf_counter()
            storage.upsert_bars(session, rows)
            session.commit()
            insert_seconds += time.perf_counter() - started
            inserted += len(rows)
            if not sample_rows:
                sample_rows = rows
            print(f"  seeded {inserted:,} filler rows", end="\r", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        if inserted:
            figures["ingest_insert_rows_per_s"] = inserted / insert_seconds
            changed = [{**row, "close": row["close"] * 1.001} for row in sample_rows]
            started = time.perf_counter()
            storage.upsert_bars(session, changed)
            session.commit()
            figures["ingest_update_rows_per_s"] = len(changed) / (time.perf_counter() - started)
        figures["table_rows"] = session.scalar(sa.select(sa.func.count()).select_from(sa.table("bars")))
        # What each ingest ends with: the rankings of the standard windows over every instrument.
        started = time.perf_counter()
        metrics.refresh_rankings()
        figures["rankings_refresh_s"] = time.perf_counter() - started
        db.engine.dispose()
    return figures


# -- servers and load -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(module: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                                module], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    probe = "/bare" if module.endswith("bare:app") else "/healthz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn {module} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(base + probe, timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn {module} did not become ready")


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def worker_rss_mb(process: subprocess.Popen) -> list[float]:
    sizes = []
    for child in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split():
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def wrk(url: str, *, duration: int, connections: int, lua: str = "") -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua + "\n" + (HERE / "report.lua").read_text())
    try:
        output = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script.name, url],
                                capture_output=True, text=True, timeout=duration + 60).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    raw = json.loads(line[len("BENCH "):])
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return {"rps": raw["requests"] / (raw["duration_us"] / 1e6), "p50_ms": raw["p50_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "requests": raw["requests"], "errors": errors}


def warm(url: str) -> None:
    for _ in range(3):
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()


def random_ranges_lua(days: list[dt.date], span: int) -> str:
    """wrk script asking /api/statistics for a random one-year range each time (mostly cache misses)."""
    dates = ",".join(f'"{day.isoformat()}"' for day in days)
    return f"""
local dates = {{{dates}}}
local span = {span}
math.randomseed(os.time())
request = function()
  local first = math.random(1, #dates - span)
  local path = "/api/statistics?symbol=IBM&start_date=" .. dates[first] .. "&end_date=" .. dates[first + span]
  return wrk.format(nil, path)
end
"""


# -- the run ----------------------------------------------------------------------------------------

def bench_stack(stack: str, args, results: list[dict], env_base: dict) -> dict:
    print(f"== {stack}: seeding {args.rows:,} rows", file=sys.stderr)
    database_url = prepare_database(stack)
    figures = seed(stack, database_url, args.rows)
    settings = stack_settings(stack, database_url)
    env = {**env_base, "DATABASE_URL": database_url, "CACHE_KEY_PREFIX": settings.cache_key_prefix}
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
        import redis
        redis.Redis.from_url(settings.redis_url).flushdb()
    server, base = start_server("app:app", env)
    try:
        yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        year_ago = yesterday - dt.timedelta(days=365)
        month_ago = yesterday - dt.timedelta(days=40)
        cached = {
            "statistics (cached)": f"/api/statistics?symbol=IBM&start_date={year_ago}&end_date={yesterday}",
            "financial_data 100 rows (cached)":
                f"/api/financial_data?start_date={month_ago}&end_date={yesterday}&limit=100",
            "metrics 24h ranking (cached)": "/api/metrics",
            "dashboard (cached)": "/api/dashboard",
        }
        for name, path in cached.items():
            warm(base + path)
            figures_of_endpoint = wrk(base + path, duration=args.duration, connections=args.connections)
            results.append({"stack": stack, "endpoint": name, **figures_of_endpoint})
            print(f"   {name}: {results[-1]['rps']:.0f} req/s", file=sys.stderr)
        days = [yesterday - dt.timedelta(days=n) for n in range(DAILY_YEARS * 365, -1, -1)]
        lua = random_ranges_lua(days, 365)
        results.append({"stack": stack, "endpoint": "statistics (uncached, 1-year range)",
                        **wrk(base + "/api/statistics", duration=args.duration, connections=args.connections,
                              lua=lua)})
        print(f"   uncached statistics: p99 {results[-1]['p99_ms']:.1f} ms", file=sys.stderr)
        figures["worker_rss_mb"] = worker_rss_mb(server)
    finally:
        stop_server(server)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "10")))
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "1000000")))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--stacks", default="sqlite,mysql")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is needed for the benchmark: apt-get install wrk", file=sys.stderr)
        return 2
    env_base = {key: value for key, value in os.environ.items()
                if not key.startswith(("DATABASE_", "REDIS_", "CACHE_", "ALPHAVANTAGE_"))}
    env_base.update(ENV_FILE=os.devnull, LOG_DIR="", APP_ENV="production", SECRET_KEY="bench-secret",
                    LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warning"), PYTHONPATH=str(ROOT))
    results: list[dict] = []
    bare_server, bare_base = start_server("tests.bench.bare:app", env_base)
    try:
        bare = wrk(bare_base + "/bare", duration=args.duration, connections=args.connections)
    finally:
        stop_server(bare_server)
    results.append({"stack": "-", "endpoint": "bare Flask JSON (baseline)", **bare})
    print(f"== baseline: {bare['rps']:.0f} req/s", file=sys.stderr)
    stacks = {}
    for stack in [s.strip() for s in args.stacks.split(",") if s.strip()]:
        stacks[stack] = bench_stack(stack, args, results, env_base)
    for row in results:
        row["ratio_to_bare"] = row["rps"] / bare["rps"]
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": {"duration_s": args.duration, "connections": args.connections, "rows": args.rows,
                           "gunicorn": "2 sync workers, conf/gunicorn.conf.py"},
              "endpoints": results, "stacks": stacks}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    return 0


def render(report: dict) -> str:
    lines = [f"{'stack':<7} {'endpoint':<36} {'req/s':>8} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"]
    for row in report["endpoints"]:
        lines.append(f"{row['stack']:<7} {row['endpoint']:<36} {row['rps']:>8.0f} {row['ratio_to_bare']:>6.2f} "
                     f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['errors']:>6}")
    for stack, figures in report["stacks"].items():
        parts = [f"{figures.get('table_rows', 0):,} rows in bars"]
        if "ingest_insert_rows_per_s" in figures:
            parts.append(f"ingest {figures['ingest_insert_rows_per_s']:,.0f} rows/s insert, "
                         f"{figures['ingest_update_rows_per_s']:,.0f} rows/s update")
        if "rankings_refresh_s" in figures:
            parts.append(f"rankings refresh {figures['rankings_refresh_s']:.2f} s")
        if figures.get("worker_rss_mb"):
            parts.append("worker RSS " + ", ".join(f"{mb:.0f} MB" for mb in figures["worker_rss_mb"]))
        lines.append(f"{stack}: " + "; ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
