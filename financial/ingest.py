"""Ingest: fetch series through `lib` clients and store them, one instrument at a time.

An ingest is a list of tasks, one per symbol or market. Each task fetches and parses everything before
anything is written, then writes its bars, and bumps the data generation, in one transaction; so a
failure leaves no partial series behind and never stops the other tasks. The report lists every task's
outcome. When an upstream says its daily quota is spent, the remaining tasks for that upstream are
skipped rather than sent to be refused.

After the tasks, `finish` prunes old intraday bars, recomputes the rankings and, after a minute ingest,
raises alerts and sends their e-mails (`financial.services.alerts`). `watched_markets` is where the
watchlists feed minute ingests.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from sqlalchemy.exc import SQLAlchemyError

import lib
from financial import caching, storage
from financial.config import Settings
from financial.extensions import db
from financial.models import STOCK
from financial.services import alerts as alerts_service, metrics

log = logging.getLogger(__name__)

COMPACT_DAILY_DAYS = 140  # outputsize=compact returns 100 trading days, about 140 calendar days


@dataclass(frozen=True)
class InstrumentSpec:
    asset_class: str
    symbol: str
    exchange: str = ""
    base: str | None = None
    quote: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.exchange}:{self.symbol}" if self.exchange else self.symbol


@dataclass
class Series:
    """What a task fetched: the instrument, its bars, and a note for the report."""

    instrument: InstrumentSpec
    interval: lib.Interval
    bars: Sequence[lib.Bar]
    note: str = ""


@dataclass
class Task:
    label: str
    source: str
    fetch: Callable[[], Series]


@dataclass
class Outcome:
    label: str
    status: str  # "ok", "failed" or "skipped"
    rows: int = 0
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    steps: list[Outcome] = field(default_factory=list)  # what follows the instruments: retention, rankings, alerts
    alerts: alerts_service.Summary | None = None  # alerts raised and e-mails sent, after a minute ingest

    @property
    def ok(self) -> bool:
        return all(outcome.status == "ok" for outcome in self.outcomes + self.steps)

    @property
    def rows(self) -> int:
        return sum(outcome.rows for outcome in self.outcomes)

    def render(self) -> str:
        failed_steps = [o for o in self.steps if o.status != "ok"]  # a step is news only when it failed
        width = max([len(o.label) for o in self.outcomes + failed_steps] + [6])
        lines = [f"{'symbol':<{width}}  {'status':<7}  {'rows':>6}  detail"]
        for o in self.outcomes + failed_steps:
            lines.append(f"{o.label:<{width}}  {o.status:<7}  {o.rows:>6}  {o.detail}".rstrip())
        counts = {status: sum(o.status == status for o in self.outcomes) for status in ("ok", "failed", "skipped")}
        closing = (f"{len(self.outcomes)} instruments: {counts['ok']} ok, {counts['failed']} failed, "
                   f"{counts['skipped']} skipped; {self.rows} rows stored")
        lines.append(closing + (f"; {self.alerts.render()}" if self.alerts else ""))
        return "\n".join(lines)


def store_series(series: Series) -> int:
    """Write one instrument's bars in one transaction and make them visible to every reader."""
    session = db.session
    spec = series.instrument
    try:
        instrument = storage.get_or_create_instrument(
            session, spec.asset_class, spec.symbol, exchange=spec.exchange, base=spec.base, quote=spec.quote,
            name=spec.name)
        rows = storage.upsert_bars(session, storage.bar_rows(instrument.id, series.interval, series.bars))
        caching.commit_new_generation(session)
    except BaseException:
        session.rollback()
        raise
    return rows


def run(tasks: Iterable[Task], *, progress: Callable[[str], None] = lambda line: None) -> Report:
    """Run every task, each in isolation, and report what happened to each."""
    tasks = list(tasks)
    report = Report()
    spent_sources: set[str] = set()
    for number, task in enumerate(tasks, 1):
        started = time.monotonic()
        if task.source in spent_sources:
            outcome = Outcome(task.label, "skipped", detail=f"not fetched: the {task.source} daily quota is spent")
        else:
            outcome = _run_one(task, spent_sources)
        outcome.seconds = time.monotonic() - started
        report.outcomes.append(outcome)
        log.info("ingest %s: %s, %d rows in %.2fs %s", outcome.label, outcome.status, outcome.rows,
                 outcome.seconds, outcome.detail,
                 extra={"symbol": outcome.label, "status": outcome.status, "rows": outcome.rows,
                        "duration_s": round(outcome.seconds, 3)})
        progress(f"[{number}/{len(tasks)}] {outcome.label}: {outcome.status}, {outcome.rows} rows"
                 + (f" ({outcome.detail})" if outcome.detail else ""))
    return report


def _run_one(task: Task, spent_sources: set[str]) -> Outcome:
    try:
        series = task.fetch()
        if not series.bars and not series.note:
            return Outcome(task.label, "failed", detail="the upstream returned no bars")
        rows = store_series(series) if series.bars else 0
        return Outcome(task.label, "ok", rows, series.note)
    except lib.QuotaExhaustedError as exc:
        spent_sources.add(task.source)
        return Outcome(task.label, "failed", detail=str(exc))
    except lib.MarketDataError as exc:
        return Outcome(task.label, "failed", detail=f"{type(exc).__name__}: {exc}")
    except SQLAlchemyError as exc:
        log.exception("database error while storing %s", task.label)
        return Outcome(task.label, "failed", detail=f"database error: {type(exc).__name__}")
    except Exception as exc:  # a bug in one source or parser must not stop the other instruments
        log.exception("unexpected error while ingesting %s", task.label)
        # Only the type: an unexpected error's text may quote a URL, and with it an API key.
        return Outcome(task.label, "failed", detail=f"unexpected error: {type(exc).__name__} (see the log)")


# -- after the tasks: retention and rankings ---------------------------------------------------------

def watched_markets() -> list[str]:
    """Every market on any user's watchlist, as `exchange:pair` labels; minute ingests track them too."""
    # A connection of its own: the session's transaction must not stay open while the markets are fetched.
    with db.engine.connect() as connection:
        return [f"{exchange}:{pair}" for exchange, pair in storage.watched_markets(connection)]


def prune_intraday_bars(retention_days: int, *, now: dt.datetime | None = None,
                        batch_size: int = storage.UPSERT_BATCH, on_batch: Callable[[int], None] | None = None) -> int:
    """Delete intraday bars (1min to 60min, stocks and crypto) older than `retention_days`, in short
    transactions, then give the data a new generation if anything went. Daily bars are kept."""
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = (now - dt.timedelta(days=retention_days)).astimezone(dt.timezone.utc).replace(tzinfo=None)
    intraday = [interval for interval in lib.Interval if interval.is_intraday]
    deleted = storage.prune_bars(db.engine, intraday, cutoff, batch_size=batch_size, on_batch=on_batch)
    if deleted:
        caching.commit_new_generation(db.session)
    return deleted


def finish(report: Report, *, retention_days: int | None = None, progress: Callable[[str], None] = lambda line: None,
           now: dt.datetime | None = None, alerts: Settings | None = None) -> Report:
    """What follows the tasks of every ingest: prune intraday bars past `retention_days` (minute ingests
    pass it), recompute the rankings once, as of `now`, then (minute ingests pass `alerts`, the settings
    of the rule and of SMTP) raise the alerts due and send their e-mails. A failure is reported in
    `report.steps` (and fails the run); e-mails that could not be sent are not a failure of the run:
    they are kept and retried by the next one."""
    now = now or dt.datetime.now(dt.timezone.utc)
    steps: list[tuple[str, Callable[[], int]]] = []
    if retention_days is not None:
        steps.append(("(retention)", lambda: prune_intraday_bars(retention_days, now=now)))
    steps.append(("(rankings)", lambda: metrics.refresh_rankings(now=now)))
    if alerts is not None:
        def alert_step() -> int:
            report.alerts = alerts_service.run(alerts, now)
            if report.alerts.failed:
                progress(f"alerts: {report.alerts.failed} e-mail(s) not sent; the next run retries them")
            return report.alerts.raised
        steps.append(("(alerts)", alert_step))
    for label, step in steps:
        started = time.monotonic()
        try:
            rows = step()
            outcome = Outcome(label, "ok", rows)
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.exception("database error in %s", label)
            outcome = Outcome(label, "failed", detail=f"database error: {type(exc).__name__}")
        outcome.seconds = time.monotonic() - started
        report.steps.append(outcome)
        log.info("ingest %s: %s, %d rows in %.2fs", label, outcome.status, outcome.rows, outcome.seconds)
        if label == "(retention)" and outcome.rows:
            progress(f"retention: removed {outcome.rows} intraday bars older than {retention_days} days")
        elif outcome.status != "ok":
            progress(f"{label}: failed ({outcome.detail})")
    return report


# -- AlphaVantage -----------------------------------------------------------------------------------

def alphavantage_tasks(client: lib.AlphaVantageClient, symbols: Sequence[str], *, interval: lib.Interval,
                       days: int, now: dt.datetime | None = None) -> list[Task]:
    """One task per symbol: the bars of the last `days` days (daily or intraday)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = now - dt.timedelta(days=days)
    if interval is lib.Interval.DAY:
        cutoff = lib.bars.day_start(cutoff.date())
    return [Task(symbol, "alphavantage", _alphavantage_fetch(client, symbol, interval, days, cutoff))
            for symbol in symbols]


def _alphavantage_fetch(client: lib.AlphaVantageClient, symbol: str, interval: lib.Interval, days: int,
                        cutoff: dt.datetime) -> Callable[[], Series]:
    def fetch() -> Series:
        if interval is lib.Interval.DAY:
            full = days > COMPACT_DAILY_DAYS
            get = lambda size: client.daily(symbol, outputsize=size)  # noqa: E731
        else:
            full = days * 16 * 3600 / interval.seconds > lib.alphavantage.COMPACT_POINTS
            get = lambda size: client.intraday(symbol, interval, outputsize=size)  # noqa: E731
        note = ""
        try:
            bars = get("full" if full else "compact")
        except lib.errors.PremiumRequiredError:
            if not full:
                raise
            bars = get("compact")
            note = "only the latest 100 points: the full history is a premium feature for this key"
        if not bars:
            raise lib.errors.NotFoundError(f"no bars for {symbol}", source="alphavantage", symbol=symbol)
        recent = [bar for bar in bars if bar.timestamp >= cutoff]
        if not recent:
            note = note or f"no bars in the last {days} days (latest {bars[-1].timestamp:%Y-%m-%d %H:%M} UTC)"
        return Series(InstrumentSpec(STOCK, symbol.upper()), interval, recent, note)
    return fetch
