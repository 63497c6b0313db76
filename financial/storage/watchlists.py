"""Watchlists: which user watches which crypto market. Every query is bounded by the user's id, except
those that serve the ingest (the markets anyone watches, a market's watchers)."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

import lib
from financial.models import AssetClass, Instrument, WatchlistEntry
from financial.storage import dialect


class Watched(NamedTuple):
    id: int
    exchange: str
    symbol: str
    base: str | None
    quote: str | None
    name: str | None
    added_at: dt.datetime


_WATCHED = (Instrument.id, Instrument.exchange, Instrument.symbol, Instrument.base, Instrument.quote,
            Instrument.name, WatchlistEntry.created_at)


def _of_user(user_id: int) -> Any:
    return sa.select(*_WATCHED).join(WatchlistEntry, WatchlistEntry.instrument_id == Instrument.id) \
        .where(WatchlistEntry.user_id == user_id)


def watchlist(session: Session, user_id: int, *, limit: int, offset: int) -> list[Watched]:
    """One page of a user's watched markets, by exchange then pair."""
    query = _of_user(user_id).order_by(Instrument.exchange, Instrument.symbol, Instrument.id).limit(limit) \
        .offset(offset)
    return [Watched._make(row) for row in session.execute(query)]


def count(session: Session, user_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(WatchlistEntry)
                          .where(WatchlistEntry.user_id == user_id)) or 0


def entry(session: Session, user_id: int, instrument_id: int) -> Watched | None:
    row = session.execute(_of_user(user_id).where(WatchlistEntry.instrument_id == instrument_id)).first()
    return None if row is None else Watched._make(row)


def watch(session: Session, user_id: int, instrument_id: int, now: dt.datetime) -> bool:
    """Put the market on the user's watchlist; False when it was there already."""
    return dialect.insert_ignoring_duplicates(session, WatchlistEntry, {
        "user_id": user_id, "instrument_id": instrument_id, "created_at": now})


def unwatch(session: Session, user_id: int, instrument_id: int) -> bool:
    return dialect.rowcount(session.execute(sa.delete(WatchlistEntry).where(
        WatchlistEntry.user_id == user_id, WatchlistEntry.instrument_id == instrument_id))) == 1


def instrument_ids(session: Session, user_id: int) -> list[int]:
    return list(session.scalars(sa.select(WatchlistEntry.instrument_id).where(WatchlistEntry.user_id == user_id)))


def watched_markets(bind: dialect.Bind) -> list[lib.MarketId]:
    """Every crypto market on any watchlist, by exchange then pair."""
    rows = bind.execute(
        sa.select(Instrument.exchange, Instrument.symbol).distinct()
        .join(WatchlistEntry, WatchlistEntry.instrument_id == Instrument.id)
        .where(Instrument.asset_class == AssetClass.CRYPTO).order_by(Instrument.exchange, Instrument.symbol))
    return [lib.MarketId(exchange, pair) for exchange, pair in rows]


def watchers(session: Session, instrument_id: int) -> list[int]:
    return list(session.scalars(sa.select(WatchlistEntry.user_id).where(WatchlistEntry.instrument_id == instrument_id)
                                .order_by(WatchlistEntry.user_id)))
