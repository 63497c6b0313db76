"""The cost of keeping figures current as history grows (`make bench`, part of it; MySQL + Redis).

    python -m bench.growth [--markets 1,50,200] [--days 30] [--stocks 500] [--duration 10] [--samples 50]

In a database of its own (`mdt_bench_growth`, reused the same day), markets are added in steps until there
are `--markets` of them, each with `--days` of minute bars (200 x 30 days is about 8.6 M rows), plus ten
years of daily bars of 500 stock symbols. At each step:
- a one-market minute ingest, as the scheduler runs it: six minutes (five of overlap, one new) stored
  through the runner, then its after-run steps (retention with MINUTE_RETENTION_DAYS=60, the rankings,
  the alerts), timed as a whole; target: flat, at most 1.5x from the first step to the last;
- the after-run steps of a minute ingest that stored every market (target < 2 s at 200);
At the last step, served by gunicorn with the production configuration and loaded with wrk:
- `/api/metrics?window=36h`, the first answer after an ingest: a new data generation, then one request
  (the window's figures computed, and the answer), `--samples` times in a row; p99 (target < 100 ms);
- `/api/metrics?window=36h` with a different `limit` each request, under load: answers not cached, over
  the window's figures computed once for the generation;
- `/api/statistics` uncached over random one-year ranges of random symbols among the 500 (target p99 < 20 ms).
Prints a table and writes data/bench/growth.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import urllib.request

import sqlalchemy as sa

import lib
from bench.run import OUT, random_ranges_lua, start_server, stop_server, wrk
from financial import create_app, ingest, storage
from financial.extensions import db
from financial.models import AssetClass, Instrument, ServiceState
from financial.transactions import unit_of_work
from tests.conftest import MYSQL_ADMIN_URL, REDIS_URL, base_settings
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.seed import HandMadeTask

DATABASE = "mdt_bench_growth"
STOCK_YEARS = 10
RETENTION_DAYS = 60
TARGETS = {"flat_ratio": 1.5, "full_after_run_s": 2.0, "metrics_36h_p99_ms": 100, "statistics_p99_ms": 20}


def database_url() -> str:
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {DATABASE} CHARACTER SET utf8mb4"))
    admin.dispose()
    return sa.engine.make_url(MYSQL_ADMIN_URL).set(database=DATABASE).render_as_string(hide_password=False)


def settings(url: str):
    return base_settings(database_url=url, redis_url=REDIS_URL.rsplit("/", 1)[0] + "/13",
                         cache_key_prefix="bench-growth:", minute_retention_days=RETENTION_DAYS,
                         ingest_statement_timeout=600, alphavantage_api_key="bench")


def pair(number: int) -> str:
    return f"g{number:03d}usd"


def markets_stored(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Instrument).where(
            Instrument.exchange == "growth")) or 0


def seed(app, upto: int, days: int, stocks: int, now: dt.datetime) -> None:
    """Markets until there are `upto`, and once the stocks' daily bars; marked with the sizes and today's date."""
    mark = f"{days}:{stocks}:{now.date()}"
    with app.app_context():
        state = db.session.get(ServiceState, "bench_growth")
        if state is None or state.value != mark:
            for table in ("bar_rollups", "rankings", "bars", "instruments"):
                db.session.execute(sa.text(f"DELETE FROM {table}"))
            db.session.merge(ServiceState(name="bench_growth", value=mark))
            db.session.commit()
            yesterday = now.date() - dt.timedelta(days=1)
            for number in range(stocks):
                spec = ingest.InstrumentSpec(AssetClass.STOCK, f"S{number:03d}")
                ingest.store_series(ingest.Series(spec, lib.Interval.DAY, daily_bars(
                    number, end=yesterday, count=STOCK_YEARS * 261, start_price=20 + number)))
            print(f"  seeded {stocks} stocks x {STOCK_YEARS} years", file=sys.stderr, flush=True)
    have = markets_stored(app)
    with app.app_context():
        for number in range(have, upto):
            spec = ingest.InstrumentSpec(AssetClass.CRYPTO, pair(number), exchange="growth", base=f"G{number}",
                                         quote="USD")
            bars = minute_bars(f"growth{number}", end=now - dt.timedelta(minutes=6), count=days * 1440,
                               start_price=100 + number)
            ingest.store_series(ingest.Series(spec, lib.Interval.MIN1, bars))
            if number % 10 == 9:
                print(f"  seeded {number + 1} markets", file=sys.stderr, flush=True)


def one_market_ingest(app, now: dt.datetime) -> dict[str, float]:
    """What the scheduler does for one market each minute, timed: store six minutes, then the after-run steps."""
    spec = ingest.InstrumentSpec(AssetClass.CRYPTO, pair(0), exchange="growth")
    bars = minute_bars(f"tick{now.timestamp()}", end=now, count=6, start_price=100)
    after = ingest.AfterRun(retention=dt.timedelta(days=RETENTION_DAYS), rankings=True, alerts=True)
    with app.app_context():
        started = time.perf_counter()
        report = ingest.run([HandMadeTask(spec, lib.Interval.MIN1, bars)])
        stored = time.perf_counter()
        ingest.finish(report, after, now=now)
        finished = time.perf_counter()
    assert report.ok, report.render()
    steps = {step.label: step.seconds for step in report.steps}
    return {"total_s": finished - started, "store_s": stored - started, **steps}


def full_after_run(app, now: dt.datetime) -> dict[str, float]:
    """The after-run steps of a minute ingest that stored every market."""
    with app.app_context():
        ids = set(db.session.scalars(sa.select(Instrument.id).where(Instrument.exchange == "growth")))
        report = ingest.Report(changed=ids)
        started = time.perf_counter()
        ingest.finish(report, ingest.AfterRun(retention=dt.timedelta(days=RETENTION_DAYS), rankings=True,
                                              alerts=True), now=now)
    return {"total_s": time.perf_counter() - started, **{step.label: step.seconds for step in report.steps}}


def first_answers(app, url: str, samples: int) -> dict[str, float]:
    """p50 and p99 of `url`'s answer right after a new data generation (as an ingest's commit makes one)."""
    timings = []
    for _ in range(samples):
        with app.app_context(), unit_of_work(changes_data=True):
            pass
        time.sleep(0.05)  # the served process hears of the generation (pub/sub), as between two ingests
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {"samples": samples, "p50_ms": timings[len(timings) // 2],
            "p99_ms": timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]}


def served(app, url: str, app_settings, duration: int, stocks: int, samples: int, env_base: dict) -> dict[str, dict]:
    env = {**env_base, "DATABASE_URL": url, "REDIS_URL": app_settings.redis_url,
           "CACHE_KEY_PREFIX": app_settings.cache_key_prefix}
    server, base = start_server("app:app", env)
    try:
        first = first_answers(app, base + "/api/metrics?window=36h", samples)
        metrics_lua = """
math.randomseed(os.time())
request = function() return wrk.format(nil, "/api/metrics?window=36h&limit=" .. math.random(1, 1000)) end
"""
        metrics_36h = wrk(base + "/api/metrics", duration=duration, connections=4, lua=metrics_lua)
        yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        days = [yesterday - dt.timedelta(days=n) for n in range(STOCK_YEARS * 365, -1, -1)]
        symbols = ", ".join(f'"S{n:03d}"' for n in range(stocks))
        statistics_lua = random_ranges_lua(days, 365).replace(
            '"/api/statistics?symbol=IBM&start_date="',
            '"/api/statistics?symbol=" .. ({' + symbols + '})[math.random(1, ' + str(stocks) + ')] .. "&start_date="')
        statistics = wrk(base + "/api/statistics", duration=duration, connections=4, lua=statistics_lua)
    finally:
        stop_server(server)
    return {"metrics_36h_first": first, "metrics_36h_pages": metrics_36h, "statistics_uncached": statistics}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--markets", default="1,50,200")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--stocks", type=int, default=500)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)
    steps = [int(part) for part in args.markets.split(",")]
    now = floor_time(dt.datetime.now(dt.timezone.utc), 60)
    url = database_url()
    app_settings = settings(url)
    app = create_app(app_settings, process="ingest")
    results: dict = {"when": now.isoformat(), "days": args.days, "steps": {}}
    tick = now
    for markets in steps:
        seed(app, markets, args.days, args.stocks, now)
        with app.app_context():
            rows = db.session.scalar(sa.select(sa.func.count()).select_from(sa.table("bars")))
            storage.metrics.replace_rankings(db.session, [])  # the first ingest of a step computes them all
            db.session.commit()
        tick += dt.timedelta(minutes=1)
        one_market_ingest(app, tick)  # settles the rankings of every market once
        timings = []
        for _ in range(3):
            tick += dt.timedelta(minutes=1)
            timings.append(one_market_ingest(app, tick))
        best = min(timings, key=lambda timing: timing["total_s"])
        results["steps"][markets] = {"rows": rows, "one_market_ingest": best}
        print(f"== {markets} markets, {rows:,} rows: one-market ingest {best['total_s']:.3f} s {best}",
              file=sys.stderr, flush=True)
    tick += dt.timedelta(minutes=1)
    results["full_after_run"] = full_after_run(app, tick)
    print(f"   full after-run: {results['full_after_run']}", file=sys.stderr, flush=True)
    env_base = {key: value for key, value in os.environ.items()
                if not key.startswith(("DATABASE_", "REDIS_", "CACHE_", "ALPHAVANTAGE_"))}
    env_base.update(WEB_CONCURRENCY="2", GUNICORN_THREADS="1", ENV_FILE=os.devnull, LOG_DIR="", APP_ENV="production",
                    SECRET_KEY="bench-secret", AUTO_MIGRATE="true", LOG_LEVEL="warning")
    results["served"] = served(app, url, app_settings, args.duration, args.stocks, args.samples, env_base)
    with app.app_context():
        db.engine.dispose()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "growth.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))
    return 0


def render(results: dict) -> str:
    lines = ["markets  bars          one-market ingest (store + after-run)"]
    totals = []
    for markets, step in results["steps"].items():
        timing = step["one_market_ingest"]
        totals.append(timing["total_s"])
        lines.append(f"{markets:>7}  {step['rows']:>11,}   {timing['total_s'] * 1000:8.0f} ms  "
                     f"(store {timing['store_s'] * 1000:.0f}, retention {timing.get('(retention)', 0) * 1000:.0f},"
                     f" rankings {timing.get('(rankings)', 0) * 1000:.0f}, alerts "
                     f"{timing.get('(alerts)', 0) * 1000:.0f})")
    ratio = totals[-1] / totals[0]
    lines.append(f"growth first to last: {ratio:.2f}x (target <= {TARGETS['flat_ratio']})")
    full = results["full_after_run"]
    lines.append(f"after-run steps of a minute ingest of every market: {full['total_s']:.2f} s "
                 f"(target < {TARGETS['full_after_run_s']} s) {full}")
    first = results["served"]["metrics_36h_first"]
    lines.append(f"metrics_36h_first (after a new generation, {first['samples']} in a row): "
                 f"p50 {first['p50_ms']:.1f} ms, p99 {first['p99_ms']:.1f} ms "
                 f"(target p99 < {TARGETS['metrics_36h_p99_ms']} ms)")
    for name, target in (("metrics_36h_pages", None), ("statistics_uncached", "statistics_p99_ms")):
        figures = results["served"][name]
        goal = f" (target p99 < {TARGETS[target]} ms)" if target else ""
        lines.append(f"{name}: {figures['rps']:.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
                     f"p99 {figures['p99_ms']:.1f} ms{goal}, {figures['errors']} errors")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
