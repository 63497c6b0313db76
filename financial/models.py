"""The storage model: instruments and their OHLCV bars, plus the service's own bookkeeping.

Every series, stock or crypto, daily or minute, lives in `bars`, keyed by (instrument, interval,
timestamp). That key is the primary key, so on InnoDB the rows of one series are stored together and a
range query over one series reads only that series, however large the table grows. Timestamps are UTC
without a zone attached (MySQL DATETIME has none); daily bars sit at midnight of their trading date.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from financial.extensions import db

STOCK = "stock"
CRYPTO = "crypto"
Double = Float(precision=53)  # DOUBLE on MySQL, REAL on SQLite


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Instrument(db.Model):
    """A stock symbol (exchange ''), a crypto market (exchange + pair) or a coin of a historical dataset."""

    __tablename__ = "instruments"
    __table_args__ = (UniqueConstraint("asset_class", "exchange", "symbol"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asset_class: Mapped[str] = mapped_column(String(16))
    exchange: Mapped[str] = mapped_column(String(32), default="")
    symbol: Mapped[str] = mapped_column(String(32))
    base: Mapped[str | None] = mapped_column(String(16))
    quote: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Bar(db.Model):
    """One OHLCV candle of one instrument at one interval."""

    __tablename__ = "bars"
    __table_args__ = (Index("ix_bars_interval_ts", "interval", "ts"), {"sqlite_with_rowid": False})

    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float] = mapped_column(Double)
    adjusted_close: Mapped[float | None] = mapped_column(Double)
    market_cap: Mapped[float | None] = mapped_column(Double)


class ServiceState(db.Model):
    """Small named values shared by every process, such as the data generation that tags cache entries."""

    __tablename__ = "service_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Ranking(db.Model):
    """One instrument's figures over one standard window, computed once per ingest and served by /api/metrics.

    The whole table is replaced at the end of each ingest, in the transaction that bumps the data
    generation; `as_of` is the moment those windows end.
    """

    __tablename__ = "rankings"
    # The foreign key needs an index of its own (MySQL would add one anyway): deleting an instrument cascades.
    __table_args__ = (Index("ix_rankings_instrument_id", "instrument_id"),)

    window_hours: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True,
                                               autoincrement=False)
    interval: Mapped[str | None] = mapped_column(String(8))
    points: Mapped[int] = mapped_column(default=0)
    mean: Mapped[float | None] = mapped_column(Double)
    stdev: Mapped[float | None] = mapped_column(Double)
    volatility: Mapped[float | None] = mapped_column(Double)
    last_price: Mapped[float | None] = mapped_column(Double)
    last_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    rank_stdev: Mapped[int | None] = mapped_column()
    rank_volatility: Mapped[int | None] = mapped_column()
    as_of: Mapped[dt.datetime] = mapped_column(DateTime)
