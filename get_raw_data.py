"""The ingest command: fetch price series and upsert them into the database (SPEC §6).

    python get_raw_data.py                                 # AlphaVantage daily, IBM and AAPL, last 14 days
    python get_raw_data.py --symbols IBM,MSFT --days 30
    python get_raw_data.py --symbols IBM --interval 1min   # AlphaVantage intraday
    python get_raw_data.py --source exchange --markets kraken:btcusd,binance:ethusdt --interval 1min
    python get_raw_data.py --source cryptowatch --markets kraken:btcusd --interval 1min
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
import datetime as dt
import logging
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import lib
from financial import Settings, StartupError, create_app, csv_ingest, demo, ingest, tracking
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
    parser.add_argument("--source", choices=["alphavantage", "csv", *tracking.SOURCES],
                        help="where to fetch from: alphavantage (stocks, the default), csv (historical coin files "
                             "in --path), or a crypto source: cryptowatch or exchange (live, through ccxt; default "
                             "for --markets: CRYPTO_SOURCE)")
    parser.add_argument("--path", help="with --source csv: a CSV file, or a folder whose *.csv files are all loaded")
    parser.add_argument("--symbols", help=f"comma-separated stock symbols (default: {DEFAULT_SYMBOLS})")
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
    parser.add_argument("--heartbeat", metavar="FILE",
                        help="with --every: touch FILE after every run (for container health checks)")
    args = parser.parse_args(argv)
    crypto = args.source in tracking.SOURCES or (args.source is None and args.markets is not None)
    try:
        args.interval = lib.Interval.parse(args.interval or ("1min" if crypto else "1day"))
    except ValueError as exc:
        parser.error(f"--interval: {exc}")
    if args.days is not None and not 1 <= args.days <= 36500:
        parser.error(f"--days must be between 1 and 36500, got {args.days}")
    if args.every is not None and args.every < 1:
        parser.error(f"--every must be at least 1 second, got {args.every:g}")
    if args.max_runs is not None and (args.every is None or args.max_runs < 1):
        parser.error("--max-runs needs --every and a positive count")
    if args.heartbeat and args.every is None:
        parser.error("--heartbeat needs --every")
    if not args.demo:
        try:  # bad usage is reported before anything touches the database
            if crypto and args.symbols is not None:
                raise UsageError("--symbols: stock symbols need --source alphavantage; crypto markets go in --markets")
            if not crypto and args.markets is not None:
                raise UsageError("--markets: crypto markets need --source cryptowatch or exchange")
            if crypto:
                markets_of(args.markets or "")
            elif args.source != "csv":
                symbols_of(args.symbols or DEFAULT_SYMBOLS)
            check_csv_args(args)
        except UsageError as exc:
            parser.error(str(exc))
    args.crypto = crypto
    return args


def check_csv_args(args: argparse.Namespace) -> None:
    if args.source != "csv":
        if args.path is not None:
            raise UsageError("--path needs --source csv")
        return
    if args.symbols is not None:
        raise UsageError("--symbols: a CSV file names its own coin; give the files with --path")
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


def markets_of(text: str) -> list[lib.MarketId]:
    try:
        return lib.parse_markets(text)
    except ValueError as exc:
        raise UsageError(f"--markets: {exc}") from None


def build_tasks(settings: Settings, args: argparse.Namespace) -> list[ingest.Task]:
    if args.demo:
        return demo.demo_tasks()
    if args.source == "csv":
        return csv_ingest.csv_tasks(csv_ingest.csv_files(args.path))
    tasks: list[ingest.Task] = []
    if not args.crypto:
        client = lib.AlphaVantageClient(settings.alphavantage_api_key, settings.alphavantage_base_url,
                                        min_interval=settings.alphavantage_min_interval, environ={})
        tasks += ingest.alphavantage_tasks(client, symbols_of(args.symbols or DEFAULT_SYMBOLS),
                                           interval=args.interval, days=args.days or 14)
    markets = markets_of(args.markets or "")
    if args.interval is lib.Interval.MIN1:  # minute ingests also track every watched market
        markets += [market for market in markets_of(",".join(ingest.watched_markets())) if market not in markets]
    if markets:
        source = tracking.crypto_source(args.source if args.crypto and args.source else settings.crypto_source,
                                        settings)
        tasks += tracking.crypto_tasks(
            source, markets, interval=args.interval,
            first_window=dt.timedelta(days=args.days) if args.crypto and args.days else tracking.FIRST_WINDOW,
            retention=dt.timedelta(days=settings.minute_retention_days) if args.interval.is_intraday else None)
    return tasks


def run_once(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    tasks = build_tasks(settings, args)
    report = ingest.run(tasks, progress=progress)
    retention = settings.minute_retention_days if args.interval.is_intraday and not args.demo else None
    minute = args.interval is lib.Interval.MIN1 and not args.demo  # minute ingests end by evaluating alerts
    ingest.finish(report, retention_days=retention, progress=progress, alerts=settings if minute else None)
    print(report.render(), flush=True)
    log.info("ingest run finished in %.1fs: %d instruments, %d rows, %s", time.monotonic() - started,
             len(report.outcomes), report.rows, "ok" if report.ok else "with failures")
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
        if args.heartbeat:
            Path(args.heartbeat).touch()
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
