"""Ingest on workers: one minute tick of many crypto markets, in-process against 1, 2 and 4 worker processes.

    python -m bench.workers [--markets 200] [--workers 0,1,2,4] [--concurrency 8] [--delay 0.1]
                            [--check 80] [--stack sqlite|mysql]

A fake Cryptowatch (tests/fakes) serves `--markets` markets and answers every call `--delay` seconds late,
as an upstream across the network does; each market costs two calls (its description, its candles). For
each configuration the ingest command (`get_raw_data.py --source cryptowatch --markets ...`) runs twice on a
fresh database: the first run stores the last 24 hours of each market, the second is a steady minute tick
(the few candles since). 0 workers is the in-process run; otherwise BROKER_URL is set and that many
`get_raw_data.py --worker --concurrency N` processes, started beforehand, run the tasks. Times are the
command's wall clock, start-up included, on this machine's cores shared by everything (fake, workers,
command, database). `--check` repeats the comparison for that many markets with two workers (the issue's
done-when). The workers use Redis database 11 and a queue of their own; MySQL, database mdt_bench_workers.
Prints a table and writes data/bench/workers.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from bench.run import OUT
from financial import create_app
from financial.extensions import db
from tests.conftest import MYSQL_ADMIN_URL, base_settings, empty_tables, env_for
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.series import floor_time, minute_bars
from tests.fakes.server import FakeServer, Timed
from tests.processes import ROOT, SCRIPT, broker_url, forget_queue, start_workers, unique_queue

BROKER_DB = 11
TICK_TARGET_S = 60.0
SPEEDUP_TARGET = 3.0


def fake_cryptowatch(markets: int, delay: float) -> Timed:
    end = floor_time(dt.datetime.now(dt.timezone.utc), 60) + dt.timedelta(hours=1)
    fake = FakeCryptowatch(allowance=1e12)
    for number in range(markets):
        fake.add_ohlc("kraken", f"m{number}usd", minute_bars(f"m{number}", end=end, count=1500,
                                                             start_price=10.0 + number))
    return Timed(fake, delay=delay)


def fresh_database(stack: str, folder: Path) -> str:
    if stack == "sqlite":
        path = folder / "workers.db"
        for leftover in folder.glob("workers.db*"):
            leftover.unlink()
        url = f"sqlite:///{path}"
    else:
        admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text("CREATE DATABASE IF NOT EXISTS mdt_bench_workers CHARACTER SET utf8mb4"))
        admin.dispose()
        url = sa.engine.make_url(MYSQL_ADMIN_URL).set(database="mdt_bench_workers").render_as_string(
            hide_password=False)
    app = create_app(base_settings(database_url=url), process="test")  # the schema, then empty tables
    empty_tables(app)
    with app.app_context():
        db.engine.dispose()
    return url


def timed_run(env: dict[str, str], names: list[str]) -> tuple[float, float]:
    """(seconds until the last task's outcome, seconds in all) of one ingest command: what follows the last
    outcome is the after-run steps (retention, rankings, alerts) and the summary."""
    wait = ["--timeout", "600"] if "BROKER_URL" in env else []
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, SCRIPT, "--source", "cryptowatch", "--markets", ",".join(names),
                                *wait], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.extend(process.stdout or []), daemon=True)
    reader.start()
    tasks_done, errors = 0.0, []
    for line in process.stderr or []:
        if line.startswith(f"[{len(names)}/{len(names)}]"):
            tasks_done = time.perf_counter() - started
        elif not line.startswith("["):
            errors.append(line)
    process.wait(timeout=900)
    reader.join(timeout=10)
    seconds = time.perf_counter() - started
    closing = stdout[-1].strip() if stdout else ""
    if process.returncode != 0 or not closing.startswith(f"{len(names)} instruments: {len(names)} ok"):
        raise SystemExit(f"the ingest failed ({process.returncode}): {closing}\n{''.join(errors)[-2000:]}")
    return tasks_done, seconds


def measure(workers: int, names: list[str], args: argparse.Namespace, base: str, folder: Path) -> dict:
    """The first run and the tick with `workers` worker processes (0: in-process)."""
    url = fresh_database(args.stack, folder)
    settings = base_settings(database_url=url)
    env = env_for(settings, CRYPTOWATCH_BASE_URL=base, LOG_LEVEL="WARNING")
    started_workers = []
    queue = unique_queue("bench")
    if workers:
        broker = broker_url(BROKER_DB)
        env.update(BROKER_URL=broker, INGEST_QUEUE=queue)
        started_workers = start_workers(workers, {**env, "LOG_LEVEL": "INFO"}, folder, concurrency=args.concurrency)
    try:
        (_, first), (tasks, tick) = timed_run(env, names), timed_run(env, names)
    finally:
        for worker in started_workers:
            worker.stop()
        if workers:
            forget_queue(broker_url(BROKER_DB), queue)
    plural = "s" if workers > 1 else ""
    label = f"{workers} worker{plural} x {args.concurrency} threads" if workers else "in-process"
    print(f"  {len(names)} markets, {label}: first run {first:.1f}s, tick {tick:.1f}s (tasks done at {tasks:.1f}s)",
          file=sys.stderr, flush=True)
    return {"markets": len(names), "workers": workers, "concurrency": args.concurrency if workers else 1,
            "label": label, "first_run_s": round(first, 2), "tick_s": round(tick, 2),
            "tick_tasks_s": round(tasks, 2)}


def table(rows: list[dict]) -> str:
    """Markets, configuration, first run, tick (all of it, and until the last task's outcome), speed-ups."""
    lines = [f"{'markets':>7}  {'configuration':<24}  {'first run':>9}  {'tick':>6}  {'tasks':>6}  "
             f"{'speed-up: tick':>14}  {'tasks':>6}"]
    baseline = {row["markets"]: row for row in rows if row["workers"] == 0}
    for row in rows:
        alone = baseline[row["markets"]]
        lines.append(f"{row['markets']:>7}  {row['label']:<24}  {row['first_run_s']:>8.1f}s  {row['tick_s']:>5.1f}s  "
                     f"{row['tick_tasks_s']:>5.1f}s  {alone['tick_s'] / row['tick_s']:>13.1f}x  "
                     f"{alone['tick_tasks_s'] / row['tick_tasks_s']:>5.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--markets", type=int, default=200)
    parser.add_argument("--workers", default="0,1,2,4", help="worker counts to measure; 0 is in-process")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--delay", type=float, default=0.1, help="seconds the fake upstream takes per call")
    parser.add_argument("--check", type=int, default=80, help="markets of the two-worker check (0: none)")
    parser.add_argument("--stack", choices=("sqlite", "mysql"), default="sqlite")
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.workers.split(",") if part.strip()]
    try:
        redis.Redis.from_url(broker_url(BROKER_DB), socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        print(f"the workers need Redis at {broker_url(BROKER_DB)}: {exc}", file=sys.stderr)
        return 2
    fake = fake_cryptowatch(max(args.markets, args.check), args.delay)
    rows = []
    with FakeServer(fake) as server, tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        names = [f"kraken:m{number}usd" for number in range(args.markets)]
        rows += [measure(workers, names, args, server.url, Path(tmp)) for workers in counts]
        if args.check:
            check = names[:args.check] if args.check <= args.markets else [f"kraken:m{n}usd" for n in range(args.check)]
            rows += [measure(workers, check, args, server.url, Path(tmp)) for workers in (0, 2)]
    print(f"\nIngest of a minute tick, fake upstream answering each call after {args.delay * 1000:.0f} ms "
          f"({os.cpu_count()} cores, {args.stack}); 'tasks': until the last task's outcome, the rest of the tick "
          f"is the after-run steps:\n")
    print(table(rows))
    two = next((row for row in rows if row["markets"] == args.markets and row["workers"] == 2), None)
    if two and 0 in counts:
        alone = next(row for row in rows if row["markets"] == args.markets and row["workers"] == 0)
        met = two["tick_s"] <= TICK_TARGET_S and alone["tick_s"] / two["tick_s"] >= SPEEDUP_TARGET
        print(f"\ntarget ({args.markets} markets in one {TICK_TARGET_S:.0f} s tick with 2 workers, at least "
              f"{SPEEDUP_TARGET:.0f}x in-process): {'met' if met else 'NOT met'}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "workers.json").write_text(json.dumps({"when": dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), "delay_s": args.delay, "stack": args.stack, "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
