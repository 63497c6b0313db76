"""Historical coin CSV files (`get_raw_data.py --source csv --path FILE_OR_DIR`): one task per file.

The file is read and checked completely by `lib.coincsv`, then stored like any series (one transaction:
a file that fails leaves nothing of itself behind and never stops the other files). Re-importing is an
upsert: nothing is stored twice, changed figures are updated.

A coin is an instrument of asset class "crypto" with exchange "" (a coin, not an exchange market such as
kraken:btcusd), its upper-case symbol and its name; a symbol keeps the coin that first claimed it. Rows
the parser skipped are logged as warnings, by file and line, and counted in the file's summary line; they
do not fail the file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lib
from financial.ingest.tasks import FetchContext, InstrumentSpec, Series
from financial.models import AssetClass
from lib.coincsv import CoinFile

log = logging.getLogger(__name__)

UPSTREAM = "csv"
MAX_WARNINGS = 20  # skipped rows logged one by one per file; the rest are counted
MAX_LINES_IN_SUMMARY = 5


class CoinConflict(lib.errors.PermanentError):
    """The file's symbol already belongs to a coin of another name."""


def csv_files(path: str | Path) -> list[Path]:
    """The file at `path`, or the `*.csv` files directly in the folder at `path` (hidden files left out),
    in name order so that every run imports them in the same order. Raises ValueError naming the problem."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or folder")
    files = sorted((entry for entry in path.iterdir()
                    if entry.suffix.lower() == ".csv" and not entry.name.startswith(".") and entry.is_file()),
                   key=lambda entry: entry.name)
    if not files:
        raise ValueError(f"{path}: no .csv files in this folder")
    return files


@dataclass(frozen=True)
class CoinFileTask:
    path: Path
    upstream = UPSTREAM

    @property
    def label(self) -> str:
        return self.path.name

    def fetch(self, context: FetchContext) -> Series:
        return coin_series(self.path, context)


def coin_series(path: Path, context: FetchContext) -> Series:
    """The coin of one file, checked: raises `lib.errors.MarketDataError` subclasses when the file cannot be
    loaded (unreadable, malformed, no usable row, symbol taken by another coin)."""
    coin = lib.coincsv.read(path)
    _log_problems(coin)
    if not coin.bars:
        if not coin.rows:
            raise lib.errors.MalformedPayloadError(f"{coin.source}: no data rows under the header", source=UPSTREAM)
        # The summary line is often all a cron mail shows: it carries the first reason, not only stderr.
        raise lib.errors.MalformedPayloadError(
            f"{coin.source}: none of its {coin.rows} rows is usable ({_lines(coin)}); first: {coin.problems[0]}",
            source=UPSTREAM)
    spec = InstrumentSpec(AssetClass.CRYPTO, coin.symbol, name=coin.name)
    known = context.stored.name_of(spec)
    # A symbol names one coin: a file must not pour its prices into another coin's series.
    if known and known.casefold() != coin.name.casefold():
        raise CoinConflict(f"{coin.source}: symbol {coin.symbol} is already the coin {known!r}, "
                           f"this file is {coin.name!r}", source=UPSTREAM, symbol=coin.symbol)
    return Series(spec, lib.Interval.DAY, coin.bars, _note(coin))


def _log_problems(coin: CoinFile) -> None:
    for problem in coin.problems[:MAX_WARNINGS]:
        log.warning("%s: line %d skipped: %s", coin.source, problem.line, problem.message,
                    extra={"file": coin.source, "line": problem.line})
    if len(coin.problems) > MAX_WARNINGS:
        log.warning("%s: %d more rows skipped", coin.source, len(coin.problems) - MAX_WARNINGS)


def _lines(coin: CoinFile) -> str:
    lines = [str(problem.line) for problem in coin.problems[:MAX_LINES_IN_SUMMARY]]
    more = len(coin.problems) - len(lines)
    return f"bad {'line' if len(coin.problems) == 1 else 'lines'} " + ", ".join(lines) + (
        f" and {more} more" if more else "")


def _note(coin: CoinFile) -> str:
    """The summary's detail for a loaded file: the coin, and what was left out."""
    parts = [f"{coin.symbol} {coin.name}"]
    if coin.repeated:
        parts.append(f"{coin.repeated} repeated {'row' if coin.repeated == 1 else 'rows'} ignored")
    if coin.problems:
        count = len(coin.problems)
        parts.append(f"{count} bad {'row' if count == 1 else 'rows'} skipped ({_lines(coin)})")
    return "; ".join(parts)
