"""The storage model: instruments and their OHLCV bars, plus the service's own bookkeeping.

Every series, stock or crypto, daily or minute, lives in `bars`, keyed by (instrument, interval,
timestamp). That key is the primary key, so on InnoDB the rows of one series are stored together and a
range query over one series reads only that series, however large the table grows. Timestamps are UTC
without a zone attached (MySQL DATETIME has none); daily bars sit at midnight of their trading date.
"""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import DateTime, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from financial.extensions import Base

Double = Float(precision=53)  # DOUBLE on MySQL, REAL on SQLite


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class AssetClass(enum.StrEnum):
    STOCK = "stock"
    CRYPTO = "crypto"


class Quantity(enum.StrEnum):
    """What an alert watches: the close (`price`) or the volume of a market's minute bars."""

    PRICE = "price"
    VOLUME = "volume"


class DeliveryStatus(enum.StrEnum):
    """The life of an alert e-mail (see AlertDelivery)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    REJECTED = "rejected"


class Instrument(Base):
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


class Bar(Base):
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


class _RollupColumns:
    """The sufficient statistics of one bucket of one intraday series (see financial.storage.rollups).

    Of the closes: `points`, their `mean` and `m2` (the sum of squared deviations from that mean); the first
    and last bar's time and close. Of the simple returns between consecutive bars inside the bucket (a zero
    previous close gives none): `returns`, `return_mean`, `return_m2` (null without returns).
    """

    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    bucket: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)  # the bucket's start
    points: Mapped[int] = mapped_column()
    mean: Mapped[float] = mapped_column(Double)
    m2: Mapped[float] = mapped_column(Double)
    first_time: Mapped[dt.datetime] = mapped_column(DateTime)
    first_close: Mapped[float] = mapped_column(Double)
    last_time: Mapped[dt.datetime] = mapped_column(DateTime)
    last_close: Mapped[float] = mapped_column(Double)
    returns: Mapped[int] = mapped_column()
    return_mean: Mapped[float | None] = mapped_column(Double)
    return_m2: Mapped[float | None] = mapped_column(Double)


class BarRollup(_RollupColumns, Base):
    """One hour of one intraday series, kept in the transaction that writes its bars, so that figures over
    long windows combine whole hours instead of reading every minute."""

    __tablename__ = "bar_rollups"
    __table_args__ = ({"sqlite_with_rowid": False},)


class BarDayRollup(_RollupColumns, Base):
    """One day of one intraday series, combined from its hours in the same transaction."""

    __tablename__ = "bar_day_rollups"
    __table_args__ = ({"sqlite_with_rowid": False},)


class ServiceState(Base):
    """Small named values shared by every process, such as the data generation that tags cache entries."""

    __tablename__ = "service_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Ranking(Base):
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


# -- system C: accounts, watchlists and alerts -------------------------------------------------------

class User(Base):
    """An account. `email` is stored lower-cased, so the unique constraint is case-insensitive on every
    database; the password only as an Argon2id hash (salt and parameters inside it)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuthToken(Base):
    """A bearer token, known here only by its SHA-256: a copy of the table lets no one sign in."""

    __tablename__ = "auth_tokens"
    __table_args__ = (UniqueConstraint("token_hash"), Index("ix_auth_tokens_user_id", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class WatchlistEntry(Base):
    """One market on one user's watchlist; the pair is the primary key, so a market is listed once."""

    __tablename__ = "watchlist_entries"
    # Watchers of a market (alert e-mails, the markets minute ingests track) are found by instrument.
    __table_args__ = (Index("ix_watchlist_entries_instrument_id", "instrument_id"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id", ondelete="CASCADE"), primary_key=True,
                                               autoincrement=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Alert(Base):
    """A market's price (close) or volume that reached `factor` times the mean of the other values of the
    window, with the figures that triggered it. One per (market, quantity, bar) at most."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("instrument_id", "quantity", "bar_time"),
                      Index("ix_alerts_instrument_id_quantity_created_at", "instrument_id", "quantity", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id", ondelete="CASCADE"))
    quantity: Mapped[str] = mapped_column(String(8))  # a Quantity
    value: Mapped[float] = mapped_column(Double)
    average: Mapped[float] = mapped_column(Double)
    factor: Mapped[float] = mapped_column(Double)
    points: Mapped[int] = mapped_column()
    window_minutes: Mapped[int] = mapped_column()
    bar_time: Mapped[dt.datetime] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class AlertDelivery(Base):
    """The e-mail of one alert to one watcher: created `pending` with the alert, `sending` while an ingest
    run holds it, then `sent` (right after the SMTP server accepted it), `failed` (retried by the next run)
    or `rejected` (the server refused the address for good; not retried)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "user_id"), Index("ix_alert_deliveries_status", "status"),
                      Index("ix_alert_deliveries_user_id", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)  # a DeliveryStatus
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
