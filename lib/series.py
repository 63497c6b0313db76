"""One call for any series: `lib.history(name, start, end, interval)` gives a pandas DataFrame.

    lib.history("IBM", start="2026-01-01")                      # AlphaVantage daily bars, as lib.to_frame
    lib.history("kraken:btcusd", interval="1min")               # the live exchange source (ccxt)
    lib.history("kraken:btcusd", source="cryptowatch")          # or a Cryptowatch-compatible server
    lib.history(["IBM", "AAPL"], interval="1week")              # one frame, (symbol, timestamp) MultiIndex

A name with a colon is a crypto market (`exchange:pair`); any other is a stock symbol. The call picks the
client, and what each upstream needs to cover [start, end]:

- AlphaVantage daily: `outputsize=compact` (the latest 100 trading days, free) when the range starts within
  the last 100 weekdays, `full` (premium for free keys: PremiumRequiredError) when it starts earlier.
  Intraday likewise: compact when the start is within 100 bars of now, else full (the last 30 days).
  Weekly and monthly (`1week`, `1month`) come whole in one free call, dated by their last trading day.
  `adjusted=True` asks for the adjusted series (daily: premium), whose frames add `adjusted_close`.
- Exchanges: candles are paged through each exchange's cap per request (Kraken 720, Binance 1000...);
  only closed candles are returned. Kraken keeps only its latest 720 candles of each interval.

`start` and `end` are dates, datetimes or ISO strings; naive times are UTC; an end date includes its whole
day. Without `start`: the latest 100 bars (AlphaVantage's compact size), or the whole weekly or monthly
history. Several names are fetched one after another through one client per upstream, so each upstream's
pacing holds across them; once AlphaVantage says its daily quota is spent, the remaining stock symbols
fail with that error without another call. A name that fails raises: the error itself for a single name,
`lib.errors.HistoryError` naming every failure for a list (its `frame` has the names that worked), or,
with `errors="skip"`, a warning on the `lib.series` logger and the frame without it.

Settings come from `lib.Settings.from_env()` (the service's variables) unless `settings=` is given;
`api_key=` and `cache=` override single fields. `cache=` (or LIB_CACHE_DIR) keeps answers on disk
(`lib.cache`), so notebook re-runs do not spend AlphaVantage's 25 daily calls.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import requests

from lib import cache as response_cache
from lib import errors as lib_errors
from lib.alphavantage import COMPACT_POINTS, AlphaVantageClient
from lib.bars import Bar, Interval, day_start, utc
from lib.cryptowatch import CryptowatchClient
from lib.exchange import ExchangeSource
from lib.frames import COLUMNS, INDEX_DTYPE, INDEX_NAME, OPTIONAL_COLUMNS, to_frame
from lib.markets import CryptoSource, MarketId, parse_market
from lib.settings import Settings
from lib.symbols import parse_symbol

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

WEEK = "1week"
MONTH = "1month"
SOURCES = ("alphavantage", "exchange", "cryptowatch")
DEFAULT_BARS = COMPACT_POINTS  # bars given when no start is: what one free AlphaVantage call holds
MAX_CACHE_EXPIRY = 3600.0  # seconds; the latest bar of a day or a week still changes during it
SYMBOL_LEVEL = "symbol"
_CALENDAR = {"1week": WEEK, "1wk": WEEK, "1w": WEEK, "week": WEEK, "weekly": WEEK,
             "1month": MONTH, "1mo": MONTH, "month": MONTH, "monthly": MONTH}
_ONE_MICROSECOND = dt.timedelta(microseconds=1)

Period = Interval | str  # an Interval, or WEEK / MONTH (AlphaVantage only; never stored by the service)
When = dt.date | dt.datetime | str | None


def history(names: str | Iterable[str], start: When = None, end: When = None, interval: Interval | str = "1day",
            *, source: str | None = None, adjusted: bool = False, errors: str = "raise",
            cache: str | os.PathLike[str] | bool | None = None, api_key: str | None = None,
            settings: Settings | None = None) -> pd.DataFrame:
    """The bars of `names` in [start, end] as a DataFrame (see the module docstring).

    One name (a str) gives a frame indexed by `timestamp`; a list gives one frame indexed by
    (`symbol`, `timestamp`), each name as written but in one spelling: stock symbols upper-case (`IBM`),
    markets lower-case without separators (`kraken:btcusd`; `kraken:xbtusd` for "Kraken:XBT/USD").
    `source` is `alphavantage` (stock symbols), `exchange` (markets, the default) or `cryptowatch`. Bad
    arguments raise ValueError before any call; upstream failures raise `lib.errors` classes.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    single = isinstance(names, str)
    request = _request(start, end, interval, adjusted)
    wanted = _series([names] if isinstance(names, str) else list(names), source, request)
    settings = _settings(settings, api_key=api_key, cache=cache)
    frames, failures = _fetch_all(wanted, request, settings)
    if failures and errors == "raise":
        if single:
            raise next(iter(failures.values()))
        raise lib_errors.HistoryError(failures, asked=len(wanted), frame=_combined(frames))
    for label, error in failures.items():
        log.warning("lib.history: %s skipped: %s: %s", label, type(error).__name__, error)
    if single:
        return frames.get(wanted[0].label, to_frame([]))
    return _combined(frames)


# -- what was asked ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One call's range and resolution, checked: aware UTC bounds (the end inclusive), None for open."""

    start: dt.datetime | None
    end: dt.datetime | None
    period: Period
    adjusted: bool = False


@dataclass(frozen=True)
class Wanted:
    """One name of a call: its canonical label, and the market when it is one (None: a stock symbol)."""

    label: str
    source: str
    market: MarketId | None = None


def parse_period(value: Interval | str) -> Period:
    """An Interval (`1min`...`1day`, with the aliases of Interval.parse) or WEEK / MONTH."""
    if isinstance(value, Interval):
        return value
    key = str(value).strip().lower()
    if key in _CALENDAR:
        return _CALENDAR[key]
    try:
        return Interval.parse(key)
    except ValueError:
        choices = ", ".join([*(interval.value for interval in Interval), WEEK, MONTH])
        raise ValueError(f"unknown interval {value!r}; expected one of {choices}") from None


def parse_bound(value: When, *, end: bool = False) -> dt.datetime | None:
    """A range bound as aware UTC: datetimes as they are (naive = UTC), a date as its first moment, or as
    its last when it ends the range (so the end date's bars are in); ISO strings as either."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _parse_iso(value)
    if isinstance(value, dt.datetime):
        return utc(value)
    if isinstance(value, dt.date):
        return day_start(value + dt.timedelta(days=1)) - _ONE_MICROSECOND if end else day_start(value)
    raise TypeError(f"a range bound must be a date, a datetime or an ISO string, got {type(value).__name__}")


def _parse_iso(text: str) -> dt.date | dt.datetime:
    text = text.strip()
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time like 2026-01-31 or 2026-01-31T14:30") from None


def _request(start: When, end: When, interval: Interval | str, adjusted: bool) -> Request:
    request = Request(parse_bound(start), parse_bound(end, end=True), parse_period(interval), adjusted)
    if request.start and request.end and request.start > request.end:
        raise ValueError(f"start {request.start.isoformat()} is after end {request.end.isoformat()}")
    if adjusted and isinstance(request.period, Interval) and request.period.is_intraday:
        raise ValueError("adjusted=True is for 1day, 1week and 1month series (AlphaVantage adjusts intraday "
                         "bars already)")
    return request


def _series(names: list[str], source: str | None, request: Request) -> list[Wanted]:
    """Each distinct name once, in order; one ValueError naming every name that cannot be fetched."""
    if source is not None and source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    wanted: dict[str, Wanted] = {}
    problems = []
    for name in names:
        try:
            item = _wanted(name, source, request)
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
            continue
        wanted.setdefault(item.label, item)
    if problems:
        raise ValueError("; ".join(problems))
    return list(wanted.values())


def _wanted(name: str, source: str | None, request: Request) -> Wanted:
    if not isinstance(name, str):
        raise TypeError(f"a name must be a str such as 'IBM' or 'kraken:btcusd', got {type(name).__name__}")
    if ":" not in name:
        symbol = parse_symbol(name)
        if source not in (None, "alphavantage"):
            raise ValueError(f"{symbol!r} is a stock symbol; source={source!r} serves crypto markets")
        return Wanted(symbol, "alphavantage")
    market = parse_market(name)
    if source == "alphavantage":
        raise ValueError(f"{market.label!r} is a crypto market; source='alphavantage' serves stock symbols")
    if request.adjusted:
        raise ValueError(f"{market.label}: adjusted=True is for stock symbols")
    if not isinstance(request.period, Interval):
        raise ValueError(f"{market.label}: interval {request.period} is for stock symbols (AlphaVantage's weekly "
                         f"and monthly series); crypto markets take 1min to 1day")
    return Wanted(market.label, source or "exchange", market)


def _settings(settings: Settings | None, *, api_key: str | None,
              cache: str | os.PathLike[str] | bool | None) -> Settings:
    settings = settings or Settings.from_env()
    if api_key:
        settings = dataclasses.replace(settings, alphavantage_api_key=api_key)
    if cache is True:
        settings = dataclasses.replace(settings, cache_dir=response_cache.default_directory())
    elif cache is False:
        settings = dataclasses.replace(settings, cache_dir=None)
    elif cache is not None:
        settings = dataclasses.replace(settings, cache_dir=Path(cache).expanduser())
    return settings


# -- fetching ---------------------------------------------------------------------------------------

class Clients:
    """The clients of one call, made on first use from the settings and sharing one session (the cached one
    when a cache is set), so that each upstream's pacing holds across the call's names."""

    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session
        self._alphavantage: AlphaVantageClient | None = None
        self._crypto: dict[str, CryptoSource] = {}

    def alphavantage(self) -> AlphaVantageClient:
        if self._alphavantage is None:
            s = self.settings
            self._alphavantage = AlphaVantageClient(s.alphavantage_api_key, s.alphavantage_base_url,
                                                    min_interval=s.alphavantage_min_interval, retry=s.retry,
                                                    session=self.session, environ={})
        return self._alphavantage

    def crypto(self, name: str) -> CryptoSource:
        if name not in self._crypto:
            s = self.settings
            source: CryptoSource
            if name == "cryptowatch":
                source = CryptowatchClient(s.cryptowatch_api_key, s.cryptowatch_base_url, session=self.session,
                                           retry=s.retry, environ={})
            else:
                options: dict[str, Any] = {"session": self.session} if self.session is not None else {}
                source = ExchangeSource(s.exchange_base_urls, min_interval=s.exchange_min_interval, retry=s.retry,
                                        **options)
            self._crypto[name] = source
        return self._crypto[name]

    def close(self) -> None:
        for source in [self._alphavantage, *self._crypto.values()]:
            if source is not None:
                source.close()
        if self.session is not None:
            self.session.close()


def _fetch_all(wanted: list[Wanted], request: Request,
               settings: Settings) -> tuple[dict[str, pd.DataFrame], dict[str, lib_errors.MarketDataError]]:
    frames: dict[str, pd.DataFrame] = {}
    failures: dict[str, lib_errors.MarketDataError] = {}
    quota: lib_errors.QuotaExhaustedError | None = None
    session = None
    if settings.cache_dir is not None and wanted:
        session = response_cache.cached_session(settings.cache_dir, expire_after=_expiry(settings, request))
    clients = Clients(settings, session)
    try:
        for item in wanted:
            if quota is not None and item.market is None:
                failures[item.label] = quota  # the upstream said stop: another call would only be refused
                continue
            try:
                frames[item.label] = to_frame(_within(fetch(item, request, clients), request))
            except lib_errors.MarketDataError as exc:
                failures[item.label] = exc
                if isinstance(exc, lib_errors.QuotaExhaustedError) and item.market is None:
                    quota = exc
    finally:
        clients.close()
    return frames, failures


def utc_now() -> dt.datetime:
    """The clock the range arithmetic reads (one place, so tests can pin it)."""
    return dt.datetime.now(dt.timezone.utc)


def fetch(item: Wanted, request: Request, clients: Clients, now: dt.datetime | None = None) -> list[Bar]:
    """The bars the upstream gives for one name, before they are cut to the range."""
    now = now or utc_now()
    if item.market is None:
        return _stock_bars(clients.alphavantage(), item.label, request, now)
    return _market_bars(clients.crypto(item.source), item.market, request, now)


def _stock_bars(client: AlphaVantageClient, symbol: str, request: Request, now: dt.datetime) -> list[Bar]:
    period = request.period
    if period == WEEK:
        return client.weekly(symbol, adjusted=request.adjusted)
    if period == MONTH:
        return client.monthly(symbol, adjusted=request.adjusted)
    assert isinstance(period, Interval)
    if period is Interval.DAY:
        return client.daily(symbol, daily_outputsize(request.start, now), adjusted=request.adjusted)
    return client.intraday(symbol, period, intraday_outputsize(request.start, period, now))


def daily_outputsize(start: dt.datetime | None, now: dt.datetime) -> str:
    """`compact` when it holds every trading day from `start`: it holds the latest 100, and trading days are
    weekdays, so at most 100 weekdays from `start` to today is enough (holidays only widen its reach)."""
    if start is None or weekdays(start.date(), now.date()) <= COMPACT_POINTS:
        return "compact"
    return "full"


def intraday_outputsize(start: dt.datetime | None, interval: Interval, now: dt.datetime) -> str:
    """`compact` (the latest 100 bars) when `start` is within 100 bars of now; bars missing outside trading
    hours only widen its reach."""
    if start is None or (now - start).total_seconds() <= COMPACT_POINTS * interval.seconds:
        return "compact"
    return "full"


def weekdays(first: dt.date, last: dt.date) -> int:
    """How many Mondays to Fridays lie in [first, last]."""
    days = (last - first).days + 1
    if days <= 0:
        return 0
    weeks, rest = divmod(days, 7)
    return weeks * 5 + sum((first.weekday() + offset) % 7 < 5 for offset in range(rest))


def _market_bars(source: CryptoSource, market: MarketId, request: Request, now: dt.datetime) -> list[Bar]:
    assert isinstance(request.period, Interval)
    period = dt.timedelta(seconds=request.period.seconds)
    # Candles are closed when their period has ended: those starting by `end` have ended by end + period.
    until = min(now, request.end + period) if request.end else now
    since = request.start or _period_start(until, period) - DEFAULT_BARS * period
    return source.candles(source.resolve(market), request.period, since, until)


def _period_start(moment: dt.datetime, period: dt.timedelta) -> dt.datetime:
    """The start of the candle `moment` falls in (candles are aligned on the epoch, days on midnight UTC)."""
    seconds = int(period.total_seconds())
    return dt.datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, tz=dt.timezone.utc)


def _within(bars: list[Bar], request: Request) -> list[Bar]:
    return [bar for bar in bars if (request.start is None or bar.timestamp >= request.start)
            and (request.end is None or bar.timestamp <= request.end)]


def _expiry(settings: Settings, request: Request) -> float:
    """How long a cached answer is used: the settings' figure, else one bar period, at most an hour."""
    if settings.cache_expire is not None:
        return settings.cache_expire
    seconds = request.period.seconds if isinstance(request.period, Interval) else MAX_CACHE_EXPIRY
    return min(float(seconds), MAX_CACHE_EXPIRY)


# -- the frame of several names ---------------------------------------------------------------------

def _combined(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One frame indexed by (symbol, timestamp), columns in to_frame's order."""
    import pandas as pd

    if not frames:
        empty = to_frame([])
        index = pd.MultiIndex.from_arrays([pd.Index([], dtype=object), pd.DatetimeIndex([], dtype=INDEX_DTYPE)],
                                          names=[SYMBOL_LEVEL, INDEX_NAME])
        return empty.set_axis(index, axis=0)
    combined = pd.concat(frames, names=[SYMBOL_LEVEL])
    return combined[[name for name in (*COLUMNS, *OPTIONAL_COLUMNS) if name in combined.columns]]
