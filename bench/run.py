"""`make bench`: the service's speed and memory, measured.

    python -m bench.run [--duration 10] [--rows-sqlite 1000000] [--rows-mysql 10000000]
                              [--stacks sqlite,mysql] [--mixed-rate 1000] [--mixed-seconds 60]

What it measures, on this machine, with gunicorn as shipped (conf/gunicorn.conf.py: threaded workers,
`--workers` of them, 2 by default, `--threads` each, the shipped 8 by default; every server alike) and wrk:
- a bare Flask JSON endpoint, the baseline: every throughput below is also given as a ratio to it,
  measured in the same run under the same gunicorn configuration;
- cached /api/statistics, /api/financial_data (100 rows), /api/metrics and /api/dashboard, per stack
  (SQLite with the in-process cache; MySQL with Redis);
- uncached /api/statistics over random one-year ranges, in a bars table of `--rows-*` rows (mostly a
  year of minute bars per filler market, beside ten years of daily stock bars);
- a mixed load at `--mixed-rate` requests/s for `--mixed-seconds` on the MySQL + Redis stack (mostly
  cached reads of every group, a tenth uncached statistics), counting errors;
- ingest: bar upserts through the product's own write path, rows/s for fresh inserts and for updates;
- the rankings refresh each minute ingest ends with, over the whole table;
- each gunicorn worker's resident memory after the load.
The servers run as in production (APP_ENV=production, a JSON log line per request at the default
`info` level; BENCH_LOG_LEVEL changes it). wrk runs on the same two cores as the server, so absolute
figures understate a dedicated server; the ratios to the bare endpoint are the comparable figures (from
one run to the next they move by about a tenth on this machine). The seeded databases are reused by the next run
of the same size on the same day (seeding 10 million MySQL rows takes minutes). Results are printed as a
table and written to data/bench/latest.json.
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
from financial.models import AssetClass, Bar, ServiceState
from financial.services import metrics
from tests.conftest import MYSQL_ADMIN_URL, REDIS_URL, base_settings, empty_tables
from tests.fakes.series import daily_bars, minute_bars

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "bench"
HERE = Path(__file__).resolve().parent
STOCKS = {"IBM": 140.0, "AAPL": 150.0, "MSFT": 300.0, "GOOG": 120.0, "AMZN": 130.0}
DAILY_YEARS = 10
MINUTES_A_YEAR = 365 * 24 * 60
INGEST_SAMPLE = 200_000
SEED_MARK = "bench_seed"
TARGETS = {"cached_ratio": 0.7, "cached_p99_ms": 50, "uncached_p99_ms": 50, "mysql_ingest": 40_000,
           "sqlite_ingest": 150_000, "worker_rss_mb": 150}


# -- databases, seeding and ingest rate -------------------------------------------------------------

def stack_settings(stack: str, database_url: str):
    if stack == "sqlite":
        return base_settings(database_url=database_url, cache_key_prefix="bench:")
    return base_settings(database_url=database_url, redis_url=REDIS_URL.rsplit("/", 1)[0] + "/14",
                         cache_key_prefix="bench:")


def database_url(stack: str) -> str:
    if stack == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{OUT / 'bench.db'}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text("CREATE DATABASE IF NOT EXISTS mdt_bench CHARACTER SET utf8mb4"))
    admin.dispose()
    return sa.engine.make_url(MYSQL_ADMIN_URL).set(database="mdt_bench").render_as_string(hide_password=False)


def seed(app, total_rows: int) -> bool:
    """Fill the database unless it already holds this seed (same size, same day); True when seeded now."""
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    mark = f"{total_rows}:{yesterday}"
    with app.app_context():
        if db.session.get(ServiceState, SEED_MARK) and db.session.get(ServiceState, SEED_MARK).value == mark:
            return False
    empty_tables(app)
    with app.app_context():
        session = db.session
        for symbol, price in STOCKS.items():
            instrument = storage.instruments.get_or_create(session, AssetClass.STOCK, symbol)
            bars = daily_bars(symbol, end=yesterday, count=DAILY_YEARS * 261, start_price=price)
            storage.bars.upsert(session, storage.bars.rows(instrument.id, lib.Interval.DAY, bars))
        session.commit()
        filler = max(0, total_rows - len(STOCKS) * DAILY_YEARS * 261)
        markets = -(-filler // MINUTES_A_YEAR)  # each filler market holds at most a year of minutes
        now = dt.datetime.now(dt.timezone.utc)
        seeded = 0
        for number in range(markets):
            count = min(MINUTES_A_YEAR, filler - seeded)
            instrument = storage.instruments.get_or_create(session, AssetClass.CRYPTO, f"pair{number}",
                                                           exchange="bench", base=f"C{number}", quote="USD")
            for start in range(0, count, 100_000):  # in slices: a year of minute bars is 525,600 rows
                bars = minute_bars(f"filler{number}", end=now - dt.timedelta(minutes=start),
                                   count=min(100_000, count - start), start_price=100 + number)
                storage.bars.upsert(session, storage.bars.rows(instrument.id, lib.Interval.MIN1, bars))
                session.commit()
            seeded += count
            print(f"  seeded {seeded:,} of {filler:,} minute rows", file=sys.stderr, flush=True)
        storage.state.bump_generation(session)
        session.merge(ServiceState(name=SEED_MARK, value=mark))
        session.commit()
    return True


def measure_ingest(app) -> dict:
    """Rows/s of bar upserts through the product's write path: fresh rows, then the same rows updated."""
    with app.app_context():
        session = db.session
        instrument = storage.instruments.get_or_create(session, AssetClass.CRYPTO, "ingestbench", exchange="bench")
        session.execute(sa.delete(Bar).where(Bar.instrument_id == instrument.id))
        session.commit()
        bars = minute_bars("ingest", end=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), count=INGEST_SAMPLE)
        rows = storage.bars.rows(instrument.id, lib.Interval.MIN1, bars)
        started = time.perf_counter()
        storage.bars.upsert(session, rows)
        session.commit()
        insert = len(rows) / (time.perf_counter() - started)
        changed = [{**row, "close": row["close"] * 1.001} for row in rows]
        started = time.perf_counter()
        storage.bars.upsert(session, changed)
        session.commit()
        update = len(rows) / (time.perf_counter() - started)
        session.execute(sa.delete(Bar).where(Bar.instrument_id == instrument.id))
        session.commit()
    return {"ingest_insert_rows_per_s": insert, "ingest_update_rows_per_s": update}


def refresh_rankings(app) -> float:
    with app.app_context():
        started = time.perf_counter()
        metrics.refresh_rankings()
        return time.perf_counter() - started


def table_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(sa.table("bars")))


# -- servers and load -------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(module: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                                module], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    probe = "/bare" if module.endswith("bare:app") else "/healthz"
    deadline = time.monotonic() + 120
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
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()


def lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(value) for value in values) + "}"


def random_ranges_lua(days: list[dt.date], span: int) -> str:
    """wrk script asking /api/statistics for a random one-year range each time (mostly cache misses)."""
    return f"""
local dates = {lua_list([day.isoformat() for day in days])}
local span = {span}
math.randomseed(os.time())
local function uncached()
  local first = math.random(1, #dates - span)
  return "/api/statistics?symbol=IBM&start_date=" .. dates[first] .. "&end_date=" .. dates[first + span]
end
request = function() return wrk.format(nil, uncached()) end
"""


def mixed_lua(paths: list[str], days: list[dt.date], *, connections: int, rate: int) -> str:
    """wrk script for the mixed load: paths in turn, every tenth request an uncached statistics range,
    each connection pausing between requests so that all of them together send about `rate` per second."""
    pause_ms = max(0, round(connections * 1000 / rate) - 1)  # minus about one request's own time
    return random_ranges_lua(days, 365) + f"""
local paths = {lua_list(paths)}
local counter = 0
request = function()
  counter = counter + 1
  if counter % 10 == 0 then return wrk.format(nil, uncached()) end
  return wrk.format(nil, paths[(counter % #paths) + 1])
end
delay = function() return {pause_ms} end
"""


# -- the run ----------------------------------------------------------------------------------------

def bench_stack(stack: str, rows: int, args, results: list[dict], env_base: dict) -> dict:
    url = database_url(stack)
    settings = stack_settings(stack, url)
    app = create_app(settings, process="bench")
    print(f"== {stack}: {rows:,} rows", file=sys.stderr)
    if seed(app, rows):
        print("   seeded", file=sys.stderr)
    figures = {"table_rows": table_rows(app), "rankings_refresh_s": refresh_rankings(app)}
    print(f"   rankings refresh {figures['rankings_refresh_s']:.1f} s", file=sys.stderr)
    with app.app_context():
        db.engine.dispose()
    env = {**env_base, "DATABASE_URL": url, "CACHE_KEY_PREFIX": settings.cache_key_prefix}
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
        import redis
        redis.Redis.from_url(settings.redis_url).flushdb()
    server, base = start_server("app:app", env)
    try:
        yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        year_ago, month_ago = yesterday - dt.timedelta(days=365), yesterday - dt.timedelta(days=40)
        cached = {
            "statistics (cached)": f"/api/statistics?symbol=IBM&start_date={year_ago}&end_date={yesterday}",
            "financial_data 100 rows (cached)":
                f"/api/financial_data?start_date={month_ago}&end_date={yesterday}&limit=100",
            "metrics 24h ranking (cached)": "/api/metrics",
            "dashboard (cached)": "/api/dashboard",
        }
        for name, path in cached.items():
            warm(base + path)
            results.append({"stack": stack, "endpoint": name, "kind": "cached",
                            **wrk(base + path, duration=args.duration, connections=args.connections)})
            print(f"   {name}: {results[-1]['rps']:.0f} req/s", file=sys.stderr)
        days = [yesterday - dt.timedelta(days=n) for n in range(DAILY_YEARS * 365, -1, -1)]
        results.append({"stack": stack, "endpoint": "statistics (uncached, 1-year range)", "kind": "uncached",
                        **wrk(base + "/api/statistics", duration=args.duration, connections=args.connections,
                              lua=random_ranges_lua(days, 365))})
        print(f"   uncached statistics: p99 {results[-1]['p99_ms']:.1f} ms", file=sys.stderr)
        if stack == "mysql" and args.mixed_seconds:
            paths = list(cached.values()) + ["/api/metrics?window=7d", "/api/search?name=ibm", "/healthz",
                                             f"/api/financial_data?symbol=AAPL&start_date={month_ago}"]
            lua = mixed_lua(paths, days, connections=40, rate=args.mixed_rate)
            results.append({"stack": stack, "endpoint": f"mixed load at {args.mixed_rate}/s for {args.mixed_seconds}s",
                            "kind": "mixed", **wrk(base + "/healthz", duration=args.mixed_seconds, connections=40,
                                                   lua=lua)})
            print(f"   mixed load: {results[-1]['rps']:.0f} req/s, {results[-1]['errors']} errors", file=sys.stderr)
        figures["worker_rss_mb"] = worker_rss_mb(server)
    finally:
        stop_server(server)
    # After the HTTP figures: the database's background work after 400,000 row changes (InnoDB's purge
    # and page flushing) would otherwise share the two cores with them.
    figures.update(measure_ingest(app))
    print(f"   ingest {figures['ingest_insert_rows_per_s']:,.0f} rows/s insert", file=sys.stderr)
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "10")))
    parser.add_argument("--rows-sqlite", type=int, default=int(os.environ.get("BENCH_ROWS_SQLITE", "1000000")))
    parser.add_argument("--rows-mysql", type=int, default=int(os.environ.get("BENCH_ROWS_MYSQL", "10000000")))
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--stacks", default="sqlite,mysql")
    parser.add_argument("--mixed-rate", type=int, default=1000)
    parser.add_argument("--mixed-seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, for every server alike")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (conf/gunicorn.conf.py's default)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is needed for the benchmark: apt-get install wrk", file=sys.stderr)
        return 2
    env_base = {key: value for key, value in os.environ.items()
                if not key.startswith(("DATABASE_", "REDIS_", "CACHE_", "ALPHAVANTAGE_"))}
    env_base.update(WEB_CONCURRENCY=str(args.workers), GUNICORN_THREADS=str(args.threads), ENV_FILE=os.devnull,
                    LOG_DIR="", APP_ENV="production", SECRET_KEY="bench-secret", AUTO_MIGRATE="true",
                    LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "info"), PYTHONPATH=str(ROOT))
    results: list[dict] = []
    bare_server, bare_base = start_server("bench.bare:app", env_base)
    try:
        bare = wrk(bare_base + "/bare", duration=args.duration, connections=args.connections)
    finally:
        stop_server(bare_server)
    results.append({"stack": "-", "endpoint": "bare Flask JSON (baseline)", "kind": "baseline", **bare})
    print(f"== baseline: {bare['rps']:.0f} req/s", file=sys.stderr)
    stacks = {}
    rows = {"sqlite": args.rows_sqlite, "mysql": args.rows_mysql}
    for stack in [s.strip() for s in args.stacks.split(",") if s.strip()]:
        stacks[stack] = bench_stack(stack, rows[stack], args, results, env_base)
    for row in results:
        row["ratio_to_bare"] = row["rps"] / bare["rps"]
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": {"duration_s": args.duration, "connections": args.connections, "rows": rows,
                           "gunicorn": f"{args.workers} workers x {args.threads} threads, conf/gunicorn.conf.py"},
              "targets": TARGETS, "endpoints": results, "stacks": stacks}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    return 0


def verdict(row: dict) -> str:
    if row["kind"] == "cached":
        ok = row["ratio_to_bare"] >= TARGETS["cached_ratio"] and row["p99_ms"] < TARGETS["cached_p99_ms"]
        return "met" if ok else f"target >= {TARGETS['cached_ratio']} and p99 < {TARGETS['cached_p99_ms']} ms"
    if row["kind"] == "uncached":
        return "met" if row["p99_ms"] < TARGETS["uncached_p99_ms"] else f"target p99 < {TARGETS['uncached_p99_ms']} ms"
    if row["kind"] == "mixed":
        return "met" if row["errors"] == 0 else "target: no errors"
    return ""


def render(report: dict) -> str:
    lines = [f"{'stack':<7} {'endpoint':<38} {'req/s':>7} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  "
             f"verdict"]
    for row in report["endpoints"]:
        lines.append(f"{row['stack']:<7} {row['endpoint']:<38} {row['rps']:>7.0f} {row['ratio_to_bare']:>6.2f} "
                     f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['errors']:>6}  {verdict(row)}")
    for stack, figures in report["stacks"].items():
        target = TARGETS[f"{stack}_ingest"]
        rss = figures.get("worker_rss_mb") or [0]
        lines.append(f"{stack}: {figures['table_rows']:,} rows in bars; ingest "
                     f"{figures['ingest_insert_rows_per_s']:,.0f} rows/s insert, "
                     f"{figures['ingest_update_rows_per_s']:,.0f} rows/s update (target {target:,}); rankings "
                     f"refresh {figures['rankings_refresh_s']:.1f} s; worker RSS "
                     f"{', '.join(f'{mb:.0f}' for mb in rss)} MB (target < {TARGETS['worker_rss_mb']})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
