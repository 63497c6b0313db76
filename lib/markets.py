"""Crypto markets as both crypto sources name them: `exchange:pair` (`kraken:btcusd`, `binance:ethusdt`).

`MarketId` is what a user writes; `MarketInfo` is what a source says about a market it knows (the
canonical pair, base and quote currencies, a display name). Every crypto source (`CryptowatchClient`,
`ExchangeSource`) offers the same two calls, which is all the ingest needs:

    info = source.resolve(lib.parse_market("kraken:btcusd"))     # validates; NotFoundError if unknown
    bars = source.candles(info, lib.Interval.MIN1, since)         # closed candles starting at or after `since`
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from lib.bars import Bar, Interval
from lib.symbols import parse_list

# Checked before lower-casing, which maps some other letters onto ASCII ones (the Kelvin sign onto `k`).
_EXCHANGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_PAIR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.]{1,31}$")
_SEPARATORS = re.compile(r"[/_-]")
# Quote currencies, each before the shorter ones it ends with (`btcfdusd` is btc/fdusd, not btcfd/usd). Quotes
# that end with another quote's whole name and are rare as quotes (tusd, busd) are left out, so that
# `usdtusd` reads usdt/usd; a pair the list cannot split has no base or quote, nothing worse.
KNOWN_QUOTES = ("fdusd", "usdt", "usdc", "usd", "eur", "gbp", "jpy", "cad", "aud", "chf", "krw", "try", "brl",
                "dai", "btc", "xbt", "eth", "bnb")


@dataclass(frozen=True)
class MarketId:
    """A market as written by a user: exchange id and pair, lower-case."""

    exchange: str
    pair: str

    @property
    def label(self) -> str:
        return f"{self.exchange}:{self.pair}"

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class MarketInfo:
    """What a source knows about one market. `pair` is the canonical spelling (`btcusd`, never `xbtusd`)."""

    exchange: str
    pair: str
    base: str | None
    quote: str | None
    name: str
    active: bool = True
    source_symbol: str = ""  # the source's own name for it: ccxt's unified `BTC/USD`, Cryptowatch's `btcusd`

    @property
    def label(self) -> str:
        return f"{self.exchange}:{self.pair}"


class CryptoSource(Protocol):
    """The calls the ingest makes of a crypto source."""

    source: str

    def resolve(self, market: MarketId) -> MarketInfo: ...

    def candles(self, info: MarketInfo, interval: Interval, since: dt.datetime,
                now: dt.datetime | None = None) -> list[Bar]: ...

    def close(self) -> None: ...


def parse_market(text: str) -> MarketId:
    """`exchange:pair`, case-insensitive; `/`, `-` and `_` inside the pair are ignored (`btc/usd` = `btcusd`)."""
    exchange, colon, pair = text.strip().partition(":")
    try:
        if not colon:
            raise ValueError("no colon")
        return MarketId(parse_exchange(exchange), parse_pair(pair))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a market; write exchange:pair, e.g. kraken:btcusd") from None


def parse_exchange(text: str) -> str:
    """An exchange id as markets are named (`kraken`, `binance`), lower-cased; ValueError if it cannot be one."""
    exchange = text.strip()
    if not _EXCHANGE.match(exchange):
        raise ValueError(f"{text.strip()[:40]!r} is not an exchange id: letters, digits, - and _, "
                         f"up to 32 characters, e.g. kraken")
    return exchange.lower()


def parse_pair(text: str) -> str:
    """A pair as markets are named (`btcusd`; `BTC/USD`, `btc-usd` and `btc_usd` read the same), lower-cased;
    ValueError if it cannot be one."""
    pair = _SEPARATORS.sub("", text.strip())
    if not _PAIR.match(pair):
        raise ValueError(f"{text.strip()[:40]!r} is not a pair: letters and digits (and . / - _), "
                         f"2 to 32 characters, e.g. btcusd")
    return pair.lower()


def parse_markets(text: str) -> list[MarketId]:
    """A comma-separated list of markets, duplicates dropped, order kept."""
    return parse_list(text, parse_market)


def split_pair(pair: str, quotes: Iterable[str] = KNOWN_QUOTES) -> tuple[str | None, str | None]:
    """(BASE, QUOTE) of a concatenated pair by its known quote suffix; (None, None) when none fits."""
    for quote in quotes:
        if pair.endswith(quote) and len(pair) > len(quote):
            return pair[:-len(quote)].upper(), quote.upper()
    return None, None


def display_name(base: str | None, quote: str | None, pair: str, exchange_name: str) -> str:
    return f"{base}/{quote} on {exchange_name}" if base and quote else f"{pair.upper()} on {exchange_name}"


def closed_since(bars: Sequence[Bar], interval: Interval, since: dt.datetime, now: dt.datetime) -> list[Bar]:
    """The bars starting at or after `since` whose period has ended by `now`, oldest first, one per start.

    Exchanges send the candle still in progress as their newest row; storing it would freeze a partial
    figure until the next run's overlap rewrites it, so it is left for the next run.
    """
    period = dt.timedelta(seconds=interval.seconds)
    unique = {bar.timestamp: bar for bar in bars if bar.timestamp >= since and bar.timestamp + period <= now}
    return [unique[stamp] for stamp in sorted(unique)]
