"""What follows the tasks of a run, in one place: retention, rankings, alerts (as the plan decided).

1. retention: intraday bars (1min to 60min, stocks' and crypto's) older than the retention are deleted,
   in short transactions; daily bars are kept;
2. rankings: the standard windows are recomputed once, as of the run (`services.metrics`);
3. alerts (minute ingests): the alerts due are raised and their e-mails sent (`services.alerts`).

A failed step is reported in `report.steps` (and fails the run); e-mails that could not be sent are not
a failure of the run: they are kept and retried by the next one. This is the ingest's only way into the
services.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.exc import SQLAlchemyError

import lib
from financial.extensions import current_settings, db, db_session
from financial.ingest.report import Outcome, Report
from financial.ingest.runner import Progress, quiet
from financial.locks import LockBusy, exclusive
from financial.services import alerts, metrics
from financial.storage import bars
from financial.transactions import unit_of_work

log = logging.getLogger(__name__)
LOCK = "after-run"
LOCK_WAIT = 600  # seconds a run waits for another's after-run steps to finish


@dataclass(frozen=True)
class AfterRun:
    retention: dt.timedelta | None = None  # prune intraday bars older than this
    rankings: bool = True
    alerts: bool = False


def prune_intraday_bars(retention: dt.timedelta, *, now: dt.datetime | None = None, batch_size: int = bars.BATCH,
                        on_batch: Callable[[int], None] | None = None, touched: set[int] | None = None) -> int:
    """Delete intraday bars older than `retention` before `now`, then give the data a new generation if
    anything went; the instruments that lost bars are added to `touched`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff = (now - retention).astimezone(dt.timezone.utc).replace(tzinfo=None)
    intraday = [interval for interval in lib.Interval if interval.is_intraday]
    deleted = bars.prune(db.engine, intraday, cutoff, batch_size=batch_size, on_batch=on_batch, touched=touched)
    if deleted:
        with unit_of_work(changes_data=True):
            pass
    return deleted


def finish(report: Report, after: AfterRun = AfterRun(), *, progress: Progress = quiet,
           now: dt.datetime | None = None) -> Report:
    """Run the steps `after` asks for, as of `now`, and add their outcomes to `report`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    retention_days = after.retention.days if after.retention is not None else 0
    # The steps look again at what the run changed, when the report knows it (None: at everything).
    changed = report.changed
    steps: list[tuple[str, Callable[[], int]]] = []
    if after.retention is not None:
        retention = after.retention
        steps.append(("(retention)", lambda: prune_intraday_bars(retention, now=now, touched=changed)))
    if after.rankings:
        steps.append(("(rankings)", lambda: metrics.refresh_rankings(now=now, changed=changed)))
    if after.alerts:
        fresh = None if changed is None else set(changed)  # markets with new bars: not those only pruned

        def alert_step() -> int:
            report.alerts = alerts.run(current_settings(), now, markets=fresh)
            if report.alerts.failed:
                progress(f"alerts: {report.alerts.failed} e-mail(s) not sent; the next run retries them")
            return report.alerts.raised
        steps.append(("(alerts)", alert_step))
    # Never two at a time (two ingests, or two machines): each run's steps see what the one before stored.
    done = 0
    try:
        with exclusive(db.engine, LOCK, wait_seconds=LOCK_WAIT):
            for label, step in steps:
                _run_step(report, label, step, progress, retention_days)
                done += 1
    except (LockBusy, SQLAlchemyError) as exc:  # the lock could not be taken: the database is away
        detail = ("another run's after-run steps went on too long" if isinstance(exc, LockBusy)
                  else f"database error: {type(exc).__name__}")
        log.warning("after-run steps not run: %s", detail)
        for label, _ in steps[done:]:
            report.steps.append(Outcome(label, "failed", detail=detail))
            progress(f"{label}: failed ({detail})")
    return report


def _run_step(report: Report, label: str, step: Callable[[], int], progress: Progress, retention_days: int) -> None:
    started = time.monotonic()
    try:
        outcome = Outcome(label, "ok", step())
    except SQLAlchemyError as exc:
        db_session().rollback()
        log.exception("database error in %s", label)
        outcome = Outcome(label, "failed", detail=f"database error: {type(exc).__name__}")
    outcome.seconds = time.monotonic() - started
    report.steps.append(outcome)
    log.info("ingest %s: %s, %d rows in %.2fs", label, outcome.status, outcome.rows, outcome.seconds)
    if label == "(retention)" and outcome.rows:
        progress(f"retention: removed {outcome.rows} intraday bars older than {retention_days} days")
    elif outcome.status != "ok":
        progress(f"{label}: failed ({outcome.detail})")
