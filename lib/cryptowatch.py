"""Cryptowatch markets: build the query, fetch the raw payload, turn it into typed values and bars.

The public Cryptowatch API (api.cryptowat.ch) was shut down in 2023; this client speaks its last
documented wire format for compatible servers, mirrors and tests. `lib.exchange` is the live source.

Every answer is `{"result": ..., "allowance": {"cost", "remaining", ...}}`; the allowance of the last
call is kept as `client.allowance`. Errors come with real HTTP statuses and `{"error": "<text>"}`: 404
`Instrument not found` / `Exchange not found` (NotFoundError), 429 once the allowance is spent
(RateLimitedError), 5xx (ServerError, retried). OHLC rows are `[CloseTime, Open, High, Low, Close,
Volume, QuoteVolume]` keyed by the period in seconds; a bar's timestamp is the candle's start,
CloseTime − period.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import requests

from lib import errors
from lib.bars import Bar, Interval
from lib.http import DEFAULT_TIMEOUT, HttpClient, Response, RetryPolicy
from lib.markets import MarketId, MarketInfo, closed_since, display_name, split_pair

SOURCE = "cryptowatch"
DEFAULT_BASE_URL = "https://api.cryptowat.ch"
API_KEY_HEADER = "X-CW-API-Key"
PERIODS = (60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200, 604800)


@dataclass(frozen=True)
class Allowance:
    """The credit left after a call (credits since 2020; CPU nanoseconds before, as integers)."""

    cost: float | None
    remaining: float | None
    remaining_paid: float | None = None
    account: str | None = None
    upgrade: str | None = None


@dataclass(frozen=True)
class Summary:
    """24-hour sliding-window figures of one market; `change_percentage` is a fraction (0.007 = 0.7 %)."""

    last: float
    high: float
    low: float
    change_percentage: float
    change_absolute: float
    volume: float
    volume_quote: float | None


# -- 1. build the query -----------------------------------------------------------------------------

def market_path(exchange: str, pair: str, resource: str = "") -> str:
    return f"/markets/{exchange}/{pair}" + (f"/{resource}" if resource else "")


def _epoch(value: dt.datetime | int | float) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("after/before must be timezone-aware datetimes or unix seconds")
        return int(value.timestamp())
    return int(value)


def ohlc_query(periods: Iterable[int | Interval] = (60,), *, after: dt.datetime | int | None = None,
               before: dt.datetime | int | None = None) -> dict[str, str]:
    """`periods` in seconds (or Intervals); `after`/`before` bound the candles' close times (unix seconds).

    Give both bounds for an exact range: with `before` alone the upstream answered from a cache.
    """
    seconds = [period.seconds if isinstance(period, Interval) else int(period) for period in periods]
    unknown = [period for period in seconds if period not in PERIODS]
    if not seconds or unknown:
        raise ValueError(f"periods must be among {', '.join(map(str, PERIODS))}; got {unknown or 'none'}")
    query = {"periods": ",".join(str(period) for period in seconds)}
    if after is not None:
        query["after"] = str(_epoch(after))
    if before is not None:
        query["before"] = str(_epoch(before))
    return query


# -- 2. read a response: errors first -----------------------------------------------------------------

def check_response(response: Response, *, what: str = "") -> tuple[Any, Allowance | None]:
    """(result, allowance) of a decoded response, or the typed error its status and body stand for."""
    context = {"source": SOURCE, "symbol": what}
    payload = response.payload
    message = payload.get("error") if isinstance(payload, dict) else None
    detail = f"{SOURCE}: {what + ': ' if what else ''}{message or f'HTTP {response.status}'}"
    if response.status == 404:
        raise errors.NotFoundError(detail, **context)
    if response.status in (401, 403):
        raise errors.AuthenticationError(detail, **context)
    if response.status >= 400:
        raise errors.BadRequestError(detail, **context)
    if not isinstance(payload, dict) or "result" not in payload:
        found = ", ".join(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__
        raise _malformed(f"no 'result' in the response (found {found or 'nothing'})", what)
    return payload["result"], parse_allowance(payload.get("allowance"))


def parse_allowance(block: Any) -> Allowance | None:
    if not isinstance(block, dict):
        return None
    numbers = {}
    for key, name in (("cost", "cost"), ("remaining", "remaining"), ("remainingPaid", "remaining_paid")):
        value = block.get(key)
        numbers[name] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return Allowance(**numbers, account=block.get("account"), upgrade=block.get("upgrade"))


# -- 3. turn a result into values ----------------------------------------------------------------------

def market_info(exchange: str, pair: str, *, active: bool = True) -> MarketInfo:
    """Cryptowatch pairs are concatenated lower-case codes (`btcusd`); base and quote come from the suffix."""
    base, quote = split_pair(pair)
    return MarketInfo(exchange, pair, base, quote, display_name(base, quote, pair, exchange.capitalize()),
                      active=active, source_symbol=pair)


def parse_market(result: Any, *, what: str = "") -> MarketInfo:
    if not isinstance(result, dict) or not isinstance(result.get("exchange"), str) \
            or not isinstance(result.get("pair"), str):
        raise _malformed("a market needs 'exchange' and 'pair'", what)
    return market_info(result["exchange"], result["pair"], active=bool(result.get("active", True)))


def parse_markets(result: Any) -> list[MarketInfo]:
    if not isinstance(result, list):
        raise _malformed("the market list is not a list", "")
    return [parse_market(item) for item in result]


def parse_price(result: Any, *, what: str = "") -> float:
    if not isinstance(result, dict):
        raise _malformed("the price result is not an object", what)
    return _number(result.get("price"), "price", what)


def parse_summary(result: Any, *, what: str = "") -> Summary:
    price = result.get("price") if isinstance(result, dict) else None
    change = price.get("change") if isinstance(price, dict) else None
    if not isinstance(price, dict) or not isinstance(change, dict):
        raise _malformed("a summary needs price.last/high/low and price.change", what)
    quote_volume = result.get("volumeQuote")
    return Summary(
        last=_number(price.get("last"), "price.last", what), high=_number(price.get("high"), "price.high", what),
        low=_number(price.get("low"), "price.low", what),
        change_percentage=_number(change.get("percentage"), "price.change.percentage", what),
        change_absolute=_number(change.get("absolute"), "price.change.absolute", what),
        volume=_number(result.get("volume"), "volume", what),
        volume_quote=None if quote_volume is None else _number(quote_volume, "volumeQuote", what))


def parse_ohlc(result: Any, period: int | Interval = 60, *, what: str = "") -> list[Bar]:
    """The bars of one period, oldest first, stamped with their start (CloseTime − period) in UTC."""
    seconds = period.seconds if isinstance(period, Interval) else int(period)
    if not isinstance(result, dict):
        raise _malformed("the OHLC result is not an object", what)
    rows = result.get(str(seconds))
    if rows is None:
        return []  # no candles for this period in the range
    if not isinstance(rows, list):
        raise _malformed(f"OHLC period {seconds} is not a list", what)
    bars = []
    for index, row in enumerate(rows):
        # Rows have 7 numbers; before 2018 they had 6 (no QuoteVolume).
        if not isinstance(row, list) or len(row) < 6:
            raise _malformed(f"OHLC row {index} is not a list of 6 or 7 numbers: {str(row)[:80]}", what)
        close_time = _number(row[0], f"row {index} close time", what)
        values = [_number(value, f"row {index} field {field}", what)
                  for field, value in zip(("open", "high", "low", "close", "volume"), row[1:6])]
        stamp = dt.datetime.fromtimestamp(int(close_time) - seconds, tz=dt.timezone.utc)
        try:
            bars.append(Bar(stamp, *values))
        except ValueError as exc:
            raise _malformed(f"OHLC row {index}: {exc}", what) from None
    return sorted(bars, key=lambda bar: bar.timestamp)


def _number(value: Any, what: str, symbol: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _malformed(f"{what} is not a number: {value!r}", symbol)
    return float(value)


def _malformed(detail: str, what: str) -> errors.MalformedPayloadError:
    return errors.MalformedPayloadError(f"malformed Cryptowatch payload{' for ' + what if what else ''}: {detail}",
                                        source=SOURCE, symbol=what)


# -- the client -------------------------------------------------------------------------------------

class CryptowatchClient:
    """Fetches Cryptowatch market data as typed values and bars.

    The key (sent as the `X-CW-API-Key` header) and base URL come from the arguments or from
    `CRYPTOWATCH_API_KEY` and `CRYPTOWATCH_BASE_URL`; no key means anonymous access. Network faults,
    5xx and 429 are retried with backoff; `allowance` holds the credit left after the last call.
    """

    source = SOURCE

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, min_interval: float = 0.0,
                 retry: RetryPolicy = RetryPolicy(), environ: Mapping[str, str] = os.environ,
                 **http_options: Any) -> None:
        self.api_key = api_key or environ.get("CRYPTOWATCH_API_KEY") or None
        base_url = base_url or environ.get("CRYPTOWATCH_BASE_URL") or DEFAULT_BASE_URL
        headers = {API_KEY_HEADER: self.api_key} if self.api_key else {}
        self.http = HttpClient(SOURCE, base_url, session=session, timeout=timeout, retry=retry,
                               min_interval=min_interval, secrets=[self.api_key], headers=headers, **http_options)
        self.allowance: Allowance | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "CryptowatchClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def fetch(self, path: str, params: Mapping[str, str] | None = None, *, what: str = "") -> Any:
        """GET `path`; return its `result` once the response is known not to be an error."""
        def check(response: Response) -> Any:
            result, allowance = check_response(response, what=what)
            if allowance is not None:
                self.allowance = allowance
            return result

        return self.http.get(path, params, check=check, symbol=what)

    def markets(self, exchange: str | None = None) -> list[MarketInfo]:
        """Every market (of one exchange), following the list's cursor."""
        path = f"/markets/{exchange}" if exchange else "/markets"
        markets: list[MarketInfo] = []
        params: dict[str, str] = {}
        while True:
            page = self._page(path, params, what=exchange or "markets")
            markets += parse_markets(page["result"])
            cursor: dict[str, Any] = page["cursor"] if isinstance(page.get("cursor"), dict) else {}
            if not cursor.get("hasMore") or not cursor.get("last"):
                return markets
            params = {"cursor": str(cursor["last"])}

    def _page(self, path: str, params: Mapping[str, str], *, what: str) -> dict[str, Any]:
        """A list answer with its cursor (which `fetch` would drop)."""
        def check(response: Response) -> dict[str, Any]:
            result, allowance = check_response(response, what=what)
            if allowance is not None:
                self.allowance = allowance
            return {"result": result, "cursor": response.payload.get("cursor")}

        return self.http.get(path, params, check=check, symbol=what)

    def market(self, exchange: str, pair: str) -> MarketInfo:
        """Look one market up; NotFoundError when the upstream does not list it."""
        what = f"{exchange}:{pair}"
        return parse_market(self.fetch(market_path(exchange, pair), what=what), what=what)

    def price(self, exchange: str, pair: str) -> float:
        what = f"{exchange}:{pair}"
        return parse_price(self.fetch(market_path(exchange, pair, "price"), what=what), what=what)

    def summary(self, exchange: str, pair: str) -> Summary:
        what = f"{exchange}:{pair}"
        return parse_summary(self.fetch(market_path(exchange, pair, "summary"), what=what), what=what)

    def ohlc(self, exchange: str, pair: str, interval: Interval | int = Interval.MIN1, *,
             after: dt.datetime | int | None = None, before: dt.datetime | int | None = None) -> list[Bar]:
        """Candles of one period, oldest first (the newest may still be in progress)."""
        return self.ohlc_periods(exchange, pair, [interval], after=after, before=before)[
            interval.seconds if isinstance(interval, Interval) else int(interval)]

    def ohlc_periods(self, exchange: str, pair: str, periods: Iterable[Interval | int], *,
                     after: dt.datetime | int | None = None,
                     before: dt.datetime | int | None = None) -> dict[int, list[Bar]]:
        """Candles of several periods from one call: {period seconds: bars}."""
        what = f"{exchange}:{pair}"
        query = ohlc_query(periods, after=after, before=before)
        result = self.fetch(market_path(exchange, pair, "ohlc"), query, what=what)
        return {int(period): parse_ohlc(result, int(period), what=what) for period in query["periods"].split(",")}

    # -- the crypto-source calls of the ingest (lib.markets.CryptoSource) -------------------------------

    def resolve(self, market: MarketId) -> MarketInfo:
        return self.market(market.exchange, market.pair)

    def candles(self, info: MarketInfo, interval: Interval, since: dt.datetime,
                now: dt.datetime | None = None) -> list[Bar]:
        """Closed candles that start at or after `since`: `after` bounds close times, so since + period."""
        now = now or dt.datetime.now(dt.timezone.utc)
        bars = self.ohlc(info.exchange, info.source_symbol or info.pair, interval,
                         after=since + dt.timedelta(seconds=interval.seconds))
        return closed_since(bars, interval, since, now)
