"""The ingest command: fetch price series and upsert them into the database (SPEC §6).

    python get_raw_data.py                                 # AlphaVantage daily, IBM and AAPL, last 14 days
    python get_raw_data.py --symbols IBM,MSFT --days 30
    python get_raw_data.py --symbols IBM --interval 1min   # AlphaVantage intraday
    python get_raw_data.py --source csv --path FILE_OR_DIR # historical coin CSV files (one coin per file)
    python get_raw_data.py --demo                          # the bundled sample data, offline
    python get_raw_data.py --every 60 [other options]      # scheduler mode: repeat, never overlap itself

Progress goes to stderr, the per-symbol summary to stdout. Exit status: 0 when every symbol was stored,
1 when any failed or the database cannot be opened, 2 for bad usage or configuration (each with a
one-line message, no traceback). A CSV file counts as stored when its good rows are; the rows it skipped
as bad are logged by line and counted in its summary line.
"""
from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from typing import Sequence

import lib
from financial import Settings, StartupError, create_app, csv_ingest, demo, ingest
from financial.extensions import db
from financial.locks import LockBusy, exclusive

log = logging.getLogger("get_raw_data")
DEFAULT_SYMBOLS = "IBM,AAPL"
SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_^=]{0,31}$")


class UsageError(Exception):
    pass


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="get_raw_data.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["alphavantage", "csv"], default="alphavantage",
                        help="where to fetch from (default: alphavantage)")
    parser.add_argument("--path", help="with --source csv: a CSV file, or a folder whose *.csv files are all loaded")
    parser.add_argument("--symbols", default=DEFAULT_SYMBOLS,
                        help="comma-separated stock symbols (default: %(default)s)")
    parser.add_argument("--days", type=int, default=14, help="how many days back to store (default: %(default)s)")
    parser.add_argument("--interval", default="1day",
                        help="1day (default) or an intraday interval: 1min, 5min, 15min, 30min, 60min")
    parser.add_argument("--demo", action="store_true", help="load the bundled sample data (offline)")
    parser.add_argument("--every", type=float, metavar="SECONDS",
                        help="scheduler mode: run every SECONDS, never two runs at once")
    parser.add_argument("--max-runs", type=int, metavar="N", help="with --every: stop after N runs")
    args = parser.parse_args(argv)
    try:
        args.interval = lib.Interval.parse(args.interval)
    except ValueError as exc:
        parser.error(f"--interval: {exc}")
    if not 1 <= args.days <= 36500:
        parser.error(f"--days must be between 1 and 36500, got {args.days}")
    if args.every is not None and args.every < 1:
        parser.error(f"--every must be at least 1 second, got {args.every:g}")
    if args.max_runs is not None and (args.every is None or args.max_runs < 1):
        parser.error("--max-runs needs --every and a positive count")
    if not args.demo:
        try:  # bad usage is reported before anything touches the database
            symbols_of(args.symbols)
            check_csv_args(args)
        except UsageError as exc:
            parser.error(str(exc))
    return args


def check_csv_args(args: argparse.Namespace) -> None:
    if args.source != "csv":
        if args.path is not None:
            raise UsageError("--path needs --source csv")
        return
    if not args.path:
        raise UsageError("--source csv needs --path FILE_OR_DIR")
    if args.interval is not lib.Interval.DAY:
        raise UsageError("--source csv loads daily bars; --interval must be 1day")
    try:
        csv_ingest.csv_files(args.path)
    except ValueError as exc:
        raise UsageError(f"--path: {exc}") from None


def symbols_of(text: str) -> list[str]:
    symbols = []
    for raw in text.split(","):
        symbol = raw.strip().upper()
        if not symbol:
            continue
        if not SYMBOL.match(symbol):
            raise UsageError(f"--symbols: {raw.strip()!r} is not a valid symbol")
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise UsageError("--symbols: give at least one symbol")
    return symbols


def build_tasks(settings: Settings, args: argparse.Namespace) -> list[ingest.Task]:
    if args.demo:
        return demo.demo_tasks()
    if args.source == "csv":
        return csv_ingest.csv_tasks(csv_ingest.csv_files(args.path))
    symbols = symbols_of(args.symbols)
    client = lib.AlphaVantageClient(settings.alphavantage_api_key, settings.alphavantage_base_url,
                                    min_interval=settings.alphavantage_min_interval, environ={})
    return ingest.alphavantage_tasks(client, symbols, interval=args.interval, days=args.days)


def run_once(settings: Settings, args: argparse.Namespace) -> int:
    tasks = build_tasks(settings, args)
    report = ingest.run(tasks, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(report.render(), flush=True)
    return 0 if report.ok else 1


def run_scheduled(settings: Settings, args: argparse.Namespace, stop: threading.Event) -> int:
    """Run every `args.every` seconds until stopped. A run that overlaps the next tick delays it (ticks are
    skipped, never queued); a run already going on elsewhere (another scheduler) makes this one skip."""
    runs, last_code = 0, 0
    next_start = time.monotonic()
    while not stop.is_set():
        try:
            with exclusive(db.engine, "scheduled-ingest"):
                last_code = run_once(settings, args)
        except LockBusy:
            log.warning("another ingest holds the scheduler lock; skipping this run")
        except (lib.errors.ConfigurationError, UsageError):
            raise
        except Exception:  # an outage must not end the scheduler; the next tick tries again
            log.exception("ingest run failed; retrying at the next tick")
            db.session.rollback()
            last_code = 1
        runs += 1
        if args.max_runs and runs >= args.max_runs:
            break
        next_start += args.every
        now = time.monotonic()
        if next_start < now:
            skipped = int((now - next_start) // args.every) + 1
            log.warning("the run took longer than --every; skipping %d tick(s)", skipped)
            next_start += skipped * args.every
        stop.wait(next_start - now)
    return last_code


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
        app = create_app(settings, process="ingest")
    except StartupError as exc:
        print(f"{exc.prefix}: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        with app.app_context():
            if args.every:
                # A stop request lets the current run finish its instrument, then ends the loop.
                stop = threading.Event()
                for signum in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(signum, lambda *_: stop.set())
                return run_scheduled(settings, args, stop)
            return run_once(settings, args)
    except (lib.errors.ConfigurationError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every instrument stored so far is complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
