"""Alerts (system C): after every minute ingest, a market whose price or volume jumps to
ALERT_FACTOR times its recent average raises an alert, e-mailed to everyone watching it.

**The rule**, for each crypto market and each quantity (price = the close, and the volume) of its
1-minute bars, at the moment `now` of the ingest run:

- the *latest* bar is the market's newest one at or before `now`; if it started more than
  ALERT_STALE_MINUTES before `now` the data is stale (the market was not updated by this run) and
  nothing is evaluated for it;
- the *window* is the bars that started in the ALERT_WINDOW_MINUTES up to and including the latest one
  (latest − window < time ≤ latest: 60 bars at most for 60 minutes);
- it needs at least ALERT_MIN_POINTS bars in the window, the latest included;
- it fires when latest value ≥ ALERT_FACTOR × the mean of the *other* bars of the window (the latest one
  is left out of the average, so a spike cannot dilute its own baseline), and that mean is above zero.
  (Compared with a relative allowance of 1e-12 for floating-point rounding, so exactly 3x fires.)
- unless that market and quantity had an alert in the last ALERT_COOLDOWN_MINUTES (created after
  now − cooldown), and at most one alert per market, quantity and bar (a unique key), whatever the
  cooldown and however many runs overlap.

The window is read in one SQL query over every market (a short range of the bars' (interval, ts)
index, bounded by window + staleness) and the rule applied per market in `evaluate`, a pure function.

**E-mail.** Each new alert gets one delivery record per watcher of its market (unique per alert and user)
when SMTP_HOST is set; without it alerts are only recorded and listed (no deliveries are created, so
switching e-mail on later does not mail old alerts). The same run then sends every delivery that is due
over one SMTP connection, claiming each first (so two overlapping runs never both send one) and marking
it `sent` in its own commit right after the server accepted it. When the server cannot be reached or
fails, the delivery is marked `failed` with the attempt count and the error, and the next run retries
it; an address the server refuses for good is marked `rejected`. A run that dies between the server's
acceptance and that commit leaves the delivery `sending`; after `ABANDONED_AFTER` it is retried — the only
way an e-mail can go out twice.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from itertools import groupby
from typing import Collection, Sequence

from financial.config import Settings
from financial.mail import Mailer, MailError
from financial.models import DeliveryStatus, Quantity
from financial.storage import alerts as storage, watchlists
from financial.storage.alerts import DeliveryDetails
from financial.transactions import unit_of_work

log = logging.getLogger(__name__)

INTERVAL = "1min"
ROUNDING = 1e-12
ABANDONED_AFTER = dt.timedelta(minutes=15)
DELIVERY_BATCH = 500  # deliveries attempted per run at most; the rest wait for the next


@dataclass(frozen=True)
class Rule:
    factor: float = 3.0
    window_minutes: int = 60
    min_points: int = 4
    cooldown_minutes: int = 60
    stale_minutes: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> "Rule":
        return cls(settings.alert_factor, settings.alert_window_minutes, settings.alert_min_points,
                   settings.alert_cooldown_minutes, settings.alert_stale_minutes)

    @property
    def reach(self) -> dt.timedelta:
        """How far back from `now` a run reads bars: the staleness allowance plus a whole window."""
        return dt.timedelta(minutes=self.stale_minutes + self.window_minutes)


@dataclass(frozen=True)
class Point:
    time: dt.datetime
    close: float
    volume: float


@dataclass(frozen=True)
class Trigger:
    quantity: Quantity
    value: float
    average: float
    points: int
    bar_time: dt.datetime


def evaluate(points: Sequence[Point], rule: Rule, now: dt.datetime) -> list[Trigger]:
    """What the rule says of one market's recent bars (any order; those after `now` are ignored)."""
    points = sorted((point for point in points if point.time <= now), key=lambda point: point.time)
    if not points:
        return []
    latest = points[-1]
    if latest.time < now - dt.timedelta(minutes=rule.stale_minutes):
        return []
    window = [point for point in points if point.time > latest.time - dt.timedelta(minutes=rule.window_minutes)]
    if len(window) < rule.min_points:
        return []
    triggers = []
    for quantity in Quantity:
        attribute = "close" if quantity is Quantity.PRICE else "volume"
        value = getattr(latest, attribute)
        average = math.fsum(getattr(point, attribute) for point in window[:-1]) / (len(window) - 1)
        if average > 0 and value >= rule.factor * average * (1 - ROUNDING):
            triggers.append(Trigger(quantity, value, average, len(window), latest.time))
    return triggers


@dataclass
class Summary:
    raised: int = 0
    sent: int = 0
    failed: int = 0
    email: bool = True

    def render(self) -> str:
        mail = f"e-mails: {self.sent} sent, {self.failed} failed" if self.email else "e-mail off (no SMTP_HOST)"
        return f"alerts: {self.raised} raised; {mail}"


def run(settings: Settings, now: dt.datetime, *, markets: Collection[int] | None = None) -> Summary:
    """The post-ingest step: raise the alerts due at `now` (naive or aware UTC) for `markets` (the instruments
    that got new bars; None: every crypto market), then send the e-mails due."""
    if now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    now = now.replace(microsecond=0)  # as stored: MySQL's DATETIME keeps whole seconds
    raised = raise_alerts(Rule.from_settings(settings), now, email=bool(settings.smtp_host), markets=markets)
    summary = Summary(raised=len(raised), email=bool(settings.smtp_host))
    if settings.smtp_host:
        summary.sent, summary.failed = deliver(settings, now)
    return summary


def raise_alerts(rule: Rule, now: dt.datetime, *, email: bool, markets: Collection[int] | None = None) -> list[int]:
    """Store the alerts the rule raises at `now` for `markets` (None: every crypto market), with one pending
    delivery per watcher when `email`; returns their ids."""
    if markets is not None and not markets:
        return []
    with unit_of_work() as work:
        session = work.session
        rows = storage.recent_crypto_bars(session, INTERVAL, now - rule.reach, now,
                                          instrument_ids=None if markets is None else sorted(markets))
        cooling = storage.alerted_since(session, now - dt.timedelta(minutes=rule.cooldown_minutes))
        raised = []
        for instrument_id, bars in groupby(rows, key=lambda row: row.instrument_id):
            points = [Point(row.ts, row.close, row.volume) for row in bars]
            for trigger in evaluate(points, rule, now):
                if (instrument_id, trigger.quantity) in cooling:
                    continue
                alert_id = storage.add_alert(session, {
                    "instrument_id": instrument_id, "quantity": trigger.quantity, "value": trigger.value,
                    "average": trigger.average, "factor": rule.factor, "points": trigger.points,
                    "window_minutes": rule.window_minutes, "bar_time": trigger.bar_time, "created_at": now})
                if alert_id is None:
                    continue  # this bar already raised one (another run)
                raised.append(alert_id)
                log.info("alert %d: instrument %d %s %.10g >= %g x %.10g (%d points, bar %s)", alert_id, instrument_id,
                         trigger.quantity, trigger.value, rule.factor, trigger.average, trigger.points,
                         trigger.bar_time.isoformat())
                if email:
                    storage.add_deliveries(session, alert_id, watchlists.watchers(session, instrument_id), now)
    return raised


def deliver(settings: Settings, now: dt.datetime) -> tuple[int, int]:
    """Send every delivery that is due; (sent, failed or rejected) in this run."""
    with unit_of_work() as work:
        due = storage.deliveries_to_send(work.session, abandoned_before=now - ABANDONED_AFTER, limit=DELIVERY_BATCH)
        claimed = [delivery.id for delivery in due if storage.claim_delivery(work.session, delivery, now)]
    if not claimed:
        return 0, 0
    sent = failed = 0
    mailer = Mailer(settings)
    try:
        mailer.connect()
    except MailError as exc:
        log.warning("alert e-mail: %s; %d e-mail(s) will be retried by the next run", exc, len(claimed))
        _finish(claimed, DeliveryStatus.FAILED, now, str(exc))
        return 0, len(claimed)
    try:
        for position, delivery_id in enumerate(claimed):
            with unit_of_work() as work:  # the read ends before we talk to the server
                details = storage.delivery_details(work.session, delivery_id)
            try:
                mailer.send(message(details, settings.smtp_sender))
            except MailError as exc:
                status = DeliveryStatus.REJECTED if exc.permanent else DeliveryStatus.FAILED
                log.warning("alert e-mail %d: %s (%s)", delivery_id, exc, status)
                if exc.connection_lost:  # the rest cannot go out on this connection: next run
                    _finish(claimed[position:], DeliveryStatus.FAILED, now, str(exc))
                    failed += len(claimed) - position
                    break
                _finish([delivery_id], status, now, str(exc))
                failed += 1
                continue
            _finish([delivery_id], DeliveryStatus.SENT, now)  # at once: from here on, it must never be sent again
            sent += 1
    finally:
        mailer.close()
    return sent, failed


def _finish(delivery_ids: Sequence[int], status: DeliveryStatus, now: dt.datetime, error: str | None = None) -> None:
    with unit_of_work() as work:
        for delivery_id in delivery_ids:
            storage.finish_delivery(work.session, delivery_id, status, now, error)


def message(details: DeliveryDetails, sender: str) -> EmailMessage:
    """The e-mail of one alert to one watcher."""
    alert = details
    label = f"{details.exchange}:{details.symbol}"
    ratio = alert.value / alert.average
    others = alert.points - 1
    what = "Price (close)" if alert.quantity == Quantity.PRICE else "Volume"
    mail = EmailMessage()
    mail["Subject"] = (f"{label}: {alert.quantity} {number(alert.value)} is {ratio:.2f}x its "
                       f"{alert.window_minutes}-minute average")
    mail["From"] = sender
    mail["To"] = details.email
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<alert-{alert.alert_id}.{details.id}@{sender.partition('@')[2] or 'localhost'}>"
    mail.set_content(
        f"{label} ({details.name or label}): {alert.quantity} alert #{alert.alert_id}.\n\n"
        f"{what} of the 1-minute bar starting {alert.bar_time:%Y-%m-%d %H:%M} UTC: {number(alert.value)}\n"
        f"Average of the other {others} bar{'s' if others != 1 else ''} in the last {alert.window_minutes} "
        f"minutes: {number(alert.average)}\n"
        f"That is {ratio:.2f} times the average; alerts fire at {number(alert.factor)} times.\n\n"
        f"Raised at {alert.created_at:%Y-%m-%d %H:%M:%S} UTC. You get this e-mail because {label} is on your "
        f"watchlist.\n")
    return mail


def number(value: float) -> str:
    """A figure as the e-mail shows it: up to 10 significant digits, no exponent for market-sized values."""
    return f"{value:.10g}"
