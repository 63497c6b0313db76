"""The ingest command: fetch price series and upsert them into the database.

    python get_raw_data.py                                 # AlphaVantage daily, IBM and AAPL, last 14 days
    python get_raw_data.py --symbols IBM,MSFT --days 30
    python get_raw_data.py --symbols IBM --interval 1min   # AlphaVantage intraday
    python get_raw_data.py --source exchange --markets kraken:btcusd,binance:ethusdt --interval 1min
    python get_raw_data.py --source cryptowatch --markets kraken:btcusd --interval 1min
    python get_raw_data.py --source csv --path FILE_OR_DIR # historical coin CSV files (one coin per file)
    python get_raw_data.py --demo                          # the bundled sample data, offline
    python get_raw_data.py --every 60 [other options]      # scheduler mode: repeat, never overlap itself
    python get_raw_data.py --worker [--concurrency N]      # with BROKER_URL: a Celery worker running ingest tasks

With BROKER_URL set, the same commands send one task per symbol, market or file to the workers, wait for
them (at most --timeout seconds) and print the same summary with the same exit status; `--no-wait` only
sends them. Progress goes to stderr, the per-symbol summary to stdout. Exit status: 0 when every symbol was stored,
1 when any failed or the database cannot be opened, 2 for bad usage or configuration (each with a
one-line message, no traceback). A CSV file counts as stored when its good rows are; the rows it skipped
as bad are logged by line and counted in its summary line.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from flask import Flask

import lib
import lib.symbols
from financial import Settings, StartupError, create_app
from financial.ingest import plan, scheduler
from financial.ingest.plan import IngestRequest
from financial.ingest.sources import coins
from financial.upstreams import Upstreams


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="get_raw_data.py", description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=plan.SOURCES,
                        help="where to fetch from: alphavantage (stocks, the default), csv (historical coin files "
                             "in --path), or a crypto source: cryptowatch or exchange (live, through ccxt; default "
                             "for --markets: CRYPTO_SOURCE)")
    parser.add_argument("--path", help="with --source csv: a CSV file, or a folder whose *.csv files are all loaded")
    parser.add_argument("--symbols", help=f"comma-separated stock symbols (default: {','.join(plan.DEFAULT_SYMBOLS)})")
    parser.add_argument("--markets", help="comma-separated crypto markets as exchange:pair, e.g. "
                                          "kraken:btcusd,binance:ethusdt (watched markets are added to minute ingests)")
    parser.add_argument("--days", type=int, help="how many days back to store (stocks, default 14; crypto: "
                                                 "the first run of a market, default 1)")
    parser.add_argument("--interval", help="1day (stocks' default) or an intraday interval: 1min (crypto's "
                                           "default), 5min, 15min, 30min, 60min")
    parser.add_argument("--demo", action="store_true", help="load the bundled sample data (offline)")
    parser.add_argument("--every", type=float, metavar="SECONDS",
                        help="scheduler mode: run every SECONDS, never two runs at once")
    parser.add_argument("--max-runs", type=int, metavar="N", help="with --every: stop after N runs")
    parser.add_argument("--heartbeat", metavar="FILE", type=Path,
                        help="with --every: touch FILE after every run; with --worker: while connected to the "
                             "broker (for container health checks)")
    parser.add_argument("--worker", action="store_true",
                        help="run a Celery worker that runs the ingest tasks sent through BROKER_URL")
    parser.add_argument("--concurrency", type=int, metavar="N",
                        help="with --worker: tasks run at once, on threads (default 8)")
    parser.add_argument("--no-wait", action="store_true",
                        help="with BROKER_URL: send the tasks to the workers and exit (no summary, no after-run steps)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="with BROKER_URL: tasks not finished this long after sending fail the run "
                             "(default INGEST_TASK_TIMEOUT, 300)")
    args = parser.parse_args(argv)
    if args.worker:
        check_worker_args(parser, args)
        return args
    if args.days is not None and not 1 <= args.days <= 36500:
        parser.error(f"--days must be between 1 and 36500, got {args.days}")
    if args.every is not None and args.every < 1:
        parser.error(f"--every must be at least 1 second, got {args.every:g}")
    if args.max_runs is not None and (args.every is None or args.max_runs < 1):
        parser.error("--max-runs needs --every and a positive count")
    if args.heartbeat and args.every is None:
        parser.error("--heartbeat needs --every or --worker")
    if args.concurrency is not None:
        parser.error("--concurrency needs --worker")
    if args.no_wait and args.every is not None:
        parser.error("--no-wait cannot go with --every: the scheduler waits for each tick's tasks")
    if args.timeout is not None and not 1 <= args.timeout <= 86400:
        parser.error(f"--timeout must be between 1 and 86400 seconds, got {args.timeout:g}")
    try:  # bad usage is reported before anything touches the database
        args.request = request_of(args)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def check_worker_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    ingest_options = ("source", "path", "symbols", "markets", "days", "interval", "every", "max_runs", "timeout")
    given = [f"--{name.replace('_', '-')}" for name in ingest_options if getattr(args, name) is not None]
    given += [flag for flag, on in (("--demo", args.demo), ("--no-wait", args.no_wait)) if on]
    if given:
        parser.error(f"--worker runs the tasks others send; it takes no {', '.join(given)}")
    if args.concurrency is None:
        args.concurrency = 8
    if not 1 <= args.concurrency <= 256:
        parser.error(f"--concurrency must be between 1 and 256, got {args.concurrency}")


def needs_broker(args: argparse.Namespace) -> str | None:
    """The option given that only makes sense with BROKER_URL, if any."""
    for flag, given in (("--worker", args.worker), ("--no-wait", args.no_wait), ("--timeout", args.timeout)):
        if given:
            return flag
    return None


def request_of(args: argparse.Namespace) -> IngestRequest:
    """The typed request of the command line; ValueError naming the option that is wrong."""
    crypto = args.source in plan.CRYPTO_SOURCES or (args.source is None and args.markets is not None)
    try:
        interval = lib.Interval.parse(args.interval or ("1min" if crypto else "1day"))
    except ValueError as exc:
        raise ValueError(f"--interval: {exc}") from None
    if args.demo:
        return IngestRequest(demo=True, interval=interval)
    if crypto and args.symbols is not None:
        raise ValueError("--symbols: stock symbols need --source alphavantage; crypto markets go in --markets")
    if not crypto and args.markets is not None:
        raise ValueError("--markets: crypto markets need --source cryptowatch or exchange")
    if args.source == "csv":
        return IngestRequest(source="csv", path=csv_path(args, interval), interval=interval)
    try:
        markets = tuple(lib.parse_markets(args.markets or ""))
    except ValueError as exc:
        raise ValueError(f"--markets: {exc}") from None
    symbols: tuple[str, ...] = ()
    if not crypto:
        try:
            symbols = tuple(lib.symbols.parse_symbols(args.symbols or ",".join(plan.DEFAULT_SYMBOLS)))
        except lib.symbols.BadSymbol as exc:
            raise ValueError(f"--symbols: {exc}") from None
        if not symbols:
            raise ValueError("--symbols: give at least one symbol")
    if args.path is not None:
        raise ValueError("--path needs --source csv")
    return IngestRequest(source=args.source, symbols=symbols, markets=markets, days=args.days, interval=interval)


def csv_path(args: argparse.Namespace, interval: lib.Interval) -> Path:
    if args.symbols is not None:
        raise ValueError("--symbols: a CSV file names its own coin; give the files with --path")
    if not args.path:
        raise ValueError("--source csv needs --path FILE_OR_DIR")
    if interval is not lib.Interval.DAY:
        raise ValueError("--source csv loads daily bars; --interval must be 1day")
    try:
        coins.csv_files(args.path)
    except ValueError as exc:
        raise ValueError(f"--path: {exc}") from None
    return Path(args.path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
        app = create_app(settings, process="worker" if args.worker else "ingest")
    except StartupError as exc:
        print(f"{exc.prefix}: {exc}", file=sys.stderr)
        return exc.exit_code
    flag = needs_broker(args)
    if flag and not settings.broker_url:
        print(f"error: {flag} needs BROKER_URL (the Redis of the Celery workers, e.g. redis://127.0.0.1:6379/1)",
              file=sys.stderr)
        return 2
    try:
        with app.app_context():
            if args.worker:
                from financial.workers.worker import run_worker
                return run_worker(app, concurrency=args.concurrency, heartbeat=args.heartbeat)
            return ingest(app, settings, args)
    except lib.errors.ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every instrument stored so far is complete", file=sys.stderr)
        return 130


def ingest(app: Flask, settings: Settings, args: argparse.Namespace) -> int:
    """The ingest the command line asks for, in-process or, with BROKER_URL, on the workers; its exit status."""
    batch = None
    if settings.broker_url:  # Celery is imported only then: the in-process default never needs it
        from financial.workers.batch import Batch
        batch = Batch(app, settings, timeout=args.timeout)
    try:
        if args.no_wait:
            assert batch is not None
            return batch.enqueue(plan.plan_run(args.request, settings), out=sys.stdout, progress=progress)
        if args.every:
            # A stop request lets the current run finish its instrument, then ends the loop.
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            return scheduler.run_every(args.every, args.request, settings, stop, out=sys.stdout, progress=progress,
                                       heartbeat=args.heartbeat, max_runs=args.max_runs, batch=batch)
        with Upstreams(settings) as upstreams:
            report = scheduler.run_once(args.request, settings, upstreams, out=sys.stdout, progress=progress,
                                        batch=batch)
        return 0 if report.ok else 1
    finally:
        if batch is not None:
            batch.close()


if __name__ == "__main__":
    sys.exit(main())
