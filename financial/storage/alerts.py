"""Alerts and their e-mail deliveries (one per alert and watcher)."""
from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from financial.models import Alert, AlertDelivery, AssetClass, Bar, DeliveryStatus, Instrument, User, WatchlistEntry
from financial.storage import dialect


class RecentBar(NamedTuple):
    instrument_id: int
    ts: dt.datetime
    close: float
    volume: float


class UserAlert(NamedTuple):
    alert: Alert
    exchange: str
    symbol: str
    email: str | None  # the user's delivery status, None when no e-mail was due to them


class DueDelivery(NamedTuple):
    id: int
    status: str
    updated_at: dt.datetime


class DeliveryDetails(NamedTuple):
    """What an alert e-mail says: the alert, its market and the recipient."""

    id: int
    email: str
    alert_id: int
    quantity: str
    value: float
    average: float
    factor: float
    points: int
    window_minutes: int
    bar_time: dt.datetime
    created_at: dt.datetime
    exchange: str
    symbol: str
    name: str | None


def recent_crypto_bars(session: Session, interval: str, start: dt.datetime, end: dt.datetime, *,
                       instrument_ids: Sequence[int] | None = None) -> list[RecentBar]:
    """The bars with start < ts <= end of the given crypto markets (of every one, without them), by market
    and time. With the markets, each is one short range of the primary key, bounded by the time on both
    sides; without, a short range of the (interval, ts) index."""
    conditions = [Instrument.asset_class == AssetClass.CRYPTO, Bar.interval == interval, Bar.ts > start,
                  Bar.ts <= end]
    if instrument_ids is not None:
        conditions.append(Bar.instrument_id.in_(list(instrument_ids)))
    query = (sa.select(Bar.instrument_id, Bar.ts, Bar.close, Bar.volume)
             .join(Instrument, Instrument.id == Bar.instrument_id).where(*conditions)
             .order_by(Bar.instrument_id, Bar.ts))
    return [RecentBar._make(row) for row in session.execute(query)]


def alerted_since(session: Session, since: dt.datetime) -> set[tuple[int, str]]:
    """(instrument_id, quantity) of the alerts created after `since`."""
    rows = session.execute(sa.select(Alert.instrument_id, Alert.quantity).where(Alert.created_at > since))
    return {(instrument_id, quantity) for instrument_id, quantity in rows}


def add_alert(session: Session, row: dict[str, Any]) -> int | None:
    """Store an alert (a dict of Alert's columns); its id, or None when that market, quantity and bar
    already have one (another run raised it)."""
    if not dialect.insert_ignoring_duplicates(session, Alert, row):
        return None
    return session.scalar(sa.select(Alert.id).where(Alert.instrument_id == row["instrument_id"],
                                                    Alert.quantity == row["quantity"],
                                                    Alert.bar_time == row["bar_time"]))


def add_deliveries(session: Session, alert_id: int, user_ids: list[int], now: dt.datetime) -> None:
    session.add_all(AlertDelivery(alert_id=alert_id, user_id=user_id, status=DeliveryStatus.PENDING, attempts=0,
                                  created_at=now, updated_at=now) for user_id in user_ids)


def _user_alerts(user_id: int) -> Any:
    delivery = dialect.table_of(AlertDelivery).alias("delivery")
    return (sa.select(Alert, Instrument.exchange, Instrument.symbol, delivery.c.status)
            .join(Instrument, Instrument.id == Alert.instrument_id)
            .join(WatchlistEntry, sa.and_(WatchlistEntry.instrument_id == Alert.instrument_id,
                                          WatchlistEntry.user_id == user_id))
            .outerjoin(delivery, sa.and_(delivery.c.alert_id == Alert.id, delivery.c.user_id == user_id)))


def user_alerts(session: Session, user_id: int, *, limit: int, offset: int) -> list[UserAlert]:
    """One page of the alerts of the markets on a user's watchlist, newest first, with that user's e-mail status."""
    query = _user_alerts(user_id).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit).offset(offset)
    return [UserAlert._make(row) for row in session.execute(query)]


def count_user_alerts(session: Session, user_id: int) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(_user_alerts(user_id).subquery())) or 0


def deliveries_to_send(session: Session, *, abandoned_before: dt.datetime, limit: int) -> list[DueDelivery]:
    """The deliveries waiting for a (new) attempt, oldest first: pending, failed, and `sending` ones whose run
    stopped before finishing them."""
    query = (sa.select(AlertDelivery.id, AlertDelivery.status, AlertDelivery.updated_at)
             .where(sa.or_(AlertDelivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.FAILED)),
                           sa.and_(AlertDelivery.status == DeliveryStatus.SENDING,
                                   AlertDelivery.updated_at < abandoned_before)))
             .order_by(AlertDelivery.id).limit(limit))
    return [DueDelivery._make(row) for row in session.execute(query)]


def claim_delivery(session: Session, delivery: DueDelivery, now: dt.datetime) -> bool:
    """Mark a delivery `sending` for this run, counting the attempt, unless another run changed it since it
    was read; True when this run now owns it."""
    return dialect.rowcount(session.execute(
        sa.update(AlertDelivery).where(AlertDelivery.id == delivery.id, AlertDelivery.status == delivery.status,
                                       AlertDelivery.updated_at == delivery.updated_at)
        .values(status=DeliveryStatus.SENDING, attempts=AlertDelivery.attempts + 1, updated_at=now))) == 1


def delivery_details(session: Session, delivery_id: int) -> DeliveryDetails:
    row = session.execute(
        sa.select(AlertDelivery.id, User.email, Alert.id, Alert.quantity, Alert.value, Alert.average,
                  Alert.factor, Alert.points, Alert.window_minutes, Alert.bar_time, Alert.created_at,
                  Instrument.exchange, Instrument.symbol, Instrument.name)
        .join(Alert, Alert.id == AlertDelivery.alert_id).join(User, User.id == AlertDelivery.user_id)
        .join(Instrument, Instrument.id == Alert.instrument_id).where(AlertDelivery.id == delivery_id)).one()
    return DeliveryDetails._make(row)


def finish_delivery(session: Session, delivery_id: int, status: DeliveryStatus, now: dt.datetime,
                    error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": now, "last_error": error[:255] if error else None}
    if status is DeliveryStatus.SENT:
        values["sent_at"] = now
    session.execute(sa.update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values))
