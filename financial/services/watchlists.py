"""Watchlists (system C, SPEC §5.C): the crypto markets each user follows, their last day of minute bars,
their ranking by volatility, and the alerts raised for them.

Adding a market checks it with the source of CRYPTO_SOURCE first (the exchange's market list through
ccxt, or Cryptowatch's market lookup): an unknown market is a 404 naming it, an upstream that cannot be
reached a 503. The market is then stored as an instrument under its canonical pair (`kraken:xbtusd` is
`kraken:btcusd`), which is what starts tracking it: minute ingests take every watched market from
`financial.ingest.watched_markets()`.

A watchlist is one user's alone: every query here is bounded by the user's id.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from flask import current_app

import lib
from financial import caching, storage, tracking
from financial.config import Settings
from financial.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from financial.extensions import db
from financial.models import CRYPTO, Instrument, WatchlistEntry, utcnow
from financial.services import metrics

log = logging.getLogger(__name__)

MAX_MARKETS = 100  # per user: each watched market is one more upstream call in every minute ingest
DAY = dt.timedelta(hours=24)
# A request waits for the upstream a few seconds at most; the ingest's clients are more patient.
LOOKUP_OPTIONS = {"timeout": 5.0, "retry": lib.RetryPolicy(attempts=2, backoff=0.2, max_backoff=0.5)}
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


def _public(row) -> dict:
    return {"exchange": row.exchange, "ticker": row.symbol, "base": row.base, "quote": row.quote, "name": row.name,
            "instrument_id": row.id, "added_at": row.added_at}


def markets(user_id: int, *, limit: int, page: int) -> tuple[list[dict], int]:
    session = db.session
    rows = storage.watchlist(session, user_id, limit=limit, offset=(page - 1) * limit)
    return [_public(row) for row in rows], storage.count_watchlist(session, user_id)


def resolve(market: lib.MarketId, settings: Settings) -> lib.MarketInfo:
    """What the configured crypto source says of the market: 404 if it does not list it, 503 if it cannot
    be asked right now."""
    source = _lookup_source(settings)
    try:
        return source.resolve(market)
    except lib.NotFoundError as exc:
        raise NotFound(f"unknown market {market.label}: {exc}") from None
    except lib.MarketDataError as exc:
        log.warning("cannot check market %s with %s: %s: %s", market.label, settings.crypto_source,
                    type(exc).__name__, exc)
        raise Unavailable(f"cannot check market {market.label} with the {settings.crypto_source} source right now "
                          f"({type(exc).__name__}); try again shortly", headers={"Retry-After": "30"}) from None


def _lookup_source(settings: Settings) -> lib.markets.CryptoSource:
    """This process's source for market lookups. Kept between requests, since an exchange's market list takes
    a few paced calls to load (ccxt keeps it once loaded), and replaced every `LOOKUP_TTL` seconds so that
    markets an exchange lists later are found."""
    with _LOOKUP_LOCK:
        cached = current_app.extensions.get("market_lookup")
        if cached is None or time.monotonic() - cached[1] > LOOKUP_TTL:
            if cached is not None:
                cached[0].close()
            cached = (tracking.crypto_source(settings.crypto_source, settings, **LOOKUP_OPTIONS), time.monotonic())
            current_app.extensions["market_lookup"] = cached
        return cached[0]


def add(user_id: int, exchange: str, ticker: str, settings: Settings) -> tuple[dict, bool]:
    """Watch a market: (the entry, whether it is new). Adding a watched market again changes nothing."""
    info = resolve(market_id(exchange, ticker), settings)
    session = db.session
    try:
        known = storage.find_instrument(session, CRYPTO, info.pair, exchange=info.exchange) is not None
        instrument = storage.get_or_create_instrument(session, CRYPTO, info.pair, exchange=info.exchange,
                                                      base=info.base, quote=info.quote, name=info.name)
        if storage.watched_entry(session, user_id, instrument.id) is None \
                and storage.count_watchlist(session, user_id) >= MAX_MARKETS:
            raise Conflict(f"your watchlist is full ({MAX_MARKETS} markets); remove one first")
        created = storage.insert_ignoring_duplicates(session, WatchlistEntry.__table__, {
            "user_id": user_id, "instrument_id": instrument.id, "created_at": utcnow().replace(microsecond=0)})
        entry = storage.watched_entry(session, user_id, instrument.id)
        if known:
            session.commit()
        else:  # a new instrument is listed by /api/metrics at once: its cached answers must go
            caching.commit_new_generation(session)
    except BaseException:
        session.rollback()
        raise
    return _public(entry), created


def _watched_instrument(user_id: int, exchange: str, ticker: str) -> tuple[lib.MarketId, Instrument | None]:
    market = market_id(exchange, ticker)
    instrument = storage.find_instrument(db.session, CRYPTO, market.pair, exchange=market.exchange)
    if instrument is not None and storage.watched_entry(db.session, user_id, instrument.id) is None:
        instrument = None
    return market, instrument


def remove(user_id: int, exchange: str, ticker: str) -> None:
    market, instrument = _watched_instrument(user_id, exchange, ticker)
    session = db.session
    if instrument is None or not storage.unwatch(session, user_id, instrument.id):
        session.rollback()
        raise NotFound(f"{market.label} is not on your watchlist")
    session.commit()


def day(user_id: int, exchange: str, ticker: str, *, now: dt.datetime | None = None) -> list[dict]:
    """The market's 1-minute bars that started in the last 24 hours (now − 24h < time ≤ now), oldest first;
    403 when the market is not on the user's watchlist."""
    market, instrument = _watched_instrument(user_id, exchange, ticker)
    if instrument is None:
        raise Forbidden(f"{market.label} is not on your watchlist; add it with POST /api/me/markets first")
    end = now or utcnow()
    bars = storage.series_bars(db.session, instrument.id, lib.Interval.MIN1.value, end - DAY, end)
    return [{"time": bar.ts, "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close,
             "volume": bar.volume} for bar in bars]


def rankings(user_id: int) -> list[dict]:
    """The user's markets ranked among themselves by the standard deviation of their close over the last
    24 hours (the rankings of the last ingest); markets without figures last."""
    return metrics.ranking_of(storage.watched_instrument_ids(db.session, user_id), window=24, rank_by="stdev")


def alerts(user_id: int, *, limit: int, page: int) -> tuple[list[dict], int]:
    """One page of the alerts of the user's watched markets, newest first."""
    session = db.session
    rows = storage.user_alerts(session, user_id, limit=limit, offset=(page - 1) * limit)
    items = []
    for row in rows:
        alert = row.Alert
        items.append({
            "id": alert.id, "exchange": row.exchange, "ticker": row.symbol, "quantity": alert.quantity,
            "value": alert.value, "average": alert.average, "ratio": alert.value / alert.average,
            "factor": alert.factor, "points": alert.points, "window_minutes": alert.window_minutes,
            "bar_time": alert.bar_time, "created_at": alert.created_at, "email": row.email})
    return items, storage.count_user_alerts(session, user_id)
