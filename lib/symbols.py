"""Stock and coin symbols (`IBM`, `BRK.B`, `BTC`), as the command line, the API and the coin files write them.

One rule for all: a letter or digit, then up to 31 letters, digits or `. - _ ^ = /`; compared and stored
upper-case.
"""
from __future__ import annotations

import re

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
    """The symbol, upper-case; BadSymbol when it cannot be one."""
    symbol = text.strip().upper()
    if not is_symbol(symbol):
        raise BadSymbol(text.strip())
    return symbol


def parse_symbols(text: str) -> list[str]:
    """A comma-separated list of symbols, upper-case, each once, in the order given (empty items skipped;
    the list may come out empty). BadSymbol names the first that cannot be one."""
    symbols: list[str] = []
    for raw in text.split(","):
        if raw.strip():
            symbol = parse_symbol(raw)
            if symbol not in symbols:
                symbols.append(symbol)
    return symbols
