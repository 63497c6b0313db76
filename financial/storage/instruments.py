"""Instruments: stock symbols, crypto markets (exchange + pair) and coins of a historical dataset.

An instrument is known by (asset class, exchange, symbol); stocks and coins have exchange "".
"""
from __future__ import annotations

from typing import Collection, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

import lib
from financial.models import AssetClass, Bar, Instrument, utcnow
from financial.storage import dialect


class Identity(NamedTuple):
    id: int
    exchange: str
    symbol: str
    base: str | None
    quote: str | None


class Match(NamedTuple):
    name: str | None
    symbol: str
    exchange: str
    asset_class: str


def get_or_create(session: Session, asset_class: AssetClass, symbol: str, *, exchange: str = "",
                  base: str | None = None, quote: str | None = None, name: str | None = None) -> Instrument:
    """The instrument with this identity, created if missing; safe when two processes race to create it.

    Descriptive fields (base, quote, name) are filled in when given and still empty.
    """
    instrument = find(session, asset_class, symbol, exchange=exchange)
    if instrument is None:
        dialect.insert_ignoring_duplicates(session, Instrument, {
            "asset_class": asset_class, "exchange": exchange, "symbol": symbol, "base": base, "quote": quote,
            "name": name, "created_at": utcnow()})
        # A locking read: when another transaction created it first (our insert waited, then was ignored),
        # MySQL's repeatable-read snapshot would still hide that row from a plain SELECT.
        instrument = find(session, asset_class, symbol, exchange=exchange, lock=True)
        assert instrument is not None  # inserted above, by us or by the transaction we waited for
    for attribute, value in (("base", base), ("quote", quote), ("name", name)):
        if value and not getattr(instrument, attribute):
            setattr(instrument, attribute, value)
    session.flush()
    return instrument


def find(session: Session, asset_class: AssetClass, symbol: str, *, exchange: str = "",
         lock: bool = False) -> Instrument | None:
    query = sa.select(Instrument).where(
        Instrument.asset_class == asset_class, Instrument.exchange == exchange, Instrument.symbol == symbol)
    if lock:
        query = query.with_for_update()  # (SQLite has no row locks; SQLAlchemy leaves the clause out there)
    return session.scalar(query)


def identities(session: Session) -> dict[int, Identity]:
    """Every instrument by id."""
    rows = session.execute(sa.select(Instrument.id, Instrument.exchange, Instrument.symbol, Instrument.base,
                                     Instrument.quote))
    return {row.id: Identity._make(row) for row in rows}


def finest_intervals(session: Session, instrument_ids: Collection[int] | None = None) -> dict[int, str | None]:
    """{instrument id: its finest stored interval} (None for an instrument without bars), of the given
    instruments (of every one, without them).

    One probe per interval, finest first, each an index seek on the bars' primary key.
    """
    finest = sa.func.coalesce(*(
        sa.select(sa.literal(interval.value))
        .where(sa.exists().where(Bar.instrument_id == Instrument.id, Bar.interval == interval.value)
               .correlate(Instrument))
        .scalar_subquery()
        for interval in sorted(lib.Interval, key=lambda interval: interval.seconds)))
    query = sa.select(Instrument.id, finest)
    if instrument_ids is not None:
        if not instrument_ids:
            return {}
        query = query.where(Instrument.id.in_(sorted(instrument_ids)))
    return {instrument_id: interval for instrument_id, interval in session.execute(query)}


def search(session: Session, text: str, *, limit: int, offset: int) -> tuple[list[Match], int]:
    """The instruments whose name or symbol contains `text`, case-insensitively (LIKE wildcards in `text`
    match only themselves), one page of them and how many there are.

    Exact matches of the name or symbol come first, then those starting with `text`, then the rest; within
    each, by name (the symbol where there is none), symbol, exchange and asset class.
    """
    needle = text.lower()
    symbol, name = sa.func.lower(Instrument.symbol), sa.func.lower(sa.func.coalesce(Instrument.name, ""))
    matches = sa.or_(symbol.contains(needle, autoescape=True), name.contains(needle, autoescape=True))
    rank = sa.case((sa.or_(symbol == needle, name == needle), 0),
                   (sa.or_(symbol.startswith(needle, autoescape=True), name.startswith(needle, autoescape=True)), 1),
                   else_=2)
    shown = sa.func.lower(sa.func.coalesce(sa.func.nullif(Instrument.name, ""), Instrument.symbol))
    query = (sa.select(Instrument.name, Instrument.symbol, Instrument.exchange, Instrument.asset_class)
             .where(matches)
             .order_by(rank, shown, sa.func.lower(Instrument.symbol), Instrument.exchange, Instrument.asset_class,
                       Instrument.id)
             .limit(limit).offset(offset))
    count = session.scalar(sa.select(sa.func.count()).select_from(Instrument).where(matches)) or 0
    rows = [Match._make(row) for row in session.execute(query)] if count > offset else []
    return rows, count
