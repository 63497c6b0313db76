"""Running tasks: each fetches everything before anything is written, then its series is stored in one
transaction with a new data generation, so a failure leaves no partial series behind and never stops the
other tasks. When an upstream says its daily quota is spent, the remaining tasks for that upstream are
skipped rather than sent to be refused. A configuration error (no API key) concerns every task alike: it
stops the run.

Celery workers (financial.workers) run each task through the same `run_one`; the outcome helpers below
(`quota_spent`, `log_outcome`, `progress_line`) are theirs too, so both read alike.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Callable, Iterable, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

import lib
from financial.extensions import current_settings, db
from financial.ingest.report import Outcome, Report
from financial.ingest.tasks import FetchContext, InstrumentSpec, NotFetched, Series, Task, utc_clock
from financial.models import Instrument
from financial.storage import bars, instruments
from financial.transactions import unit_of_work
from financial.upstreams import Upstreams

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def quiet(line: str) -> None:
    """The default progress: none."""


class DatabaseView:
    """The `Stored` of the tasks: one short read each, on a connection of its own, so that no transaction
    stays open while a task waits on its upstream."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def latest(self, instrument: InstrumentSpec, interval: lib.Interval) -> dt.datetime | None:
        with self.engine.connect() as connection:
            return bars.latest_time(connection, instrument.asset_class, instrument.symbol,
                                    exchange=instrument.exchange, interval=interval)

    def name_of(self, instrument: InstrumentSpec) -> str | None:
        with self.engine.connect() as connection:
            return connection.scalar(sa.select(Instrument.name).where(
                Instrument.asset_class == instrument.asset_class, Instrument.exchange == instrument.exchange,
                Instrument.symbol == instrument.symbol))


class StoredSeries(NamedTuple):
    instrument_id: int
    rows: int


def store_series(series: Series) -> StoredSeries:
    """Write one instrument's bars in one transaction and make them visible to every reader."""
    spec = series.instrument
    with unit_of_work(changes_data=True) as work:
        instrument = instruments.get_or_create(work.session, spec.asset_class, spec.symbol, exchange=spec.exchange,
                                               base=spec.base, quote=spec.quote, name=spec.name)
        rows = bars.upsert(work.session, bars.rows(instrument.id, series.interval, series.bars))
        return StoredSeries(instrument.id, rows)


def run(tasks: Iterable[Task], *, upstreams: Upstreams | None = None, clock: Callable[[], dt.datetime] = utc_clock,
        progress: Progress = quiet) -> Report:
    """Run every task, each in isolation, and report what happened to each. `upstreams` are the clients to
    fetch with (made for this run, and closed after it, when not given)."""
    tasks = list(tasks)
    owned = upstreams is None
    context = FetchContext(upstreams or Upstreams(current_settings()), DatabaseView(db.engine), clock)
    report = Report(changed=set())
    spent: set[str] = set()
    try:
        for number, task in enumerate(tasks, 1):
            started = time.monotonic()
            if task.upstream in spent:
                outcome = quota_spent(task)
            else:
                outcome = run_one(task, context)
                if outcome.quota_spent:
                    spent.add(task.upstream)
            outcome.seconds = time.monotonic() - started
            report.add(outcome)
            log_outcome(outcome)
            progress(progress_line(number, len(tasks), outcome))
    finally:
        if owned:
            context.upstreams.close()
    return report


def quota_note(upstream: str) -> str:
    return f"not fetched: the {upstream} daily quota is spent"


def quota_spent(task: Task) -> Outcome:
    """The outcome of a task not sent because its upstream's daily quota is spent."""
    return Outcome(task.label, "skipped", detail=quota_note(task.upstream))


def log_outcome(outcome: Outcome) -> None:
    log.info("ingest %s: %s, %d rows in %.2fs %s", outcome.label, outcome.status, outcome.rows,
             outcome.seconds, outcome.detail,
             extra={"symbol": outcome.label, "status": outcome.status, "rows": outcome.rows,
                    "duration_s": round(outcome.seconds, 3)})


def progress_line(number: int, total: int, outcome: Outcome) -> str:
    """`[3/10] IBM: ok, 10 rows`, as each task ends."""
    return (f"[{number}/{total}] {outcome.label}: {outcome.status}, {outcome.rows} rows"
            + (f" ({outcome.detail})" if outcome.detail else ""))


def run_one(task: Task, context: FetchContext) -> Outcome:
    """Fetch one task's series and store it; what happened, as an outcome (never raises, except for a
    configuration error, which concerns the whole run)."""
    try:
        series = task.fetch(context)
        if not series.bars and not series.note:
            return Outcome(task.label, "failed", detail="the upstream returned no bars")
        if not series.bars:
            return Outcome(task.label, "ok", 0, series.note)
        stored = store_series(series)
        return Outcome(task.label, "ok", stored.rows, series.note, instrument_id=stored.instrument_id)
    except lib.errors.ConfigurationError:
        raise
    except NotFetched as exc:
        return Outcome(task.label, "skipped", detail=str(exc))
    except lib.QuotaExhaustedError as exc:
        return Outcome(task.label, "failed", detail=str(exc), quota_spent=True)
    except lib.MarketDataError as exc:
        return Outcome(task.label, "failed", detail=f"{type(exc).__name__}: {exc}", retryable=exc.retryable)
    except SQLAlchemyError as exc:
        log.exception("database error while storing %s", task.label)
        return Outcome(task.label, "failed", detail=f"database error: {type(exc).__name__}")
    except Exception as exc:  # a bug in one source or parser must not stop the other instruments
        log.exception("unexpected error while ingesting %s", task.label)
        # Only the type: an unexpected error's text may quote a URL, and with it an API key.
        return Outcome(task.label, "failed", detail=f"unexpected error: {type(exc).__name__} (see the log)")
