"""The worker's side of a task: run it exactly as the in-process runner does (`runner.run_one`: fetch, then
one transaction), with the worker's long-lived clients, and send its outcome back.

Each worker process keeps one `WorkerContext` for its life, shared by its threads: the upstream clients
(an exchange's market list loads once, connections are reused), paced through Redis with every other
worker, and closed when the worker shuts down.

Retries: the clients already retry a failing call with backoff (`lib.http.RetryPolicy`, a few seconds in
all). A task that still failed for a reason that may pass (network, 5xx, rate limit) is sent again later,
up to MAX_RETRIES times, 5 s then 15 s later, possibly to another worker (another connection, another
route) — but only if that still fits before the run stops waiting, and never later than a quarter of the
visibility timeout (a message waiting for its retry time is held unacknowledged, and would otherwise be
handed out again). Permanent errors are never retried.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Task

import lib
from financial.extensions import current_settings, db
from financial.ingest import runner
from financial.ingest.tasks import FetchContext, utc_clock
from financial.upstreams import Upstreams
from financial.workers.messages import decode_task, encode_outcome
from financial.workers.shared import SharedState, connect

log = logging.getLogger(__name__)
MAX_RETRIES = 2
RETRY_DELAY = 5.0  # seconds before the first retry; each later one waits three times longer


class WorkerContext:
    def __init__(self) -> None:
        settings = current_settings()
        self.settings = settings
        assert settings.broker_url
        self.shared = SharedState(connect(settings.broker_url), settings.ingest_queue)
        self.upstreams = Upstreams(settings, limiter_for=self.shared.limiter)
        self.fetch = FetchContext(self.upstreams, runner.DatabaseView(db.engine), utc_clock)

    def close(self) -> None:
        self.upstreams.close()
        self.shared.client.close()


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def worker_context() -> WorkerContext:
    """This process's context, made by the first task (inside the app context)."""
    global _context
    with _context_lock:
        if _context is None:
            _context = WorkerContext()
        return _context


def close_worker_context(**_: Any) -> None:
    """At worker shutdown: close the clients (a Celery signal handler)."""
    global _context
    with _context_lock:
        if _context is not None:
            _context.close()
            _context = None


def run_task(self: Task, message: dict[str, Any], *, claim: str, deadline: float) -> dict[str, Any]:
    """The Celery task: one ingest task, its outcome as JSON. `claim` names the in-flight claim to release
    once done; `deadline` (epoch seconds) is when the sender stops waiting."""
    context = worker_context()
    try:
        task = decode_task(message)
    except ValueError:  # from a sender of another version: the run reports it as a worker error
        context.shared.release(claim, self.request.id)
        raise
    started = time.monotonic()
    try:
        if context.shared.quota_spent(task.upstream):
            outcome = runner.quota_spent(task)
        else:
            outcome = runner.run_one(task, context.fetch)
    except lib.errors.ConfigurationError as exc:  # concerns every task alike: the sender stops the run
        context.shared.release(claim, self.request.id)
        return {"configuration_error": str(exc)}
    if outcome.quota_spent:
        context.shared.mark_quota_spent(task.upstream)
    outcome.seconds = time.monotonic() - started
    if outcome.retryable and self.request.retries < MAX_RETRIES:
        delay = min(RETRY_DELAY * 3 ** self.request.retries, context.settings.ingest_task_timeout / 4)
        if time.time() + delay + outcome.seconds < deadline:
            log.info("ingest %s: %s; trying again in %.0fs", task.label, outcome.detail, delay)
            raise self.retry(countdown=delay, max_retries=MAX_RETRIES)
    runner.log_outcome(outcome)
    context.shared.release(claim, self.request.id)
    return encode_outcome(outcome)
