"""Stock and coin symbols (`IBM`, `BRK.B`, `BTC`), as the command line, the API and the coin files write them.

One rule for all: a letter or digit, then up to 31 letters, digits or `. - _ ^ = /`; compared and stored
upper-case.
"""
from __future__ import annotations

import re
from typing import Callable, TypeVar

T = TypeVar("T")
PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-_^=/]{0,31}$"
SYMBOL = re.compile(PATTERN)


class BadSymbol(ValueError):
    """`raw` (as written, trimmed) cannot be a symbol."""

    def __init__(self, raw: str) -> None:
        super().__init__(f"{raw!r} is not a valid symbol")
        self.raw = raw


def is_symbol(text: str) -> bool:
    return SYMBOL.fullmatch(text) is not None


def parse_symbol(text: str) -> str:
    """The symbol, upper-case; BadSymbol when it cannot be one. Checked before upper-casing, which maps some
    other letters onto ASCII ones (`ß` → `SS`, `ﬁ` → `FI`)."""
    symbol = text.strip()
    if not is_symbol(symbol):
        raise BadSymbol(symbol)
    return symbol.upper()


def parse_list(text: str, parse: Callable[[str], T]) -> list[T]:
    """A comma-separated list, each item read by `parse`, each value once, in the order given (empty items
    skipped: the list may come out empty). `parse`'s error for the first bad item is raised."""
    values: list[T] = []
    for raw in text.split(","):
        if raw.strip():
            value = parse(raw)
            if value not in values:
                values.append(value)
    return values


def parse_symbols(text: str) -> list[str]:
    """A comma-separated list of symbols, upper-case (see `parse_list`); BadSymbol names the first that
    cannot be one."""
    return parse_list(text, parse_symbol)
