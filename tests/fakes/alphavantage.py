"""A faithful offline AlphaVantage: `GET /query` in the exact wire formats of the real service.

Serve it with `FakeServer(FakeAlphaVantage())`. The shapes, texts and quirks follow
`/work/shared/reference/upstream_apis.md` (sections A.3-A.7 and D): string values with 4 decimals,
integer-string volumes, series newest first, naive US/Eastern intraday timestamps, and API errors as
HTTP 200 with a one-key body (`Error Message`, `Information` or `Note`).

Functions: TIME_SERIES_DAILY (compact = newest 100 rows, `outputsize=full` = all),
TIME_SERIES_DAILY_ADJUSTED (premium unless `premium_adjusted = False`), TIME_SERIES_WEEKLY and
TIME_SERIES_MONTHLY and their _ADJUSTED forms (free, whole history, no output size; built from the daily
bars: one row per calendar week or month dated by its last trading day, open of the first day, high and
low over the period, close and adjusted close of the last day, volume summed), TIME_SERIES_INTRADAY and
GLOBAL_QUOTE; anything else gets "This API function (X) does not exist.". `datatype=csv` answers CSV
(CRLF, newest first), but errors stay JSON as upstream. Other parameters (`month`, `extended_hours`,
`adjusted`, `entitlement`, ...) are accepted and ignored.

Switches (plain attributes, change them at any time):

- `api_key`: the key accepted (`None` accepts any non-empty key). `apikey=demo` works for the
  `demo_symbols` only (IBM), others get the demo-key `Information`.
- `premium_adjusted` (True), `premium_full` (False): premium refusals for TIME_SERIES_DAILY_ADJUSTED
  and for `outputsize=full` on TIME_SERIES_DAILY.
- `quota`: after that many calls answered with data, every call gets the daily-limit `Information`
  that quotes the caller's key.
- `burst`: a call less than `burst_window` (1 s) after the previous call gets the 1-request-per-second
  `Information`. Time comes from `clock` (injectable so tests can step it).
- `scenarios[symbol]`, checked before anything else about the call:

  =================  ===========================================================================
  unknown            200 `{"Error Message": "Invalid API call. ... for <FUNCTION>."}`
  empty              200 `{}`
  empty_quote        200 `{"Global Quote": {}}`
  premium            200 premium-endpoint `Information`
  note               200 legacy 5-calls-per-minute `Note`
  demo               200 demo-key `Information`
  html200            200 with an HTML error page (text/html)
  html503            503 with an HTML error page, every time
  fail_then_ok:N     503 HTML for the first N calls for that symbol, then the normal answer
  truncated          200 `application/json` whose body is the first half of the real body
                     (Content-Length matches the half: the client sees invalid JSON)
  incomplete         200 announcing the full Content-Length but sending half, then closing
                     (the client sees an incomplete read)
  bad_number         normal series with `"1. open": "n/a"` in the newest row
  missing_series     `Meta Data` only
  slow:SECONDS       sleep SECONDS before answering normally (client timeouts)
  slow_body:SECONDS  send headers and half the body, sleep SECONDS, then send the rest
  reset              close the connection without sending any response (the request's socket is
                     shut down; the client sees "connection aborted / remote end closed")
  =================  ===========================================================================

`requests` records the query parameters of every request (thread-safe).
"""
from __future__ import annotations

import datetime as dt
import json
import socket
import struct
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from lib.bars import Bar

EASTERN = ZoneInfo("America/New_York")
COMPACT_POINTS = 100
INTRADAY_INTERVALS = ("1min", "5min", "15min", "30min", "60min")

# -- the upstream's texts, verbatim from the reference ----------------------------------------------

DOCS = "https://www.alphavantage.co/documentation/"
APIKEY_MESSAGE = ("the parameter apikey is invalid or missing. Please claim your free API key on "
                  "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds.")
DEMO_MESSAGE = ("The **demo** API key is for demo purposes only. Please claim your free API key at "
                "(https://www.alphavantage.co/support/#api-key) to explore our full API offerings. It takes fewer "
                "than 20 seconds, and we are committed to making it free forever.")
QUOTA_MESSAGE = ("We have detected your API key as {key} and our standard API rate limit is 25 requests per day. "
                 "Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
                 "instantly remove all daily rate limits.")
BURST_MESSAGE = ("Thank you for using Alpha Vantage! Please consider spreading out your free API requests more "
                 "sparingly (1 request per second). You may subscribe to any of the premium plans at "
                 "https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day), "
                 "raise the per-second burst limit, and instantly unlock all premium endpoints.")
NOTE_MESSAGE = ("Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 "
                "calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a "
                "higher API call frequency.")
PREMIUM_ENDPOINT_MESSAGE = ("Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to "
                            "any of the premium plans at https://www.alphavantage.co/premium/ to instantly unlock "
                            "all premium endpoints")
PREMIUM_FULL_MESSAGE = ("Thank you for using Alpha Vantage! The outputsize=full parameter value is a premium "
                        "feature for the TIME_SERIES_DAILY endpoint. You may subscribe to any of the premium plans "
                        "at https://www.alphavantage.co/premium/ to instantly unlock all premium features")
HTML_ERROR_PAGE = ("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"viewport\" content=\"width=device-width, "
                   "initial-scale=1\">\n    <title>Application Error</title>\n  </head>\n  <body>\n    <iframe "
                   "src=\"//www.herokucdn.com/error-pages/application-error.html\"></iframe>\n  </body>\n</html>\n")


def invalid_call_message(function: str) -> str:
    return f"Invalid API call. Please retry or visit the documentation ({DOCS}) for {function}."


def unknown_function_message(function: str) -> str:
    return f"This API function ({function}) does not exist."


# -- rendering (also used to write fixture files) ---------------------------------------------------

def _price(value: float) -> str:
    return f"{value:.4f}"


def _volume(value: float) -> str:
    return f"{value:.0f}"


def _row(bar: Bar) -> dict[str, str]:
    return {"1. open": _price(bar.open), "2. high": _price(bar.high), "3. low": _price(bar.low),
            "4. close": _price(bar.close), "5. volume": _volume(bar.volume)}


def _adjusted_row(bar: Bar) -> dict[str, str]:
    adjusted = bar.adjusted_close if bar.adjusted_close is not None else bar.close
    return {"1. open": _price(bar.open), "2. high": _price(bar.high), "3. low": _price(bar.low),
            "4. close": _price(bar.close), "5. adjusted close": _price(adjusted), "6. volume": _volume(bar.volume),
            "7. dividend amount": "0.0000", "8. split coefficient": "1.0000"}


def _newest_first(bars: Iterable[Bar], outputsize: str) -> list[Bar]:
    ordered = sorted(bars, key=lambda bar: bar.timestamp, reverse=True)
    return ordered[:COMPACT_POINTS] if outputsize != "full" else ordered


def _output_size_label(outputsize: str) -> str:
    return "Full size" if outputsize == "full" else "Compact"


def eastern(stamp: dt.datetime) -> str:
    """A UTC bar timestamp as AlphaVantage writes intraday keys: naive US/Eastern wall-clock time."""
    return stamp.astimezone(EASTERN).strftime("%Y-%m-%d %H:%M:%S")


def render_daily(symbol: str, bars: Iterable[Bar], outputsize: str = "compact", *,
                 adjusted: bool = False) -> dict[str, Any]:
    """A TIME_SERIES_DAILY (or, with `adjusted`, _DAILY_ADJUSTED) body for `bars`, newest first."""
    rows = _newest_first(bars, outputsize)
    info = ("Daily Time Series with Splits and Dividend Events" if adjusted
            else "Daily Prices (open, high, low, close) and Volumes")
    return _dated_body(symbol, info, "Time Series (Daily)", rows, _adjusted_row if adjusted else _row,
                       _output_size_label(outputsize))


def _dated_body(symbol: str, info: str, series_key: str, rows: list[Bar], render_row: Callable[[Bar], dict[str, str]],
                output_size: str | None = None) -> dict[str, Any]:
    """A daily, weekly or monthly body: 5 meta keys with an output size (daily), else 4."""
    meta = {"1. Information": info, "2. Symbol": symbol,
            "3. Last Refreshed": rows[0].timestamp.date().isoformat() if rows else ""}
    if output_size is not None:
        meta["4. Output Size"] = output_size
    meta[f"{len(meta) + 1}. Time Zone"] = "US/Eastern"
    return {"Meta Data": meta, series_key: {bar.timestamp.date().isoformat(): render_row(bar) for bar in rows}}


CALENDAR = {
    "weekly": ("Weekly", lambda day: day.isocalendar()[:2]),
    "monthly": ("Monthly", lambda day: (day.year, day.month)),
}


def calendar_bars(bars: Iterable[Bar], period: str) -> list[Bar]:
    """Daily bars gathered into weekly or monthly ones, oldest first, each dated by its last trading day."""
    _, key_of = CALENDAR[period]
    groups: dict[Any, list[Bar]] = {}
    for bar in sorted(bars, key=lambda bar: bar.timestamp):
        groups.setdefault(key_of(bar.date), []).append(bar)
    return [Bar(days[-1].timestamp, days[0].open, max(day.high for day in days), min(day.low for day in days),
                days[-1].close, sum(day.volume for day in days), days[-1].adjusted_close)
            for days in groups.values()]


def render_calendar(symbol: str, bars: Iterable[Bar], period: str, *, adjusted: bool = False) -> dict[str, Any]:
    """A TIME_SERIES_WEEKLY / _MONTHLY (or _ADJUSTED) body from daily `bars`, newest first."""
    title, _ = CALENDAR[period]
    rows = _newest_first(calendar_bars(bars, period), "full")
    if adjusted:
        info, series_key = f"{title} Adjusted Prices and Volumes", f"{title} Adjusted Time Series"
    else:
        info, series_key = f"{title} Prices (open, high, low, close) and Volumes", f"{title} Time Series"
    return _dated_body(symbol, info, series_key, rows, _calendar_adjusted_row if adjusted else _row)


def _calendar_adjusted_row(bar: Bar) -> dict[str, str]:
    row = _adjusted_row(bar)
    del row["8. split coefficient"]  # weekly and monthly adjusted rows stop at the dividend
    return row


def render_intraday(symbol: str, bars: Iterable[Bar], interval: str, outputsize: str = "compact") -> dict[str, Any]:
    """A TIME_SERIES_INTRADAY body for UTC `bars`, keyed by naive US/Eastern times, newest first."""
    rows = _newest_first(bars, outputsize)
    return {
        "Meta Data": {
            "1. Information": f"Intraday ({interval}) open, high, low, close prices and volume",
            "2. Symbol": symbol,
            "3. Last Refreshed": eastern(rows[0].timestamp) if rows else "",
            "4. Interval": interval,
            "5. Output Size": _output_size_label(outputsize),
            "6. Time Zone": "US/Eastern",
        },
        f"Time Series ({interval})": {eastern(bar.timestamp): _row(bar) for bar in rows},
    }


def render_quote(symbol: str, bars: Iterable[Bar]) -> dict[str, Any]:
    """A GLOBAL_QUOTE body from daily bars (the last one, against the close before it)."""
    ordered = sorted(bars, key=lambda bar: bar.timestamp)
    if not ordered:
        return {"Global Quote": {}}
    last = ordered[-1]
    previous = ordered[-2].close if len(ordered) > 1 else last.open
    change = last.close - previous
    percent = change / previous * 100 if previous else 0.0
    return {"Global Quote": {
        "01. symbol": symbol, "02. open": _price(last.open), "03. high": _price(last.high),
        "04. low": _price(last.low), "05. price": _price(last.close), "06. volume": _volume(last.volume),
        "07. latest trading day": last.timestamp.date().isoformat(), "08. previous close": _price(previous),
        "09. change": _price(change), "10. change percent": f"{percent:.4f}%"}}


def _csv(rows: list[list[str]]) -> str:
    return "".join(",".join(row) + "\r\n" for row in rows)


def csv_series(payload: dict[str, Any]) -> str:
    """The `datatype=csv` form of a rendered daily or intraday body: `timestamp,open,...`, CRLF, newest first."""
    series_key = next(key for key in payload if "Time Series" in key)
    series = payload[series_key]
    first = next(iter(series.values()), {})
    adjusted = "5. adjusted close" in first
    header = (["timestamp", "open", "high", "low", "close", "adjusted_close", "volume", "dividend_amount",
               "split_coefficient"] if adjusted else ["timestamp", "open", "high", "low", "close", "volume"])
    return _csv([header] + [[stamp, *row.values()] for stamp, row in series.items()])


# -- the WSGI application ---------------------------------------------------------------------------

class _Answer:
    """What the fake decided to send: a status, a content type and a body, plus transport tricks."""

    def __init__(self, body: Any, status: str = "200 OK", content_type: str = "application/json",
                 cut: str = "", pause: float = 0.0, counts: bool = False) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.cut = cut  # "", "truncated", "incomplete", "slow_body"
        self.pause = pause
        self.counts = counts  # answered with data: counts against the quota


class FakeAlphaVantage:
    """WSGI callable; see the module docstring for its switches and scenarios."""

    def __init__(self, api_key: str | None = "test-key", *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_key = api_key
        self.daily: dict[str, list[Bar]] = {}
        self.intraday: dict[tuple[str, str], list[Bar]] = {}
        self.requests: list[dict[str, str]] = []
        self.scenarios: dict[str, str] = {}
        self.premium_adjusted = True
        self.premium_full = False
        self.quota: int | None = None
        self.burst = False
        self.burst_window = 1.0
        self.demo_symbols = {"IBM"}
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._served = 0  # calls answered with data
        self._last_call: float | None = None
        self._failures: dict[str, int] = {}

    # -- data ---------------------------------------------------------------------------------------

    def add_daily(self, symbol: str, bars: Iterable[Bar]) -> None:
        self.daily[symbol] = sorted(bars, key=lambda bar: bar.timestamp)

    def add_intraday(self, symbol: str, interval: str, bars: Iterable[Bar]) -> None:
        if interval not in INTRADAY_INTERVALS:
            raise ValueError(f"interval must be one of {INTRADAY_INTERVALS}")
        self.intraday[(symbol, interval)] = sorted(bars, key=lambda bar: bar.timestamp)

    @property
    def served(self) -> int:
        """Calls answered with data so far (what `quota` counts)."""
        with self._lock:
            return self._served

    def calls(self, symbol: str | None = None) -> list[dict[str, str]]:
        """The recorded requests, optionally only those for `symbol`."""
        with self._lock:
            return [dict(r) for r in self.requests if symbol is None or r.get("symbol") == symbol]

    # -- WSGI ---------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        with self._lock:
            self.requests.append(params)
        if environ.get("PATH_INFO", "") != "/query":
            return self._send(start_response, _Answer("<html><body><h1>Not Found</h1></body></html>",
                                                      "404 Not Found", "text/html"))
        symbol = params.get("symbol", "")
        name, _, argument = self.scenarios.get(symbol, "").partition(":")
        if name == "reset":
            return self._reset(environ, start_response)
        if name == "slow":
            self.sleep(float(argument or 1.0))
        answer = self._transport_fault(name, argument, symbol) or self._answer(params, name)
        if name in ("truncated", "incomplete", "slow_body"):
            answer.cut = name
            answer.pause = float(argument or 1.0) if name == "slow_body" else 0.0
        return self._send(start_response, answer)

    def _transport_fault(self, name: str, argument: str, symbol: str) -> _Answer | None:
        if name in ("html503", "fail_then_ok"):
            with self._lock:
                failed = self._failures.get(symbol, 0)
                if name == "fail_then_ok" and failed >= int(argument or 1):
                    return None
                self._failures[symbol] = failed + 1
            return _Answer(HTML_ERROR_PAGE, "503 Service Unavailable", "text/html")
        if name == "html200":
            return _Answer(HTML_ERROR_PAGE, "200 OK", "text/html")
        return None

    def _answer(self, params: dict[str, str], scenario: str) -> _Answer:
        function = params.get("function", "")
        symbol = params.get("symbol", "")
        key = params.get("apikey", "")
        accepted = key == "demo" or (key != "" if self.api_key is None else key == self.api_key)
        if not accepted:
            return _Answer({"Error Message": APIKEY_MESSAGE})
        with self._lock:
            now = self.clock()
            too_soon = self.burst and self._last_call is not None and now - self._last_call < self.burst_window
            self._last_call = now
            spent = self.quota is not None and self._served >= self.quota
        if too_soon:
            return _Answer({"Information": BURST_MESSAGE})
        if spent:
            return _Answer({"Information": QUOTA_MESSAGE.format(key=key)})
        handler = self._functions().get(function)
        if handler is None:
            return _Answer({"Error Message": unknown_function_message(function)})
        if key == "demo" and symbol not in self.demo_symbols:
            return _Answer({"Information": DEMO_MESSAGE})
        canned = {
            "unknown": {"Error Message": invalid_call_message(function)},
            "empty": {},
            "empty_quote": {"Global Quote": {}},
            "premium": {"Information": PREMIUM_ENDPOINT_MESSAGE},
            "note": {"Note": NOTE_MESSAGE},
            "demo": {"Information": DEMO_MESSAGE},
        }
        if scenario in canned:
            return _Answer(canned[scenario])
        answer = handler(params)
        if answer.counts and isinstance(answer.body, dict):
            answer.body = _spoil(answer.body, scenario)
            with self._lock:
                self._served += 1
        return answer

    def _functions(self) -> dict[str, Callable[[dict[str, str]], _Answer]]:
        calendar = {f"TIME_SERIES_{period.upper()}{suffix}": self._calendar(period, adjusted=bool(suffix))
                    for period in CALENDAR for suffix in ("", "_ADJUSTED")}
        return {"TIME_SERIES_DAILY": self._daily, "TIME_SERIES_DAILY_ADJUSTED": self._daily_adjusted,
                "TIME_SERIES_INTRADAY": self._intraday, "GLOBAL_QUOTE": self._quote, **calendar}

    def _calendar(self, period: str, *, adjusted: bool) -> Callable[[dict[str, str]], _Answer]:
        function = f"TIME_SERIES_{period.upper()}{'_ADJUSTED' if adjusted else ''}"

        def answer(params: dict[str, str]) -> _Answer:
            symbol = params.get("symbol", "")
            if symbol not in self.daily:
                return _Answer({"Error Message": invalid_call_message(function)})
            return self._data(params, render_calendar(symbol, self.daily[symbol], period, adjusted=adjusted))

        return answer

    def _daily(self, params: dict[str, str]) -> _Answer:
        symbol, outputsize = params.get("symbol", ""), params.get("outputsize", "compact")
        if symbol not in self.daily or outputsize not in ("compact", "full"):
            return _Answer({"Error Message": invalid_call_message("TIME_SERIES_DAILY")})
        if outputsize == "full" and self.premium_full:
            return _Answer({"Information": PREMIUM_FULL_MESSAGE})
        return self._data(params, render_daily(symbol, self.daily[symbol], outputsize))

    def _daily_adjusted(self, params: dict[str, str]) -> _Answer:
        if self.premium_adjusted:
            return _Answer({"Information": PREMIUM_ENDPOINT_MESSAGE})
        symbol, outputsize = params.get("symbol", ""), params.get("outputsize", "compact")
        if symbol not in self.daily or outputsize not in ("compact", "full"):
            return _Answer({"Error Message": invalid_call_message("TIME_SERIES_DAILY_ADJUSTED")})
        return self._data(params, render_daily(symbol, self.daily[symbol], outputsize, adjusted=True))

    def _intraday(self, params: dict[str, str]) -> _Answer:
        symbol, interval = params.get("symbol", ""), params.get("interval", "")
        outputsize = params.get("outputsize", "compact")
        if (symbol, interval) not in self.intraday or outputsize not in ("compact", "full"):
            return _Answer({"Error Message": invalid_call_message("TIME_SERIES_INTRADAY")})
        return self._data(params, render_intraday(symbol, self.intraday[(symbol, interval)], interval, outputsize))

    def _quote(self, params: dict[str, str]) -> _Answer:
        symbol = params.get("symbol", "")
        if not symbol:
            return _Answer({"Error Message": invalid_call_message("GLOBAL_QUOTE")})
        body = render_quote(symbol, self.daily.get(symbol, []))
        if params.get("datatype") == "csv" and body["Global Quote"]:
            quote = body["Global Quote"]
            header = ["symbol", "open", "high", "low", "price", "volume", "latestDay", "previousClose", "change",
                      "changePercent"]
            return _Answer(_csv([header, list(quote.values())]), content_type="application/x-download", counts=True)
        return _Answer(body, counts=bool(body["Global Quote"]))

    @staticmethod
    def _data(params: dict[str, str], payload: dict[str, Any]) -> _Answer:
        if params.get("datatype") == "csv":
            return _Answer(csv_series(payload), content_type="application/x-download", counts=True)
        return _Answer(payload, counts=True)

    # -- transport ----------------------------------------------------------------------------------

    def _send(self, start_response: Callable[..., Any], answer: _Answer) -> Iterable[bytes]:
        if isinstance(answer.body, (dict, list)):
            text = json.dumps(answer.body, indent=4)
        else:
            text = answer.body
        data = text.encode("utf-8")
        half = data[:len(data) // 2]
        length = len(half) if answer.cut == "truncated" else len(data)
        headers = [("Content-Type", answer.content_type), ("Content-Length", str(length))]
        start_response(answer.status, headers)
        if answer.cut == "truncated" or answer.cut == "incomplete":
            return [half]
        if answer.cut == "slow_body":
            return self._drip(half, data[len(half):], answer.pause)
        return [data]

    def _drip(self, first: bytes, rest: bytes, pause: float) -> Iterable[bytes]:
        yield first
        self.sleep(pause)
        yield rest

    @staticmethod
    def _reset(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Drop the connection before any byte of a response goes out.

        werkzeug hands the request socket to the app as `werkzeug.socket`. SO_LINGER 0 makes the final
        close a reset rather than a graceful close; the shutdown ends the conversation at once. werkzeug
        then fails to write its response, takes that for a client disconnect and stays quiet.
        """
        sock = environ["werkzeug.socket"]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]


def _spoil(body: dict[str, Any], scenario: str) -> dict[str, Any]:
    """Apply the data-damaging scenarios to a well-formed series body."""
    if scenario == "missing_series":
        return {"Meta Data": body["Meta Data"]} if "Meta Data" in body else {}
    if scenario == "bad_number":
        series_key = next((key for key in body if key.startswith("Time Series")), None)
        if series_key and body[series_key]:
            newest = next(iter(body[series_key]))
            body[series_key][newest] = {**body[series_key][newest], "1. open": "n/a"}
    return body
