"""System D at scale: CSV import speed and dashboard / search latency over many coins and years of days.

    python -m bench.system_d [--coins 274] [--days 3650] [--stacks sqlite,mysql] [--repeat 20]

Writes `coins` CSV files of `days` daily rows each (274 x 3650 is about a million rows) into a temporary
folder, imports the folder into a fresh database per stack through the product's own import path
(the coin-file tasks of `financial.ingest.sources.coins` run by `financial.ingest.run`, one transaction per
file), imports it again
(every row then an update), and times the dashboard's SQL uncached (the service call, for several dates
and orders) and through the API with its cache, plus a search. Prints a table; nothing is written to the
repository.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from financial import create_app, ingest
from financial.extensions import db
from financial.ingest.sources import coins as coin_files
from financial.paging import Page
from financial.services import dashboard, search
from bench.run import OUT, stack_settings
from tests.conftest import MYSQL_ADMIN_URL, empty_tables
from tests.fakes.coin_csv import coin_bars, render


def write_files(folder: Path, coins: int, days: int, end: dt.date) -> int:
    for number in range(coins):
        bars = coin_bars(f"bench{number}", end=end, days=days, start_price=1.0 + number, supply=1e6 * (number + 1))
        (folder / f"coin_{number:04d}.csv").write_text(render(f"Coin {number}", f"C{number}", bars))
    return coins * days


def timed(function, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median_ms": statistics.median(times), "p95_ms": times[math.ceil(len(times) * 0.95) - 1]}


def prepare_database(stack: str) -> str:
    """A fresh database of its own for this benchmark (data/bench/system_d.db, or mdt_bench_d on MySQL)."""
    if stack == "sqlite":
        OUT.mkdir(parents=True, exist_ok=True)
        for leftover in OUT.glob("system_d.db*"):
            leftover.unlink()
        return f"sqlite:///{OUT / 'system_d.db'}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text("DROP DATABASE IF EXISTS mdt_bench_d"))
        connection.execute(sa.text("CREATE DATABASE mdt_bench_d CHARACTER SET utf8mb4"))
    admin.dispose()
    return sa.engine.make_url(MYSQL_ADMIN_URL).set(database="mdt_bench_d").render_as_string(hide_password=False)


def bench_stack(stack: str, folder: Path, coins: int, end: dt.date, repeat: int) -> list[tuple[str, str]]:
    url = prepare_database(stack)
    app = create_app(stack_settings(stack, url), process="bench")
    empty_tables(app)
    results = []
    tasks = [coin_files.CoinFileTask(path) for path in coin_files.csv_files(folder)]
    with app.app_context():
        for label in ("import (insert)", "re-import (update)"):
            started = time.perf_counter()
            report = ingest.run(tasks)
            seconds = time.perf_counter() - started
            assert report.ok, report.render()
            results.append((label, f"{report.rows:,} rows in {seconds:.1f} s = {report.rows / seconds:,.0f} rows/s"))
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(sa.table("bars")))
        results.append(("bars table", f"{rows:,} rows"))
        queries = {
            "dashboard all, latest date, market-cap desc": dict(symbols=None, day=None, order_by="market-cap"),
            "dashboard all, a year ago, 24h asc": dict(symbols=None, day=end - dt.timedelta(days=365), order_by="24h"),
            "dashboard all, 9 years ago, 1m desc": dict(symbols=None, day=end - dt.timedelta(days=9 * 365),
                                                        order_by="1m"),
            "dashboard 3 symbols, latest date": dict(symbols=sorted({f"C{n}" for n in (0, coins // 2, coins - 1)}),
                                                     day=None, order_by="market-cap"),
        }
        for label, query in queries.items():
            def call(query=query):
                dashboard.dashboard(Page(1, 1000), **query, descending=True)
                db.session.rollback()
            figures = timed(call, repeat)
            results.append((f"{label} (SQL, uncached)",
                            f"median {figures['median_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms"))
        figures = timed(lambda: (search.search(Page(1, 20), name="coin 1"), db.session.rollback()), repeat)
        results.append(("search 'coin 1' (SQL, uncached)",
                        f"median {figures['median_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms"))
    client = app.test_client()
    client.get("/api/dashboard")
    figures = timed(lambda: client.get("/api/dashboard"), repeat)
    results.append(("GET /api/dashboard (cached, in-process client)",
                    f"median {figures['median_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms"))
    with app.app_context():
        db.engine.dispose()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coins", type=int, default=274)
    parser.add_argument("--days", type=int, default=3650)
    parser.add_argument("--stacks", default="sqlite,mysql")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    end = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"writing {args.coins} files x {args.days} days", file=sys.stderr)
        write_files(folder, args.coins, args.days, end)
        for stack in [s.strip() for s in args.stacks.split(",") if s.strip()]:
            print(f"== {stack}", file=sys.stderr)
            for label, figure in bench_stack(stack, folder, args.coins, end, args.repeat):
                print(f"{stack:<7} {label:<55} {figure}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
