"""Faithful offline Kraken and Binance public market-data APIs, for the live source (ccxt) in tests.

Serve one with `FakeServer(FakeKraken())` and point the source at it with `EXCHANGE_BASE_URLS` or
`ExchangeClient(base_url=...)`. Shapes, texts and limits follow `/work/shared/reference/upstream_apis.md`
(B.4, C.12, D.13-D.14) and what ccxt 4.5.90 reads:

Kraken (`/0/public/...`), every answer `{"error": [...], "result": ...}`:
- `Assets` and `AssetPairs` (ccxt's load_markets reads both), canonical keys (`XXBTZUSD`, `XXBT`, `ZUSD`)
  with `altname` (`XBTUSD`) and `wsname` (`XBT/USD`);
- `OHLC?pair=&interval=&since=`: rows `[time, "open", "high", "low", "close", "vwap", "volume", count]`
  (time = candle start in seconds, prices as strings with the pair's decimals, volume at index 6), keyed
  by the canonical pair name with `last` beside it; only the latest 720 candles exist whatever `since`
  asks; the newest row is the candle in progress;
- errors as HTTP 200 with an `error` array: `EQuery:Unknown asset pair`, `EGeneral:Invalid arguments`,
  `EService:Unavailable`, `EAPI:Rate limit exceeded`;
- `Ticker` and `Time`.

Binance (`/api/v3/...`):
- `exchangeInfo` with `symbols[]` (`baseAsset`, `quoteAsset`, `status`, `filters`, `permissionSets`);
- `klines?symbol=&interval=&startTime=&endTime=&limit=` (default 500, max 1000): bare arrays of 12
  fields `[openTime ms, "open", "high", "low", "close", "volume", closeTime ms (…999), "quoteVolume",
  trades, "takerBase", "takerQuote", "0"]`, oldest first from `startTime`; the newest may be open;
- errors `{"code": -1121, "msg": "Invalid symbol."}` with HTTP 400; 429 (and 418 once banned) with
  `Retry-After`; 451 from restricted locations; `X-MBX-USED-WEIGHT-1M` on every answer;
- `ticker/price`.

Scenarios, by Kraken pair key / Binance symbol (`"name:N"` fails the first N calls only):
down (502 HTML), html200 (HTML with HTTP 200), truncated (half a JSON body), unavailable (Kraken
`EService:Unavailable`), delisted (Kraken `{"error":["EQuery:Unknown asset pair"],"result":null}` from OHLC
and Ticker for a pair its AssetPairs still lists: delisted after the market list loaded), rate_limited
(Kraken `EAPI:Rate limit exceeded`; Binance 429 + Retry-After), banned (Binance 418), restricted (Binance
451). `outage` (a plain attribute) makes every path answer 502 (the exchange is down, market list included).
`requests` records (path, query) of every call.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

from lib.bars import Bar
from tests.fakes.server import HTML_ERROR_PAGE, Scenarios, send

KRAKEN_CAP = 720
KRAKEN_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
BINANCE_INTERVALS = {"1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
                     "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200,
                     "1w": 604800, "1M": 2592000}
BINANCE_RATE_LIMIT_MESSAGE = ("Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                              "Please use WebSocket Streams for live updates to avoid polling the API.")
BINANCE_RESTRICTED_MESSAGE = ("Service unavailable from a restricted location according to 'b. Eligibility' in "
                              "https://www.binance.com/en/terms. Please contact customer service if you believe you "
                              "received this message in error.")


class _FakeExchange:
    """Request log, scenarios and transport faults shared by the exchange fakes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.candles: dict[str, list[Bar]] = {}
        self.scenarios = Scenarios()
        self.outage = False
        self.clock = clock
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def calls(self, path_suffix: str = "") -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return [call for call in self.requests if call[0].endswith(path_suffix)]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        with self._lock:
            self.requests.append((path, query))
        if self.outage:
            return send(start_response, "502 Bad Gateway", HTML_ERROR_PAGE, content_type="text/html")
        return self.route(path, query, start_response)

    def route(self, path: str, query: dict[str, str], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise NotImplementedError

    @staticmethod
    def transport_fault(scenario: str | None, start_response: Callable[..., Any], body: Any) -> Iterable[bytes] | None:
        if scenario == "down":
            return send(start_response, "502 Bad Gateway", HTML_ERROR_PAGE, content_type="text/html")
        if scenario == "html200":
            return send(start_response, "200 OK", HTML_ERROR_PAGE, content_type="text/html")
        if scenario == "truncated":
            text = send(lambda *args: None, "200 OK", body)[0]
            return send(start_response, "200 OK", text[:len(text) // 2])
        return None


# -- Kraken -----------------------------------------------------------------------------------------

KRAKEN_ASSETS = {
    "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5, "status": "enabled"},
    "XETH": {"aclass": "currency", "altname": "ETH", "decimals": 10, "display_decimals": 5, "status": "enabled"},
    "SOL": {"aclass": "currency", "altname": "SOL", "decimals": 10, "display_decimals": 5, "status": "enabled"},
    "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2, "status": "enabled"},
    "ZEUR": {"aclass": "currency", "altname": "EUR", "decimals": 4, "display_decimals": 2, "status": "enabled"},
}
# key: (altname, wsname, base, quote, pair_decimals)
KRAKEN_PAIRS = {
    "XXBTZUSD": ("XBTUSD", "XBT/USD", "XXBT", "ZUSD", 1),
    "XXBTZEUR": ("XBTEUR", "XBT/EUR", "XXBT", "ZEUR", 1),
    "XETHZUSD": ("ETHUSD", "ETH/USD", "XETH", "ZUSD", 2),
    "SOLUSD": ("SOLUSD", "SOL/USD", "SOL", "ZUSD", 2),
}


class FakeKraken(_FakeExchange):
    """Kraken's public REST API. Load 1-minute candles with `add_ohlc("XXBTZUSD", bars)`: prices are sent with
    the pair's decimals (BTC 1, ETH and SOL 2), volumes with 8."""

    def add_ohlc(self, pair_key: str, bars: Iterable[Bar]) -> None:
        if pair_key not in KRAKEN_PAIRS:
            raise ValueError(f"unknown Kraken pair key {pair_key!r}")
        self.candles[pair_key] = sorted(bars, key=lambda bar: bar.timestamp)

    @staticmethod
    def decimals(pair_key: str) -> int:
        return KRAKEN_PAIRS[pair_key][4]

    def route(self, path, query, start_response):
        handlers = {"/0/public/Time": self._time, "/0/public/Assets": self._assets,
                    "/0/public/AssetPairs": self._asset_pairs, "/0/public/OHLC": self._ohlc,
                    "/0/public/Ticker": self._ticker}
        handler = handlers.get(path)
        if handler is None:
            return send(start_response, "404 Not Found", {"error": ["EGeneral:Unknown method"]})
        pair = self._pair_key(query.get("pair", "")) if path in ("/0/public/OHLC", "/0/public/Ticker") else None
        scenario = self.scenarios.active(pair) if pair else None
        if scenario == "delisted":  # still in the pair list ccxt loaded, gone from the market-data calls
            return send(start_response, "200 OK", {"error": ["EQuery:Unknown asset pair"], "result": None})
        error = {"unavailable": "EService:Unavailable", "rate_limited": "EAPI:Rate limit exceeded"}.get(scenario)
        if error:
            return send(start_response, "200 OK", {"error": [error]})
        body = handler(query)
        return self.transport_fault(scenario, start_response, body) or send(start_response, "200 OK", body)

    @staticmethod
    def _pair_key(name: str) -> str | None:
        wanted = name.upper()
        for key, (altname, wsname, *_rest) in KRAKEN_PAIRS.items():
            if wanted in (key, altname, wsname):
                return key
        return None

    def _time(self, query):
        now = int(self.clock())
        stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%a, %d %b %y %H:%M:%S +0000")
        return {"error": [], "result": {"unixtime": now, "rfc1123": stamp}}

    def _assets(self, query):
        return {"error": [], "result": KRAKEN_ASSETS}

    def _asset_pairs(self, query):
        result = {}
        for key, (altname, wsname, base, quote, decimals) in KRAKEN_PAIRS.items():
            result[key] = {
                "altname": altname, "wsname": wsname, "aclass_base": "currency", "base": base,
                "aclass_quote": "currency", "quote": quote, "lot": "unit", "cost_decimals": 5,
                "pair_decimals": decimals, "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [2, 3],
                "leverage_sell": [2, 3], "fees": [[0, 0.4], [10000, 0.35]], "fees_maker": [[0, 0.25], [10000, 0.2]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001",
                "costmin": "0.5", "tick_size": f"{10 ** -decimals:.{decimals}f}", "status": "online"}
        return {"error": [], "result": result}

    def _ohlc(self, query):
        key = self._pair_key(query.get("pair", ""))
        if key is None:
            return {"error": ["EQuery:Unknown asset pair"]}
        interval = query.get("interval", "1")
        if not interval.isdigit() or int(interval) not in KRAKEN_INTERVALS:
            return {"error": ["EGeneral:Invalid arguments"]}
        if int(interval) != 1:
            return {"error": [], "result": {key: [], "last": 0}}  # the fake holds 1-minute candles only
        since = int(query["since"]) if query.get("since", "").isdigit() else None
        decimals = self.decimals(key)
        rows = []
        for bar in self.candles.get(key, [])[-KRAKEN_CAP:]:  # older history cannot be fetched
            start = int(bar.timestamp.timestamp())
            if since is not None and start <= since:
                continue
            vwap = (bar.high + bar.low + bar.close) / 3
            rows.append([start, f"{bar.open:.{decimals}f}", f"{bar.high:.{decimals}f}", f"{bar.low:.{decimals}f}",
                         f"{bar.close:.{decimals}f}", f"{vwap:.{decimals}f}", f"{bar.volume:.8f}",
                         max(1, int(bar.volume))])
        last = rows[-1][0] if rows else (since or 0)
        return {"error": [], "result": {key: rows, "last": last}}

    def _ticker(self, query):
        key = self._pair_key(query.get("pair", ""))
        if key is None:
            return {"error": ["EQuery:Unknown asset pair"]}
        bars = self.candles.get(key) or []
        if not bars:
            return {"error": [], "result": {}}
        last, decimals = bars[-1], self.decimals(key)

        def price(value: float) -> str:
            return f"{value:.{decimals}f}"

        volume = f"{sum(bar.volume for bar in bars[-1440:]):.8f}"
        return {"error": [], "result": {key: {
            "a": [price(last.close * 1.0001), "1", "1.000"], "b": [price(last.close * 0.9999), "1", "1.000"],
            "c": [price(last.close), f"{last.volume:.8f}"], "v": [volume, volume], "p": [price(last.close)] * 2,
            "t": [len(bars), len(bars)], "l": [price(min(bar.low for bar in bars))] * 2,
            "h": [price(max(bar.high for bar in bars))] * 2, "o": price(bars[0].open)}}}


# -- Binance ----------------------------------------------------------------------------------------

BINANCE_SYMBOLS = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT"), "SOLUSDT": ("SOL", "USDT"),
                   "ETHBTC": ("ETH", "BTC")}


class FakeBinance(_FakeExchange):
    """Binance's public spot REST API. Load 1-minute candles with `add_klines("ETHUSDT", bars)`; prices and
    volumes are sent as 8-decimal strings."""

    used_weight = 0

    def add_klines(self, symbol: str, bars: Iterable[Bar]) -> None:
        if symbol not in BINANCE_SYMBOLS:
            raise ValueError(f"unknown Binance symbol {symbol!r}")
        self.candles[symbol] = sorted(bars, key=lambda bar: bar.timestamp)

    def route(self, path, query, start_response):
        with self._lock:
            self.used_weight += 2
            headers = [("X-MBX-USED-WEIGHT-1M", str(self.used_weight))]
        handlers = {"/api/v3/exchangeInfo": self._exchange_info, "/api/v3/klines": self._klines,
                    "/api/v3/ticker/price": self._price}
        handler = handlers.get(path)
        if handler is None:
            return send(start_response, "404 Not Found", "<html><body><h2>404 Not found</h2></body></html>",
                        content_type="text/html", headers=headers)
        scenario = self.scenarios.active(query["symbol"]) if query.get("symbol") else None
        if scenario == "rate_limited":
            return send(start_response, "429 Too Many Requests", {"code": -1003, "msg": BINANCE_RATE_LIMIT_MESSAGE},
                        headers=headers + [("Retry-After", "1")])
        if scenario == "banned":
            return send(start_response, "418 I'm a teapot", {"code": -1003, "msg": "Way too much request weight "
                                                             "used; IP banned until 1767225600000."},
                        headers=headers + [("Retry-After", "120")])
        if scenario == "restricted":
            return send(start_response, "451 Unavailable For Legal Reasons",
                        {"code": 0, "msg": BINANCE_RESTRICTED_MESSAGE}, headers=headers)
        status, body = handler(query)
        return self.transport_fault(scenario, start_response, body) or send(start_response, status, body,
                                                                            headers=headers)

    def _exchange_info(self, query):
        symbols = []
        for symbol, (base, quote) in BINANCE_SYMBOLS.items():
            symbols.append({
                "symbol": symbol, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                                                              "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
                             "tickSize": "0.01000000"},
                            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                             "stepSize": "0.00001000"},
                            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}],
                "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]})
        return "200 OK", {"timezone": "UTC", "serverTime": int(self.clock() * 1000),
                          "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                          "limit": 6000}],
                          "exchangeFilters": [], "symbols": symbols}

    def _klines(self, query):
        symbol = query.get("symbol", "")
        if symbol not in BINANCE_SYMBOLS:
            return "400 Bad Request", {"code": -1121, "msg": "Invalid symbol."}
        interval = query.get("interval", "")
        if interval not in BINANCE_INTERVALS:
            return "400 Bad Request", {"code": -1120, "msg": "Invalid interval."}
        limit = query.get("limit", "500")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return "400 Bad Request", {"code": -1100, "msg": "Illegal characters found in parameter 'limit'; "
                                                             "legal range is '^[0-9]{1,20}$'."}
        if interval != "1m":
            return "200 OK", []  # the fake holds 1-minute candles only
        start = int(query["startTime"]) if query.get("startTime", "").isdigit() else None
        end = int(query["endTime"]) if query.get("endTime", "").isdigit() else None
        rows = []
        for bar in self.candles.get(symbol, []):
            opened = int(bar.timestamp.timestamp() * 1000)
            if (start is None or opened >= start) and (end is None or opened <= end):
                rows.append([opened, f"{bar.open:.8f}", f"{bar.high:.8f}", f"{bar.low:.8f}", f"{bar.close:.8f}",
                             f"{bar.volume:.8f}", opened + 59_999, f"{bar.volume * bar.close:.8f}",
                             max(1, int(bar.volume * 3)), f"{bar.volume / 2:.8f}",
                             f"{bar.volume * bar.close / 2:.8f}", "0"])
        rows = rows[:int(limit)] if start is not None else rows[-int(limit):]
        return "200 OK", rows

    def _price(self, query):
        symbol = query.get("symbol")
        if symbol is None:
            return "200 OK", [{"symbol": s, "price": f"{bars[-1].close:.8f}"} for s, bars in self.candles.items()
                              if bars]
        if symbol not in BINANCE_SYMBOLS:
            return "400 Bad Request", {"code": -1121, "msg": "Invalid symbol."}
        bars = self.candles.get(symbol) or []
        return "200 OK", {"symbol": symbol, "price": f"{bars[-1].close:.8f}" if bars else "0.00000000"}
