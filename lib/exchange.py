"""Live crypto markets straight from the exchanges, through ccxt: the source that works today.

Cryptowatch, which aggregated exchanges behind one API, was shut down in 2023. ccxt speaks to more than a
hundred exchanges' own public APIs and already knows their quirks: Kraken's XBT alias and `XXBTZUSD`
pair keys, errors sent with HTTP 200, string prices, per-exchange candle caps and pacing. Writing and
keeping up that knowledge by hand for each exchange is what the library is for.

    source = lib.ExchangeSource()                      # any exchange ccxt supports, created on first use
    info = source.resolve(lib.parse_market("kraken:btcusd"))
    bars = source.candles(info, lib.Interval.MIN1, since)

Markets are named `exchange:pair` with our pair spelling (`btcusd`); `resolve` maps it onto ccxt's
unified symbol (`BTC/USD`) from the exchange's own market list, accepting the exchange's aliases too
(`xbtusd`, `XXBTZUSD`). Candles are fetched page by page from `since`, within each exchange's cap per
request; the candle still in progress is dropped. ccxt's exceptions become `lib.errors` classes and the
retryable ones are retried with backoff.

Each exchange's base URL can be replaced (tests, proxies, mirrors): `base_url="http://127.0.0.1:8001"`,
or `EXCHANGE_BASE_URLS="kraken=http://127.0.0.1:8001,binance=http://127.0.0.1:8002"`. The origin of every
API URL of that exchange is replaced and its path kept, so Binance's `https://api.binance.com/api/v3`
becomes `http://127.0.0.1:8002/api/v3`. ccxt is imported on first use: `import lib` stays fast.
"""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import requests

from lib import errors
from lib.bars import Bar, Interval
from lib.http import Limiter, LimiterFactory, RetryPolicy, retry_after
from lib.markets import MarketId, MarketInfo, closed_since, display_name

SOURCE = "exchange"
DEFAULT_TIMEOUT = 15.0  # seconds; ccxt takes one figure for connect and read
DEFAULT_CANDLE_CAP = 500  # candles per request when ccxt does not say
MARKETS_MAX_AGE = 3600.0  # seconds a loaded market list is used for
MARKETS_RECHECK = 600.0  # an unknown pair reloads a list older than this
MAX_PAGES = 200  # a bound on paging, so an upstream that keeps answering the same page cannot loop us
TIMEFRAMES = {Interval.MIN1: "1m", Interval.MIN5: "5m", Interval.MIN15: "15m", Interval.MIN30: "30m",
              Interval.MIN60: "1h", Interval.DAY: "1d"}
# Only spot markets are tracked. Binance would otherwise also load its futures markets, from two more
# hosts, on every start.
EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {"binance": {"fetchMarkets": {"types": ["spot"]}}}
# Answers naming an unknown market that ccxt raises as a plain ExchangeError, not BadSymbol: Kraken's for a
# pair delisted after the market list was loaded (its exact-match table knows only "Unknown asset").
UNKNOWN_MARKET_ERRORS = ("EQuery:Unknown asset pair",)
_PARSE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def _ccxt() -> Any:
    import ccxt  # about a second to import every exchange: only when a live source is used
    return ccxt


def parse_base_urls(text: str | None) -> dict[str, str]:
    """`kraken=http://127.0.0.1:8001,binance=http://127.0.0.1:8002` → {exchange id: base URL}."""
    urls: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        exchange, equals, url = part.partition("=")
        exchange, url = exchange.strip().lower(), url.strip()
        if not equals or not exchange or not url.startswith(("http://", "https://")):
            raise ValueError(f"{part.strip()!r} is not exchange=http(s)://host[:port][/path]")
        urls[exchange] = url.rstrip("/")
    return urls


def rebase_urls(urls: Any, base_url: str) -> Any:
    """The same structure of API URLs with each URL's scheme and host replaced by `base_url`'s, paths kept."""
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        parts = urlsplit(urls)
        rest = urls[len(f"{parts.scheme}://{parts.netloc}"):]
        return base_url.rstrip("/") + rest
    return urls


def _clean(text: str) -> str:
    return text.replace("/", "").replace("-", "").replace("_", "").lower()


class ExchangeClient:
    """One exchange through ccxt: its spot markets, and candles as typed bars.

    `session` and `timeout` (seconds) go to ccxt's HTTP calls; `min_interval` spaces calls (None: ccxt's
    own pacing for that exchange, 0: none); retryable failures are retried per `retry`.

    `limiter_for` hands in a pacing of the caller's (one shared by several processes): it is asked for the
    limiter of `exchange:<id>` at that same interval (`min_interval`, else ccxt's own for the exchange),
    ccxt's throttle, which knows only its own client, is turned off, and every HTTP request waits on the
    limiter. One client may serve several threads.
    """

    source = SOURCE

    def __init__(self, exchange_id: str, *, base_url: str | None = None, session: requests.Session | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retry: RetryPolicy = RetryPolicy(),
                 min_interval: float | None = None, limiter_for: LimiterFactory | None = None,
                 sleep: Callable[[float], None] = time.sleep, environ: Mapping[str, str] = os.environ) -> None:
        ccxt = _ccxt()
        self.id = exchange_id.strip().lower()
        if self.id not in ccxt.exchanges:
            raise errors.NotFoundError(f"unknown exchange {exchange_id!r}: ccxt supports no exchange of that id",
                                       source=SOURCE, symbol=exchange_id)
        if base_url is None:
            base_url = parse_base_urls(environ.get("EXCHANGE_BASE_URLS")).get(self.id)
        config: dict[str, Any] = {"timeout": int(timeout * 1000), "options": dict(EXCHANGE_OPTIONS.get(self.id, {}))}
        if session is not None:
            config["session"] = session
        if min_interval is not None:
            config["enableRateLimit"] = min_interval > 0
            if min_interval > 0:
                config["rateLimit"] = min_interval * 1000
        self._owns_session = session is None
        self.exchange = getattr(ccxt, self.id)(config)
        if base_url:
            self.exchange.urls["api"] = rebase_urls(self.exchange.urls["api"], base_url)
        self.limiter: Limiter | None = None
        if limiter_for is not None:
            interval = min_interval if min_interval is not None else float(self.exchange.rateLimit) / 1000
            self.limiter = limiter_for(f"{SOURCE}:{self.id}", interval)
            self.exchange.enableRateLimit = False
        self.retry = retry
        self._sleep = sleep
        self._markets: dict[str, MarketInfo] | None = None
        self._markets_loaded = 0.0  # time.monotonic() of the last load
        self._markets_lock = threading.Lock()
        self._thread = threading.local()  # each thread's last response status
        self._watch_responses()

    @property
    def last_status(self) -> int | None:
        """The HTTP status of this thread's last response (None before any)."""
        return getattr(self._thread, "status", None)

    @last_status.setter
    def last_status(self, status: int | None) -> None:
        self._thread.status = status

    @property
    def name(self) -> str:
        return getattr(self.exchange, "name", None) or self.id.capitalize()

    @property
    def candle_cap(self) -> int:
        """Candles one request returns at most (Kraken 720, Binance 1000, Coinbase 300...)."""
        features = getattr(self.exchange, "features", None) or {}
        spot = features.get("spot") if isinstance(features, dict) else None
        ohlcv = spot.get("fetchOHLCV") if isinstance(spot, dict) else None
        limit = ohlcv.get("limit") if isinstance(ohlcv, dict) else None
        return int(limit) if isinstance(limit, int) and limit > 0 else DEFAULT_CANDLE_CAP

    def close(self) -> None:
        if self._owns_session:
            self.exchange.session.close()

    def __enter__(self) -> "ExchangeClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _watch_responses(self) -> None:
        """Record each response's status, and refuse bodies that are not JSON.

        ccxt files 400, 403, 404 and 451 under ExchangeNotAvailable (retryable); the status tells those
        apart from a real outage. A body that is not JSON (an HTML error page from a proxy) would reach
        the parsers as text and read as "no candles"; here it is an outage, as lib.http treats it.
        """
        ccxt, exchange = _ccxt(), self.exchange
        on_rest_response, fetch = exchange.on_rest_response, exchange.fetch

        def recording(code: int, *args: Any, **kwargs: Any) -> Any:
            self.last_status = code
            return on_rest_response(code, *args, **kwargs)

        def json_only(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            if self.limiter is not None:
                self.limiter.wait()
            response = fetch(url, method, headers, body)
            if not isinstance(response, (dict, list)):
                snippet = str(response)[:60].replace("\n", " ")
                raise ccxt.ExchangeNotAvailable(f"{self.id} {method} {url}: the body is not JSON "
                                                f"(HTTP {self.last_status}, starts {snippet!r})")
            return response

        exchange.on_rest_response = recording
        exchange.fetch = json_only

    # -- calls ----------------------------------------------------------------------------------------

    def _call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`func(*args, **kwargs)` with ccxt's errors mapped onto lib.errors, retryable ones retried."""
        ccxt = _ccxt()
        for attempt in range(self.retry.attempts):
            self.last_status = None
            try:
                return func(*args, **kwargs)
            except ccxt.BaseError as exc:
                error = self.map_error(exc, what)
            except _PARSE_ERRORS as exc:  # ccxt's parsers met a shape they do not expect
                error = errors.MalformedPayloadError(f"{self.id}: unreadable answer ({type(exc).__name__}: "
                                                     f"{str(exc)[:120]})", source=SOURCE, symbol=what)
            if not isinstance(error, errors.RetryableError) or attempt + 1 == self.retry.attempts:
                raise error
            self._sleep(self.retry.delay(attempt, error))
        raise AssertionError("unreachable")

    def map_error(self, exc: Exception, what: str = "") -> errors.MarketDataError:
        """The lib.errors class a ccxt exception stands for."""
        ccxt = _ccxt()
        text = str(exc).strip() or type(exc).__name__
        text = text[len(self.id) + 1:] if text.startswith(self.id + " ") else text  # ccxt starts with the id too
        message = f"{self.id}: {text if len(text) <= 300 else text[:300] + '...'}"
        context = {"source": SOURCE, "symbol": what}
        if isinstance(exc, ccxt.BadSymbol):
            return errors.NotFoundError(message, **context)
        if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
            headers = getattr(self.exchange, "last_response_headers", None) or {}
            return errors.RateLimitedError(message, retry_after=retry_after(headers), **context)
        if isinstance(exc, ccxt.RequestTimeout):
            return errors.RequestTimeout(message, **context)
        if isinstance(exc, ccxt.ExchangeNotAvailable):
            status = self.last_status
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                return errors.BadRequestError(f"{message} (HTTP {status})", **context)
            return errors.ServerError(message, status=status, **context)
        if isinstance(exc, ccxt.NetworkError):
            return errors.NetworkError(message, **context)
        if isinstance(exc, ccxt.AuthenticationError):
            return errors.AuthenticationError(message, **context)
        if isinstance(exc, ccxt.BadResponse):
            return errors.MalformedPayloadError(message, **context)
        if isinstance(exc, ccxt.BadRequest):
            return errors.BadRequestError(message, **context)
        if any(phrase in text for phrase in UNKNOWN_MARKET_ERRORS):
            return errors.NotFoundError(f"{message} (unknown market: the exchange no longer lists it)", **context)
        return errors.PermanentError(message, **context)

    # -- markets --------------------------------------------------------------------------------------

    def markets(self, *, max_age: float | None = None) -> dict[str, MarketInfo]:
        """The exchange's spot markets by every spelling we accept, loaded again once older than `max_age`
        seconds (default MARKETS_MAX_AGE): a long-lived client, such as a scheduler's, sees markets listed
        since."""
        with self._markets_lock:  # threads sharing the client load the list once, not once each
            age = time.monotonic() - self._markets_loaded
            if self._markets is None or age > (MARKETS_MAX_AGE if max_age is None else max_age):
                loaded = self._call("markets", self.exchange.load_markets, reload=self._markets is not None)
                self._markets = self._index(loaded.values())
                self._markets_loaded = time.monotonic()
            return self._markets

    def _index(self, markets: Iterable[Any]) -> dict[str, MarketInfo]:
        infos = []
        for market in markets:
            if not isinstance(market, dict) or not market.get("spot") or not market.get("base") \
                    or not market.get("quote"):
                continue
            base, quote = str(market["base"]).upper(), str(market["quote"]).upper()
            info = MarketInfo(self.id, _clean(base + quote), base, quote,
                              display_name(base, quote, "", self.name), active=market.get("active") is not False,
                              source_symbol=market["symbol"])
            raw: dict[str, Any] = market["info"] if isinstance(market.get("info"), dict) else {}
            aliases: list[Any] = [market.get("id"), f"{market.get('baseId')}{market.get('quoteId')}",
                                  raw.get("altname"), raw.get("wsname")]
            infos.append((info, [_clean(alias) for alias in aliases if isinstance(alias, str) and alias]))
        index = {info.pair: info for info, _ in infos}
        for info, aliases in infos:  # an exchange's own spellings never shadow a canonical pair
            for alias in aliases:
                index.setdefault(alias, info)
        return index

    def market(self, pair: str) -> MarketInfo:
        """Our pair spelling (`btcusd`, also `xbtusd` or `BTC/USD`) → the market; NotFoundError if unlisted."""
        info = self.markets().get(_clean(pair))
        if info is None:  # perhaps listed since the list was loaded: look again, at most every few minutes
            info = self.markets(max_age=MARKETS_RECHECK).get(_clean(pair))
        if info is None:
            raise errors.NotFoundError(f"{self.id}: no spot market {pair!r} (the exchange does not list it)",
                                       source=SOURCE, symbol=f"{self.id}:{pair}")
        return info

    # -- candles --------------------------------------------------------------------------------------

    def candles(self, info: MarketInfo, interval: Interval, since: dt.datetime,
                now: dt.datetime | None = None) -> list[Bar]:
        """Closed candles of `info` starting at or after `since`, oldest first, in UTC.

        Pages forward from `since`, asking for the exchange's cap each time, until a page comes back short.
        Exchanges that keep only recent candles (Kraken: the last 720) start later than `since`.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        timeframe = TIMEFRAMES[interval]
        period_ms = interval.seconds * 1000
        cursor, end = int(since.timestamp() * 1000), int(now.timestamp() * 1000)
        cap, rows = self.candle_cap, []
        for _ in range(MAX_PAGES):
            if cursor > end:
                break
            page = self._call(info.label, self.exchange.fetch_ohlcv, info.source_symbol, timeframe,
                              since=cursor, limit=cap)
            for row in page:
                if not isinstance(row, list) or len(row) < 6 or not isinstance(row[0], (int, float)):
                    raise errors.MalformedPayloadError(f"{self.id}: bad candle {str(row)[:80]}", source=SOURCE,
                                                       symbol=info.label)
            fresh = [row for row in page if row[0] >= cursor]
            rows += fresh
            if not fresh or len(page) < cap:
                break
            cursor = int(fresh[-1][0]) + period_ms
        return closed_since([self._bar(row, info.label) for row in rows], interval, since, now)

    def _bar(self, row: list, what: str) -> Bar:
        try:
            stamp = dt.datetime.fromtimestamp(row[0] / 1000, tz=dt.timezone.utc)
            return Bar(stamp, *(float(value) for value in row[1:6]))
        except (TypeError, ValueError, IndexError) as exc:
            raise errors.MalformedPayloadError(f"{self.id}: bad candle {str(row)[:80]}: {exc}", source=SOURCE,
                                               symbol=what) from None


class ExchangeSource:
    """Every exchange ccxt supports, one `ExchangeClient` each, created on first use (the crypto-source calls
    of the ingest). `base_urls` maps exchange ids to replacement base URLs (default: EXCHANGE_BASE_URLS)."""

    source = SOURCE

    def __init__(self, base_urls: Mapping[str, str] | None = None, *, environ: Mapping[str, str] = os.environ,
                 **client_options: Any) -> None:
        self.base_urls = dict(base_urls) if base_urls is not None else parse_base_urls(
            environ.get("EXCHANGE_BASE_URLS"))
        self.client_options = client_options
        self._clients: dict[str, ExchangeClient] = {}
        self._lock = threading.Lock()

    def client(self, exchange_id: str) -> ExchangeClient:
        with self._lock:
            if exchange_id not in self._clients:
                self._clients[exchange_id] = ExchangeClient(exchange_id, base_url=self.base_urls.get(exchange_id),
                                                            environ={}, **self.client_options)
            return self._clients[exchange_id]

    def resolve(self, market: MarketId) -> MarketInfo:
        return self.client(market.exchange).market(market.pair)

    def candles(self, info: MarketInfo, interval: Interval, since: dt.datetime,
                now: dt.datetime | None = None) -> list[Bar]:
        return self.client(info.exchange).candles(info, interval, since, now)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
