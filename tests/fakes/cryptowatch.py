"""A faithful offline Cryptowatch REST API, in its last documented wire format (the real one is gone).

Serve it with `FakeServer(FakeCryptowatch())`. Shapes follow `/work/shared/reference/upstream_apis.md`
(B.2, D.9-D.11):

- every answer is `{"result": ..., "allowance": {"cost", "remaining", "upgrade"}}`; with an API key
  (header `X-CW-API-Key` or `?apikey=`) the allowance carries `account` and `remainingPaid` instead of
  `upgrade`. Each call costs credits; once `remaining` would go below zero the answer is 429.
- lists (`/markets`, `/markets/:exchange`, `/exchanges`) carry `"cursor": {"last", "hasMore"}` and take
  `cursor` and `limit`.
- `/markets/:exchange/:pair/ohlc?periods=60,3600&after=&before=`: rows `[CloseTime, Open, High, Low,
  Close, Volume, QuoteVolume]` as plain JSON numbers keyed by the period as a string; `after` and
  `before` bound CloseTime (seconds). The newest row may be the candle in progress, as upstream.
- errors with real statuses and `{"error": ...}`: 404 "Instrument not found", "Exchange not found",
  "Route not found"; 400 for a bad `periods`; 429 when the allowance is spent.

Paths: `/`, `/exchanges[/:exchange]`, `/pairs/:pair`, `/markets[/:exchange[/:pair]]`,
`/markets/:exchange/:pair/{price,summary,ohlc}`, `/markets/prices`, `/markets/summaries`.

`scenarios["exchange:pair"]` (see `Scenarios`: `"name:N"` fails the first N calls only):

  =========  =====================================================================
  down       503 with an HTML page (the SDK retried 500/502/503/504)
  html200    200 with an HTML page
  malformed  200 JSON without `result`
  bad_row    OHLC with a row whose close is a string
  =========  =====================================================================

`requests` records (path, query, API key) of every call.
"""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from lib.bars import Bar
from lib.markets import split_pair
from tests.fakes.server import HTML_ERROR_PAGE, Scenarios, send

PERIODS = ("60", "180", "300", "900", "1800", "3600", "7200", "14400", "21600", "43200", "86400", "259200",
           "604800", "604800_Monday")
UPGRADE = "For unlimited API access, create an account at https://cryptowat.ch"
COSTS = {"ohlc": 0.015, "summary": 0.005, "price": 0.005, "list": 0.003, "market": 0.002}


def ohlc_row(bar: Bar, period: int) -> list[float]:
    """A bar as a Cryptowatch OHLC row: [CloseTime, Open, High, Low, Close, Volume, QuoteVolume]."""
    return [int(bar.timestamp.timestamp()) + period, bar.open, bar.high, bar.low, bar.close, bar.volume,
            round(bar.volume * bar.close, 4)]


def render_ohlc(bars: Iterable[Bar], period: int = 60, *, remaining: float = 9.985) -> dict[str, Any]:
    """The body of `/markets/:exchange/:pair/ohlc?periods=<period>` for `bars` (anonymous allowance)."""
    return {"result": {str(period): [ohlc_row(bar, period) for bar in sorted(bars, key=lambda bar: bar.timestamp)]},
            "allowance": {"cost": COSTS["ohlc"], "remaining": remaining, "upgrade": UPGRADE}}


class FakeCryptowatch:
    """WSGI callable; load candles with `add_ohlc`, then point a client at the server's URL."""

    def __init__(self, *, allowance: float = 10.0, page_size: int = 1000) -> None:
        self.candles: dict[tuple[str, str], dict[int, list[Bar]]] = {}
        self.extra_exchanges = {"kraken", "binance", "coinbase-pro", "bitstamp"}
        self.remaining = allowance
        self.page_size = page_size
        self.account = str(uuid.uuid4())
        self.scenarios = Scenarios()
        self.requests: list[tuple[str, dict[str, str], str | None]] = []
        self._lock = threading.Lock()

    def add_ohlc(self, exchange: str, pair: str, bars: Iterable[Bar], period: int = 60) -> None:
        self.candles.setdefault((exchange, pair), {})[period] = sorted(bars, key=lambda bar: bar.timestamp)

    def calls(self, path_prefix: str = "") -> list[tuple[str, dict[str, str], str | None]]:
        with self._lock:
            return [call for call in self.requests if call[0].startswith(path_prefix)]

    # -- WSGI ---------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "").rstrip("/") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        key = environ.get("HTTP_X_CW_API_KEY") or query.get("apikey")
        with self._lock:
            self.requests.append((path, query, key))
        parts = [part for part in path.split("/") if part]
        if len(parts) >= 3 and parts[0] == "markets":
            scenario = self.scenarios.active(f"{parts[1]}:{parts[2]}")
            if scenario == "down":
                return send(start_response, "503 Service Unavailable", HTML_ERROR_PAGE, content_type="text/html")
            if scenario == "html200":
                return send(start_response, "200 OK", HTML_ERROR_PAGE, content_type="text/html")
            if scenario == "malformed":
                return send(start_response, "200 OK", {"allowance": self._allowance(0.0, key)})
        else:
            scenario = None
        status, result, cost, cursor = self._route(parts, query, scenario)
        if status != "200 OK":
            return send(start_response, status, {"error": result})
        with self._lock:
            if self.remaining - cost < 0:
                return send(start_response, "429 Too Many Requests",
                            {"error": "You have exceeded your current API allowance"})
            self.remaining -= cost
        body: dict[str, Any] = {"result": result}
        if cursor is not None:
            body["cursor"] = cursor
        body["allowance"] = self._allowance(cost, key)
        return send(start_response, status, body)

    def _allowance(self, cost: float, key: str | None) -> dict[str, Any]:
        allowance: dict[str, Any] = {"cost": cost, "remaining": round(self.remaining, 6)}
        if key:
            allowance.update(remainingPaid=0, account=self.account)
        else:
            allowance["upgrade"] = UPGRADE
        return allowance

    # -- routes: (status, result or error text, cost, cursor) -------------------------------------------

    def _route(self, parts: list[str], query: dict[str, str], scenario: str | None):
        if not parts:
            return "200 OK", None, 0.0, None
        if parts[0] == "exchanges" and len(parts) <= 2:
            return self._exchanges(parts[1:], query)
        if parts[0] == "pairs" and len(parts) == 2:
            base, quote = split_pair(parts[1])
            if base is None or not any(pair == parts[1] for _, pair in self.candles):
                return "404 Not Found", "Instrument not found", 0.0, None
            return "200 OK", {"id": 1, "symbol": parts[1], "base": {"symbol": base.lower()},
                              "quote": {"symbol": quote.lower()}, "route": self._url("pairs", parts[1])}, 0.002, None
        if parts[0] != "markets":
            return "404 Not Found", "Route not found", 0.0, None
        if parts[1:] == ["prices"]:
            return "200 OK", {f"market:{ex}:{pair}": self._last(ex, pair).close
                              for ex, pair in sorted(self.candles) if self._last(ex, pair)}, 0.005, None
        if parts[1:] == ["summaries"]:
            return "200 OK", {f"{ex}:{pair}": self._summary(ex, pair)
                              for ex, pair in sorted(self.candles) if self._last(ex, pair)}, 0.01, None
        if len(parts) <= 2:
            markets = [self._market(ex, pair, short=True) for ex, pair in sorted(self.candles)
                       if len(parts) == 1 or ex == parts[1]]
            if len(parts) == 2 and parts[1] not in self._exchange_ids():
                return "404 Not Found", "Exchange not found", 0.0, None
            return self._paged(markets, query)
        exchange, pair = parts[1], parts[2]
        if exchange not in self._exchange_ids():
            return "404 Not Found", "Exchange not found", 0.0, None
        if (exchange, pair) not in self.candles:
            return "404 Not Found", "Instrument not found", 0.0, None
        if len(parts) == 3:
            return "200 OK", self._market(exchange, pair), COSTS["market"], None
        resource = parts[3] if len(parts) == 4 else ""
        if resource == "price":
            last = self._last(exchange, pair)
            return "200 OK", {"price": last.close if last else 0}, COSTS["price"], None
        if resource == "summary":
            return "200 OK", self._summary(exchange, pair), COSTS["summary"], None
        if resource == "ohlc":
            return self._ohlc(exchange, pair, query, scenario)
        return "404 Not Found", "Route not found", 0.0, None

    def _exchange_ids(self) -> set[str]:
        return self.extra_exchanges | {exchange for exchange, _ in self.candles}

    def _exchanges(self, rest: list[str], query: dict[str, str]):
        def entry(exchange: str) -> dict[str, Any]:
            return {"id": sorted(self._exchange_ids()).index(exchange) + 1, "symbol": exchange,
                    "name": exchange.capitalize(), "route": self._url("exchanges", exchange), "active": True}
        if rest:
            if rest[0] not in self._exchange_ids():
                return "404 Not Found", "Exchange not found", 0.0, None
            return "200 OK", {**entry(rest[0]), "routes": {"markets": self._url("markets", rest[0])}}, 0.002, None
        return self._paged([entry(exchange) for exchange in sorted(self._exchange_ids())], query)

    def _paged(self, items: list[Any], query: dict[str, str]):
        start = int(query["cursor"]) if query.get("cursor", "").isdigit() else 0
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else self.page_size
        page = items[start:start + limit]
        more = start + limit < len(items)
        return "200 OK", page, COSTS["list"], {"last": str(start + limit) if more else "", "hasMore": more}

    @staticmethod
    def _url(*parts: str) -> str:
        return "https://api.cryptowat.ch/" + "/".join(parts)

    def _market(self, exchange: str, pair: str, *, short: bool = False) -> dict[str, Any]:
        number = sorted(self.candles).index((exchange, pair)) + 1
        market: dict[str, Any] = {"id": number, "exchange": exchange, "pair": pair, "active": True}
        if short:
            return {**market, "route": self._url("markets", exchange, pair)}
        market["routes"] = {name: self._url("markets", exchange, pair, name)
                            for name in ("price", "summary", "orderbook", "trades", "ohlc")}
        return market

    def _last(self, exchange: str, pair: str) -> Bar | None:
        minutes = self.candles.get((exchange, pair), {}).get(60) or []
        return minutes[-1] if minutes else None

    def _summary(self, exchange: str, pair: str) -> dict[str, Any]:
        minutes = self.candles.get((exchange, pair), {}).get(60) or []
        if not minutes:
            return {"price": {"last": 0, "high": 0, "low": 0, "change": {"percentage": 0, "absolute": 0}},
                    "volume": 0, "volumeQuote": 0}
        day = [bar for bar in minutes if bar.timestamp > minutes[-1].timestamp - dt.timedelta(hours=24)]
        first, last = day[0].open, day[-1].close
        return {"price": {"last": last, "high": max(bar.high for bar in day), "low": min(bar.low for bar in day),
                          "change": {"percentage": (last - first) / first if first else 0,
                                     "absolute": last - first}},
                "volume": sum(bar.volume for bar in day), "volumeQuote": sum(bar.volume * bar.close for bar in day)}

    def _ohlc(self, exchange: str, pair: str, query: dict[str, str], scenario: str | None):
        periods = query.get("periods", ",".join(str(p) for p in self.candles[(exchange, pair)]))
        wanted = [period for period in periods.split(",") if period]
        if not wanted or any(period not in PERIODS for period in wanted):
            return "400 Bad Request", f"Invalid periods {periods!r}", 0.0, None
        after = int(query["after"]) if query.get("after", "").lstrip("-").isdigit() else None
        before = int(query["before"]) if query.get("before", "").lstrip("-").isdigit() else None
        result: dict[str, list[list[Any]]] = {}
        for period in wanted:
            seconds = int(period.split("_")[0])
            rows = []
            for bar in self.candles[(exchange, pair)].get(seconds, []):
                row = ohlc_row(bar, seconds)
                if (after is None or row[0] >= after) and (before is None or row[0] <= before):
                    rows.append(row)
            if scenario == "bad_row" and rows:
                rows[-1][4] = "n/a"
            result[period] = rows
        return "200 OK", result, COSTS["ohlc"], None
