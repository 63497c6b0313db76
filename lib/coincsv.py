"""Historical daily coin prices in CSV files, turned into typed bars.

The format is the widespread CoinMarketCap export (one coin per file):

    SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap
    1,Bitcoin,BTC,2013-04-29 23:59:59,147.48,134.0,134.44,144.53,0.0,1603768864.5

Each row is the daily bar of its date: the time of day is dropped and the bar carries midnight UTC of
that date, like every daily bar. The file may start with a UTF-8 byte-order mark.

`read(path)` (or `parse(text)`) returns a `CoinFile`: the coin, its bars oldest first, and the rows that
were skipped with their line numbers and the reason. A file that cannot be this format at all (empty,
not UTF-8, wrong header) raises `MalformedPayloadError` instead: nothing of it is usable.

Row rules:
- numbers must be finite and non-negative, Low must not be above High;
- an empty Marketcap means unknown, and so does 0: the published dataset writes an unknown cap as `0.0`
  (hundreds of rows of WBTC, SOL, ATOM...), and a coin with a market cap of zero cannot trade;
- the coin of the file is the Symbol (case-insensitive) and Name most of its rows carry; rows naming
  another coin are skipped;
- a date that appears twice with the same figures is kept once (counted in `repeated`); a date that
  appears with different figures is skipped on every line that carries it, since neither can be trusted.

Nothing here touches a database or Flask; this module only reads files.
"""
from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from lib.bars import Bar
from lib.errors import MalformedPayloadError, NotFoundError, PermanentError
from lib.symbols import SYMBOL

HEADER = ("SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close", "Volume", "Marketcap")
HEADER_TEXT = ",".join(HEADER)
MAX_NAME = 128
# A date, optionally with a time of day (no zone: the dataset's times are UTC).
TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?))?")
_UTC = dt.timezone.utc


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was skipped: its line in the file (1 is the header) and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class CoinFile:
    """What a file holds: the coin, its daily bars (oldest first, one per date) and the skipped rows.

    `symbol` and `name` are empty when no row was usable.
    """

    source: str
    symbol: str = ""
    name: str = ""
    bars: list[Bar] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0  # data rows read (blank lines excepted)
    repeated: int = 0  # rows identical to an earlier row of the same date, kept once


class _BadRow(ValueError):
    pass


def read(path: str | Path) -> CoinFile:
    """Parse the file at `path`. Raises `NotFoundError` when it does not exist, `MalformedPayloadError`
    when it is not this format, `PermanentError` when it cannot be read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{path.name}: no such file", source="csv") from None
    except OSError as exc:
        raise PermanentError(f"{path.name}: cannot read the file: {exc.strerror or exc}", source="csv") from None
    return parse(raw, source=path.name)


def parse(content: bytes | str, *, source: str = "<csv>") -> CoinFile:
    """Parse a whole file's content (bytes are decoded as UTF-8, with or without a byte-order mark)."""
    if isinstance(content, bytes):
        raw = content
        try:
            content = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise MalformedPayloadError(f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})",
                                        source="csv") from None
    elif content.startswith("\ufeff"):
        content = content[1:]
    if not content.strip():
        raise MalformedPayloadError(f"{source}: empty file; expected the header {HEADER_TEXT}", source="csv")
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        columns = _columns(next(reader), source)
        return _rows(reader, columns, source)
    except csv.Error as exc:
        raise MalformedPayloadError(f"{source}: line {reader.line_num}: not readable as CSV: {exc}",
                                    source="csv") from None


def _columns(header: list[str], source: str) -> list[int]:
    """Positions of the HEADER columns in this file's header (names match case-insensitively)."""
    names = [name.strip().lower() for name in header]
    wanted = [name.lower() for name in HEADER]
    missing = [name for name, key in zip(HEADER, wanted) if key not in names]
    unexpected = [name.strip() for name, key in zip(header, names) if key not in wanted]
    repeated = sorted({name.strip() for name, key in zip(header, names) if names.count(key) > 1})
    if missing or unexpected or repeated:
        details = [f"missing {', '.join(missing)}" if missing else "",
                   f"unexpected {', '.join(repr(n) for n in unexpected)}" if unexpected else "",
                   f"repeated {', '.join(repeated)}" if repeated else ""]
        raise MalformedPayloadError(f"{source}: wrong header: expected {HEADER_TEXT}; "
                                    + "; ".join(d for d in details if d), source="csv")
    return [names.index(key) for key in wanted]


def _number(text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _BadRow(f"{column} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise _BadRow(f"{column} {text.strip()!r} is not a finite number")
    if value < 0:
        raise _BadRow(f"{column} {text.strip()!r} is negative")
    return value


def _day(text: str) -> dt.date:
    match = TIMESTAMP.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError
        if match[2]:
            dt.time.fromisoformat(match[2])
        return dt.date.fromisoformat(match[1])
    except ValueError:
        raise _BadRow(f"Date {text.strip()!r} is not a date like 2021-07-06 or 2021-07-06 23:59:59") from None


def _rows(reader: Any, columns: list[int], source: str) -> CoinFile:
    result = CoinFile(source)
    problems = result.problems
    width = len(columns)
    i_name, i_symbol, i_date, i_high, i_low, i_open, i_close, i_volume, i_cap = columns[1:]
    symbol_ok, inf, date_of, time_of = SYMBOL.fullmatch, math.inf, dt.date.fromisoformat, dt.time.fromisoformat
    # (line, SYMBOL, name, date, open, high, low, close, volume, market cap) of the rows that parsed.
    parsed: list[tuple] = []
    for fields in reader:
        if len(fields) != width:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank lines (a trailing newline, an editor's extra line) are not rows
            result.rows += 1
            problems.append(RowProblem(reader.line_num, f"expected {width} fields, got {len(fields)}"))
            continue
        result.rows += 1
        # The fast path below handles well-formed rows (nearly all of them, and at a million rows the
        # per-row cost is the import's cost); anything it does not accept is re-checked field by field
        # by `_checked_row`, which names what is wrong.
        try:
            symbol, name, when = fields[i_symbol], fields[i_name], fields[i_date]
            if when[4] != "-" or when[7] != "-":
                raise ValueError
            day = date_of(when[:10])
            if len(when) != 10:
                if len(when) != 19 or when[10] not in " T" or when[13] != ":" or when[16] != ":":
                    raise ValueError
                time_of(when[11:])
            open_, high, low = float(fields[i_open]), float(fields[i_high]), float(fields[i_low])
            close, volume, cap = float(fields[i_close]), float(fields[i_volume]), fields[i_cap]
            cap = (float(cap) or None) if cap else None  # 0.0 is how the dataset writes an unknown cap
            if not (symbol_ok(symbol) and name and len(name) <= MAX_NAME and name == name.strip()
                    and 0 <= open_ < inf and 0 <= low <= high < inf and 0 <= close < inf and 0 <= volume < inf
                    and (cap is None or 0 <= cap < inf)):
                raise ValueError
            parsed.append((reader.line_num, symbol.upper(), name, day, open_, high, low, close, volume, cap))
        except (ValueError, IndexError):
            try:
                parsed.append((reader.line_num, *_checked_row(fields, columns)))
            except _BadRow as exc:
                problems.append(RowProblem(reader.line_num, str(exc)))
    if parsed:
        parsed = _of_one_coin(parsed, result)
        result.bars = _bars(parsed, result)
    problems.sort(key=lambda problem: problem.line)
    return result


def _checked_row(fields: list[str], columns: list[int]) -> tuple:
    """(SYMBOL, name, date, open, high, low, close, volume, market cap) of a row, or `_BadRow` saying
    what is wrong with it. Surrounding spaces are tolerated here."""
    i_name, i_symbol, i_date, i_high, i_low, i_open, i_close, i_volume, i_cap = columns[1:]
    symbol = fields[i_symbol].strip()
    if not SYMBOL.fullmatch(symbol):
        raise _BadRow(f"Symbol {symbol!r} is not a valid symbol" if symbol else "Symbol is empty")
    name = fields[i_name].strip()
    if not name or len(name) > MAX_NAME:
        raise _BadRow(f"Name must have 1 to {MAX_NAME} characters, got {len(name)}")
    day = _day(fields[i_date])
    high = _number(fields[i_high], "High")
    low = _number(fields[i_low], "Low")
    if low > high:
        raise _BadRow(f"Low {low!r} is above High {high!r}")
    cap = fields[i_cap].strip()
    return (symbol.upper(), name, day, _number(fields[i_open], "Open"), high, low, _number(fields[i_close], "Close"),
            _number(fields[i_volume], "Volume"), (_number(cap, "Marketcap") or None) if cap else None)


def _most_common(values: Iterable[str]) -> str:
    """The most frequent value; among equally frequent ones, the first seen (Counter keeps insertion order)."""
    return collections.Counter(values).most_common(1)[0][0]


def _of_one_coin(parsed: list[tuple], result: CoinFile) -> list[tuple]:
    """Decide the file's coin (the symbol, then the name, most rows carry) and drop the other coins' rows."""
    result.symbol = _most_common(row[1] for row in parsed)
    result.name = _most_common(row[2] for row in parsed if row[1] == result.symbol)
    key = result.name.casefold()
    kept = []
    for row in parsed:
        if row[1] == result.symbol and row[2].casefold() == key:
            kept.append(row)
        else:
            result.problems.append(RowProblem(row[0], f"a different coin ({row[1]}, {row[2]}) from the file's "
                                                      f"({result.symbol}, {result.name})"))
    return kept


def _bars(parsed: list[tuple], result: CoinFile) -> list[Bar]:
    """One bar per date, oldest first; identical repeats kept once, dates with differing rows dropped."""
    by_day: dict[dt.date, tuple] = {}
    repeats: dict[dt.date, list[tuple]] = {}
    for row in parsed:
        first = by_day.setdefault(row[3], row)
        if first is not row:
            repeats.setdefault(row[3], [first]).append(row)
    for day, rows in repeats.items():
        if all(row[4:] == rows[0][4:] for row in rows):
            result.repeated += len(rows) - 1
            continue
        del by_day[day]
        lines = ", ".join(str(row[0]) for row in rows)
        result.problems.extend(RowProblem(row[0], f"date {day} appears with different figures on lines {lines}; "
                                                  f"none of them is loaded") for row in rows)
    return [Bar(dt.datetime(day.year, day.month, day.day, tzinfo=_UTC), open_, high, low, close, volume,
                None, cap)
            for day, (_, _, _, _, open_, high, low, close, volume, cap) in sorted(by_day.items())]
