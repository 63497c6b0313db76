"""Watchlists (system C): the crypto markets each user follows, their last day of minute bars,
their ranking by volatility, and the alerts raised for them.

Adding a market checks it with the source of CRYPTO_SOURCE first (the exchange's market list through
ccxt, or Cryptowatch's market lookup): an unknown market is a 404 naming it, an upstream that cannot be
reached a 503. The market is then stored as an instrument under its canonical pair (`kraken:xbtusd` is
`kraken:btcusd`), which is what starts tracking it: minute ingests add every watched market to their plan
(`financial.storage.watchlists.watched_markets`).

A watchlist is one user's alone: every query here is bounded by the user's id.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

import lib
from financial.config import Settings
from financial.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from financial.extensions import app_state, current_settings, db_session
from financial.models import AssetClass, Instrument, utcnow
from financial.paging import Page
from financial.services import metrics
from financial.storage import alerts as alert_storage, bars, instruments, watchlists
from financial.storage.watchlists import Watched
from financial.transactions import unit_of_work
from financial.upstreams import crypto_source

log = logging.getLogger(__name__)

MAX_MARKETS = 100  # per user: each watched market is one more upstream call in every minute ingest
DAY = dt.timedelta(hours=24)
# A request waits for the upstream a few seconds at most; the ingest's clients are more patient.
LOOKUP_OPTIONS: dict[str, Any] = {"timeout": 5.0, "retry": lib.RetryPolicy(attempts=2, backoff=0.2, max_backoff=0.5)}
LOOKUP_TTL = 3600.0
_LOOKUP_LOCK = threading.Lock()


def market_id(exchange: str, ticker: str) -> lib.MarketId:
    """The market as named by a request; 400 naming `exchange` or `ticker` when either cannot be one."""
    try:
        exchange = lib.markets.parse_exchange(exchange)
    except ValueError as exc:
        raise BadRequest(f"exchange: {exc}") from None
    try:
        pair = lib.markets.parse_pair(ticker)
    except ValueError as exc:
        raise BadRequest(f"ticker: {exc}") from None
    return lib.MarketId(exchange, pair)


def _public(row: Watched) -> dict[str, Any]:
    return {"exchange": row.exchange, "ticker": row.symbol, "base": row.base, "quote": row.quote, "name": row.name,
            "instrument_id": row.id, "added_at": row.added_at}


def markets(user_id: int, page: Page) -> tuple[list[dict[str, Any]], int]:
    session = db_session()
    rows = watchlists.watchlist(session, user_id, limit=page.size, offset=page.offset)
    return [_public(row) for row in rows], watchlists.count(session, user_id)


def resolve(market: lib.MarketId, settings: Settings) -> lib.MarketInfo:
    """What the configured crypto source says of the market: 404 if it does not list it, 503 if it cannot
    be asked right now."""
    source = _lookup(settings).source()
    try:
        return source.resolve(market)
    except lib.NotFoundError as exc:
        raise NotFound(f"unknown market {market.label}: {exc}") from None
    except lib.MarketDataError as exc:
        log.warning("cannot check market %s with %s: %s: %s", market.label, settings.crypto_source,
                    type(exc).__name__, exc)
        raise Unavailable(f"cannot check market {market.label} with the {settings.crypto_source} source right now "
                          f"({type(exc).__name__}); try again shortly", headers={"Retry-After": "30"}) from None


class MarketLookup:
    """This process's source for market lookups. Kept between requests, since an exchange's market list takes
    a few paced calls to load (ccxt keeps it once loaded), and replaced every `LOOKUP_TTL` seconds so that
    markets an exchange lists later are found."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._source: lib.markets.CryptoSource | None = None
        self._made = 0.0

    def source(self) -> lib.markets.CryptoSource:
        with self._lock:
            if self._source is None or time.monotonic() - self._made > LOOKUP_TTL:
                if self._source is not None:
                    self._source.close()
                self._source = crypto_source(self.settings.crypto_source, self.settings, **LOOKUP_OPTIONS)
                self._made = time.monotonic()
            return self._source


def _lookup(settings: Settings) -> MarketLookup:
    state = app_state()
    with _LOOKUP_LOCK:
        if state.market_lookup is None:
            state.market_lookup = MarketLookup(settings)
        return state.market_lookup


def add(user_id: int, exchange: str, ticker: str, settings: Settings) -> tuple[dict[str, Any], bool]:
    """Watch a market: (the entry, whether it is new). Adding a watched market again changes nothing."""
    info = resolve(market_id(exchange, ticker), settings)
    with unit_of_work() as work:
        session = work.session
        known = instruments.find(session, AssetClass.CRYPTO, info.pair, exchange=info.exchange) is not None
        instrument = instruments.get_or_create(session, AssetClass.CRYPTO, info.pair, exchange=info.exchange,
                                               base=info.base, quote=info.quote, name=info.name)
        if watchlists.entry(session, user_id, instrument.id) is None \
                and watchlists.count(session, user_id) >= MAX_MARKETS:
            raise Conflict(f"your watchlist is full ({MAX_MARKETS} markets); remove one first")
        created = watchlists.watch(session, user_id, instrument.id, utcnow().replace(microsecond=0))
        entry = watchlists.entry(session, user_id, instrument.id)
        assert entry is not None  # just put there, by this request or an earlier one
        # A new instrument is listed by /api/metrics at once: its cached answers must go.
        work.changes_data = not known
    return _public(entry), created


def _watched_instrument(user_id: int, exchange: str, ticker: str) -> tuple[lib.MarketId, Instrument | None]:
    """The market as the request names it, and its instrument if the user watches it (else None). Any
    spelling of a watched market finds it: one that is not its canonical pair (`xbt-usd`, Kraken's
    `XXBTZUSD` for `btcusd`) is resolved by the crypto source, as when the market was added."""
    market = market_id(exchange, ticker)
    session = db_session()
    instrument = instruments.find(session, AssetClass.CRYPTO, market.pair, exchange=market.exchange)
    if instrument is None and _watches_on(session, user_id, market.exchange):
        try:
            info = resolve(market, current_settings())
        except NotFound:
            info = None
        if info is not None and info.pair != market.pair:
            instrument = instruments.find(session, AssetClass.CRYPTO, info.pair, exchange=info.exchange)
    if instrument is not None and watchlists.entry(session, user_id, instrument.id) is None:
        instrument = None
    return market, instrument


def _watches_on(session: Any, user_id: int, exchange: str) -> bool:
    """Whether the user watches a market of the exchange: only then can another spelling be one of theirs
    (and is the source worth asking)."""
    return any(row.exchange == exchange for row in watchlists.watchlist(session, user_id, limit=MAX_MARKETS, offset=0))


def remove(user_id: int, exchange: str, ticker: str) -> None:
    with unit_of_work() as work:
        market, instrument = _watched_instrument(user_id, exchange, ticker)
        if instrument is None or not watchlists.unwatch(work.session, user_id, instrument.id):
            raise NotFound(f"{market.label} is not on your watchlist")


def day(user_id: int, exchange: str, ticker: str, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The market's 1-minute bars that started in the last 24 hours (now − 24h < time ≤ now), oldest first;
    403 when the market is not on the user's watchlist."""
    market, instrument = _watched_instrument(user_id, exchange, ticker)
    if instrument is None:
        raise Forbidden(f"{market.label} is not on your watchlist; add it with POST /api/me/markets first")
    end = now or utcnow()
    candles = bars.candles(db_session(), instrument.id, lib.Interval.MIN1.value, end - DAY, end)
    return [{"time": bar.ts, "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
             "volume": bar.volume} for bar in candles]


def rankings(user_id: int) -> list[dict[str, Any]]:
    """The user's markets ranked among themselves by the standard deviation of their close over the last
    24 hours (the rankings of the last ingest); markets without figures last."""
    return metrics.ranking_of(watchlists.instrument_ids(db_session(), user_id), window=24, rank_by="stdev")


def alerts(user_id: int, page: Page) -> tuple[list[dict[str, Any]], int]:
    """One page of the alerts of the user's watched markets, newest first."""
    session = db_session()
    items = []
    for row in alert_storage.user_alerts(session, user_id, limit=page.size, offset=page.offset):
        alert = row.alert
        items.append({
            "id": alert.id, "exchange": row.exchange, "ticker": row.symbol, "quantity": alert.quantity,
            "value": alert.value, "average": alert.average, "ratio": alert.value / alert.average,
            "factor": alert.factor, "points": alert.points, "window_minutes": alert.window_minutes,
            "bar_time": alert.bar_time, "created_at": alert.created_at, "email": row.email})
    return items, alert_storage.count_user_alerts(session, user_id)
