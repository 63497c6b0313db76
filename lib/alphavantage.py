"""AlphaVantage stock series: build the query, fetch the raw payload, turn it into typed bars.

Each step stands alone so it can be tested offline: `daily_query`/`weekly_query`/`monthly_query`/
`intraday_query` build parameters, `AlphaVantageClient.fetch` returns the decoded JSON (raising typed errors
for the error bodies that AlphaVantage sends with HTTP 200), and `parse_daily`/`parse_weekly`/
`parse_monthly`/`parse_intraday` turn a payload into bars. Equity timestamps arrive as naive US/Eastern
wall-clock times; bars come out in UTC, oldest first.

Weekly and monthly series are free and always whole (they take no output size). AlphaVantage dates a week
or a month by its last trading day (the latest day for the period in progress), and so do their bars, as
pandas labels a weekly or monthly resample by the period's end. The adjusted daily series is premium; the
adjusted weekly and monthly ones are free.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import requests

from lib import errors
from lib.bars import Bar, Interval, day_start
from lib.http import DEFAULT_TIMEOUT, HttpClient, Response, RetryPolicy, redact

SOURCE = "alphavantage"
DEFAULT_BASE_URL = "https://www.alphavantage.co"
DAILY = "TIME_SERIES_DAILY"
DAILY_ADJUSTED = "TIME_SERIES_DAILY_ADJUSTED"
INTRADAY = "TIME_SERIES_INTRADAY"
WEEKLY = "TIME_SERIES_WEEKLY"
WEEKLY_ADJUSTED = "TIME_SERIES_WEEKLY_ADJUSTED"
MONTHLY = "TIME_SERIES_MONTHLY"
MONTHLY_ADJUSTED = "TIME_SERIES_MONTHLY_ADJUSTED"
# The series object of each dated (not intraday) function.
SERIES_KEYS = {DAILY: "Time Series (Daily)", DAILY_ADJUSTED: "Time Series (Daily)",
               WEEKLY: "Weekly Time Series", WEEKLY_ADJUSTED: "Weekly Adjusted Time Series",
               MONTHLY: "Monthly Time Series", MONTHLY_ADJUSTED: "Monthly Adjusted Time Series"}
COMPACT_POINTS = 100  # what outputsize=compact returns
ERROR_KEYS = ("Error Message", "Information", "Note")  # the one key of an error answer sent with HTTP 200
EASTERN = ZoneInfo("America/New_York")


# -- 1. build the query -----------------------------------------------------------------------------

def daily_query(symbol: str, outputsize: str = "compact", *, adjusted: bool = False) -> dict[str, str]:
    _check_outputsize(outputsize)
    return {"function": DAILY_ADJUSTED if adjusted else DAILY, "symbol": symbol,
            "outputsize": outputsize, "datatype": "json"}


def weekly_query(symbol: str, *, adjusted: bool = False) -> dict[str, str]:
    return {"function": WEEKLY_ADJUSTED if adjusted else WEEKLY, "symbol": symbol, "datatype": "json"}


def monthly_query(symbol: str, *, adjusted: bool = False) -> dict[str, str]:
    return {"function": MONTHLY_ADJUSTED if adjusted else MONTHLY, "symbol": symbol, "datatype": "json"}


def intraday_query(symbol: str, interval: Interval | str = Interval.MIN1,
                   outputsize: str = "compact") -> dict[str, str]:
    _check_outputsize(outputsize)
    interval = Interval.parse(str(interval))
    if not interval.is_intraday:
        raise ValueError("intraday interval must be one of 1min, 5min, 15min, 30min, 60min")
    return {"function": INTRADAY, "symbol": symbol, "interval": interval.value,
            "outputsize": outputsize, "datatype": "json"}


def _check_outputsize(outputsize: str) -> None:
    if outputsize not in ("compact", "full"):
        raise ValueError(f"outputsize must be 'compact' or 'full', got {outputsize!r}")


# -- 2. read a payload: errors first ----------------------------------------------------------------

def check_payload(payload: Any, *, symbol: str = "", api_key: str | None = None) -> dict[str, Any]:
    """Raise the typed error that an AlphaVantage body stands for, or return the body.

    AlphaVantage answers errors with HTTP 200 and a one-key body; the texts have changed over the
    years, so the body is classified by its key and by phrases rather than by exact text.
    """
    context = {"source": SOURCE, "symbol": symbol}
    if not isinstance(payload, dict):
        raise errors.MalformedPayloadError(f"expected a JSON object, got {type(payload).__name__}", **context)
    if is_empty(payload):
        raise errors.NotFoundError(f"no data for symbol {symbol!r} (empty response)", **context)
    if "Error Message" in payload:
        text = redact(str(payload["Error Message"]), [api_key])
        lowered = text.lower()
        if "apikey" in lowered or "api key" in lowered:
            raise errors.AuthenticationError(f"API key rejected: {text}", **context)
        if "does not exist" in lowered:
            raise errors.BadRequestError(f"unknown API function: {text}", **context)
        raise errors.NotFoundError(f"unknown symbol {symbol!r} or invalid call: {text}", **context)
    for key in ERROR_KEYS[1:]:
        if key in payload:
            raise _classify_notice(redact(str(payload[key]), [api_key]), key, context)
    return payload


def is_empty(payload: dict[str, Any]) -> bool:
    """AlphaVantage's "no data" answers: `{}`, or keys holding nothing (`{"Global Quote": {}}`)."""
    return not payload or all(value in ({}, [], "", None) for value in payload.values())


def _classify_notice(text: str, key: str, context: dict[str, str]) -> errors.MarketDataError:
    text = _KEY_ECHO.sub(r"\1***", text)  # the daily-limit notice quotes the key, even when we do not know it
    lowered = text.lower()
    # The burst notice also mentions the daily limit and "premium endpoints", so it is recognised first.
    if "per second" in lowered or "more sparingly" in lowered:
        return errors.RateLimitedError(f"rate limited (burst): {text}", retry_after=1.0, **context)
    if "per minute" in lowered or "call frequency" in lowered:
        return errors.RateLimitedError(f"rate limited (per minute): {text}", retry_after=60.0, **context)
    # Before the quota phrases: the outputsize=full refusal names TIME_SERIES_DAILY ("daily").
    if "premium endpoint" in lowered or "premium feature" in lowered:
        return errors.PremiumRequiredError(f"premium plan required: {text}", **context)
    if "per day" in lowered or "daily limit" in lowered or "rate limit" in lowered:
        return errors.QuotaExhaustedError(f"daily quota spent: {text}", **context)
    if "demo" in lowered:
        return errors.AuthenticationError(f"the demo API key only serves the documentation's examples: {text}",
                                          **context)
    if "premium" in lowered:
        return errors.PremiumRequiredError(f"premium plan required: {text}", **context)
    if key == "Note":  # historically always the rate-limit notice
        return errors.RateLimitedError(f"rate limited: {text}", retry_after=60.0, **context)
    return errors.PermanentError(f"upstream refused the call: {text}", **context)


_KEY_ECHO = re.compile(r"(api key as )[^\s,;]+?(?=[\s,;]|\.(?:\s|$)|$)", re.IGNORECASE)


# -- 3. turn a payload into bars --------------------------------------------------------------------

def parse_daily(payload: Any, *, symbol: str = "") -> list[Bar]:
    """Bars of a TIME_SERIES_DAILY or _ADJUSTED body, oldest first, stamped midnight UTC of the date."""
    return _parse_dated(check_payload(payload, symbol=symbol), SERIES_KEYS[DAILY], symbol)


def parse_weekly(payload: Any, *, symbol: str = "") -> list[Bar]:
    """Bars of a TIME_SERIES_WEEKLY or _ADJUSTED body, oldest first, stamped midnight UTC of the week's last
    trading day."""
    body = check_payload(payload, symbol=symbol)
    return _parse_dated(body, _present(body, WEEKLY, WEEKLY_ADJUSTED), symbol)


def parse_monthly(payload: Any, *, symbol: str = "") -> list[Bar]:
    """Bars of a TIME_SERIES_MONTHLY or _ADJUSTED body, oldest first, stamped midnight UTC of the month's last
    trading day."""
    body = check_payload(payload, symbol=symbol)
    return _parse_dated(body, _present(body, MONTHLY, MONTHLY_ADJUSTED), symbol)


def _present(body: dict[str, Any], plain: str, adjusted: str) -> str:
    """The series key of whichever of the two functions answered (the plain one when neither did)."""
    return SERIES_KEYS[adjusted] if SERIES_KEYS[adjusted] in body else SERIES_KEYS[plain]


def _parse_dated(body: dict[str, Any], series_key: str, symbol: str) -> list[Bar]:
    series = _series(body, series_key, symbol)
    bars = []
    for key, row in series.items():
        try:
            day = dt.date.fromisoformat(key)
        except (TypeError, ValueError):
            raise _malformed(f"bad date {key!r}", symbol) from None
        bars.append(_bar(day_start(day), row, key, symbol))
    return sorted(bars, key=lambda bar: bar.timestamp)


def parse_intraday(payload: Any, interval: Interval | str = Interval.MIN1, *, symbol: str = "") -> list[Bar]:
    """Bars of a TIME_SERIES_INTRADAY body, oldest first, with the wall-clock times converted to UTC."""
    interval = Interval.parse(str(interval))
    body = check_payload(payload, symbol=symbol)
    series = _series(body, f"Time Series ({interval.value})", symbol)
    zone = _time_zone(body.get("Meta Data"))
    bars = []
    for key, row in series.items():
        try:
            local = dt.datetime.strptime(key, "%Y-%m-%d %H:%M:%S")
        except (TypeError, ValueError):
            raise _malformed(f"bad timestamp {key!r}", symbol) from None
        stamp = local.replace(tzinfo=zone).astimezone(dt.timezone.utc)
        bars.append(_bar(stamp, row, key, symbol))
    return sorted(bars, key=lambda bar: bar.timestamp)


def _series(body: dict[str, Any], key: str, symbol: str) -> dict[str, Any]:
    series = body.get(key)
    if not isinstance(series, dict):
        found = ", ".join(sorted(body)) or "nothing"
        raise _malformed(f"response has no {key!r} object (found {found})", symbol)
    return series


def _time_zone(meta: Any) -> ZoneInfo:
    if isinstance(meta, dict):
        for key, value in meta.items():
            if key.endswith("Time Zone") and isinstance(value, str):
                try:
                    return ZoneInfo(value)
                except (ValueError, KeyError, OSError):
                    raise _malformed(f"unknown time zone {value!r}", "") from None
    return EASTERN


_FIELDS = {"open": "1. open", "high": "2. high", "low": "3. low", "close": "4. close"}


def _bar(stamp: dt.datetime, row: Any, key: str, symbol: str) -> Bar:
    if not isinstance(row, dict):
        raise _malformed(f"row {key} is not an object", symbol)
    # Adjusted series put the adjusted close at 5 and shift volume to 6.
    volume_key = "6. volume" if "6. volume" in row else "5. volume"
    values = {name: _number(row.get(field), f"row {key} field {field!r}", symbol)
              for name, field in {**_FIELDS, "volume": volume_key}.items()}
    adjusted = row.get("5. adjusted close")
    try:
        return Bar(timestamp=stamp, **values,
                   adjusted_close=_number(adjusted, f"row {key} adjusted close", symbol) if adjusted else None)
    except ValueError as exc:
        raise _malformed(f"row {key}: {exc}", symbol) from None


def _number(value: Any, what: str, symbol: str) -> float:
    if isinstance(value, bool) or value is None:
        raise _malformed(f"{what} is missing", symbol)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _malformed(f"{what} is not a number: {value!r}", symbol) from None


def _malformed(detail: str, symbol: str) -> errors.MalformedPayloadError:
    return errors.MalformedPayloadError(f"malformed AlphaVantage payload: {detail}", source=SOURCE, symbol=symbol)


# -- the client -------------------------------------------------------------------------------------

class AlphaVantageClient:
    """Fetches AlphaVantage series as typed bars.

    The key and base URL come from the arguments or from `ALPHAVANTAGE_API_KEY` and
    `ALPHAVANTAGE_BASE_URL`. Calls are paced `min_interval` seconds apart (the free tier allows one a
    second); network faults, 5xx and burst refusals are retried with backoff. The daily quota is the
    upstream's to enforce: `QuotaExhaustedError` means stop calling until it resets.
    """

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, min_interval: float = 1.0,
                 retry: RetryPolicy = RetryPolicy(), environ: Mapping[str, str] = os.environ,
                 **http_options: Any) -> None:
        self.api_key = api_key or environ.get("ALPHAVANTAGE_API_KEY") or None
        if not self.api_key:
            raise errors.ConfigurationError(
                "no AlphaVantage API key: set ALPHAVANTAGE_API_KEY (free key: "
                "https://www.alphavantage.co/support/#api-key)", source=SOURCE)
        base_url = base_url or environ.get("ALPHAVANTAGE_BASE_URL") or DEFAULT_BASE_URL
        self.http = HttpClient(SOURCE, base_url, session=session, timeout=timeout, retry=retry,
                               min_interval=min_interval, secrets=[self.api_key], **http_options)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "AlphaVantageClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def fetch(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Call `/query` with `params` (plus the key); return the body once it is known not to be an error."""
        symbol = params.get("symbol", "")

        def check(response: Response) -> dict[str, Any]:
            if response.status != 200:
                raise errors.BadRequestError(f"{SOURCE}: unexpected HTTP {response.status}",
                                             source=SOURCE, symbol=symbol)
            return check_payload(response.payload, symbol=symbol, api_key=self.api_key)

        return self.http.get("/query", {**params, "apikey": self.api_key}, check=check, symbol=symbol)

    def daily(self, symbol: str, outputsize: str = "compact", *, adjusted: bool = False) -> list[Bar]:
        """Daily bars; `adjusted` asks for TIME_SERIES_DAILY_ADJUSTED (premium: PremiumRequiredError without a
        plan), whose bars carry `adjusted_close`."""
        return parse_daily(self.fetch(daily_query(symbol, outputsize, adjusted=adjusted)), symbol=symbol)

    def weekly(self, symbol: str, *, adjusted: bool = False) -> list[Bar]:
        """The whole weekly history (free), dated by each week's last trading day."""
        return parse_weekly(self.fetch(weekly_query(symbol, adjusted=adjusted)), symbol=symbol)

    def monthly(self, symbol: str, *, adjusted: bool = False) -> list[Bar]:
        """The whole monthly history (free), dated by each month's last trading day."""
        return parse_monthly(self.fetch(monthly_query(symbol, adjusted=adjusted)), symbol=symbol)

    def intraday(self, symbol: str, interval: Interval | str = Interval.MIN1,
                 outputsize: str = "compact") -> list[Bar]:
        return parse_intraday(self.fetch(intraday_query(symbol, interval, outputsize)), interval, symbol=symbol)
