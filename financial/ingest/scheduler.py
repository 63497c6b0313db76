"""One ingest run (plan, tasks, after-run steps, summary), and the scheduler that repeats it.

The scheduler (`--every N`) owns its upstream clients for the life of the process, so an exchange's
market list is loaded once and connections are reused; it closes them when it stops. A run that overlaps
the next tick delays it (ticks are skipped, never queued); a run already going on elsewhere (another
scheduler: a lock in the database, across machines on MySQL) makes this one skip; an upstream or
database outage is logged and tried again at the next tick.

With workers (BROKER_URL), a `batch` (financial.workers.batch.Batch) runs the plan instead: the tasks go
to the workers, the summary and the after-run steps stay here. The scheduler is then the one process that
enqueues each tick, under the same lock.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Protocol, TextIO

import lib
from financial.config import Settings
from financial.extensions import db, db_session
from financial.ingest import after, runner
from financial.ingest.plan import IngestRequest, Plan, plan_run
from financial.ingest.report import Report
from financial.locks import LockBusy, exclusive
from financial.upstreams import Upstreams

log = logging.getLogger(__name__)
LOCK = "scheduled-ingest"


class Batch(Protocol):
    """Runs a plan elsewhere (on workers) and reports it, after-run steps included."""

    def run(self, plan: Plan, *, progress: runner.Progress = runner.quiet) -> Report: ...


def run_once(request: IngestRequest, settings: Settings, upstreams: Upstreams, *, out: TextIO,
             progress: runner.Progress = runner.quiet, batch: Batch | None = None) -> Report:
    """Plan the run, run its tasks (here, or as `batch` on workers) and after-run steps, and print the
    summary to `out`."""
    started = time.monotonic()
    plan = plan_run(request, settings)
    if batch is not None:
        report = batch.run(plan, progress=progress)
    else:
        report = runner.run(plan.tasks, upstreams=upstreams, progress=progress)
        after.finish(report, plan.after, progress=progress)
    print(report.render(), file=out, flush=True)
    log.info("ingest run finished in %.1fs: %d instruments, %d rows, %s", time.monotonic() - started,
             len(report.outcomes), report.rows, "ok" if report.ok else "with failures")
    return report


def run_every(seconds: float, request: IngestRequest, settings: Settings, stop: threading.Event, *, out: TextIO,
              progress: runner.Progress = runner.quiet, heartbeat: Path | None = None,
              max_runs: int | None = None, batch: Batch | None = None) -> int:
    """Run every `seconds` until `stop` is set (or `max_runs` runs); the exit status of the last run."""
    runs, last_code = 0, 0
    next_start = time.monotonic()
    with Upstreams(settings) as upstreams:
        while not stop.is_set():
            try:
                with exclusive(db.engine, LOCK):
                    report = run_once(request, settings, upstreams, out=out, progress=progress, batch=batch)
                    last_code = 0 if report.ok else 1
            except LockBusy:
                log.warning("another ingest holds the scheduler lock; skipping this run")
            except lib.errors.ConfigurationError:
                raise
            except Exception:  # an outage must not end the scheduler; the next tick tries again
                log.exception("ingest run failed; retrying at the next tick")
                db_session().rollback()
                last_code = 1
            runs += 1
            if heartbeat:
                heartbeat.touch()
            if max_runs and runs >= max_runs:
                break
            next_start += seconds
            now = time.monotonic()
            if next_start < now:
                skipped = int((now - next_start) // seconds) + 1
                log.warning("the run took longer than --every; skipping %d tick(s)", skipped)
                next_start += skipped * seconds
            stop.wait(next_start - now)
    return last_code
