"""The enqueuing side: a plan's tasks sent to the workers, their outcomes collected into the same Report
the in-process runner makes, then the after-run steps, once for the batch.

- one message per task (symbol, market, file), after claiming the task's instrument: an instrument whose
  task from an earlier run is still queued or running is not sent again (reported as skipped);
- the outcomes come back as the tasks' results; progress lines are printed as they arrive, the summary
  keeps the plan's order, so it reads exactly as an in-process run's;
- a run never hangs: tasks not finished `timeout` seconds after sending are reported as failed by name
  (they expire unstarted in the queue; one already running may still store its series, whole);
- the after-run steps (retention, rankings, alerts) run here, after every task, under their lock in the
  database, so that two batches never run them at the same time;
- the broker unreachable: what could not be sent is reported as failed; results are waited for through
  a Redis outage until the deadline.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TextIO

import redis
from celery.exceptions import TimeoutError as ResultTimeout
from flask import Flask
from kombu.exceptions import OperationalError

import lib
from financial.config import Settings
from financial.ingest import after, runner
from financial.ingest.plan import Plan
from financial.ingest.report import Outcome, Report
from financial.ingest.tasks import Task
from financial.workers.app import TASK_NAME, celery_init_app
from financial.workers.messages import decode_outcome, encode_task
from financial.workers.shared import SharedState, connect

log = logging.getLogger(__name__)
POLL = 0.1  # seconds between looks at the results
BROKER_ERRORS = (redis.RedisError, OperationalError, OSError)
IN_FLIGHT = "not sent: its task from an earlier run is still queued or running"


def claim_name(message: Mapping[str, Any], task: Task) -> str:
    """What a task claims while in flight: its kind and label, to read, and a digest of all it asks for, so
    that the same ask (the same market, source, interval and window, tick after tick) is the same claim."""
    digest = hashlib.sha1(json.dumps(message, sort_keys=True).encode()).hexdigest()[:12]
    return f"{message['kind']}:{task.label}:{digest}"


@dataclass
class Sent:
    index: int  # in the plan
    task: Task
    task_id: str
    claim: str


class Batch:
    """Runs plans on the workers of the app's BROKER_URL; `timeout`: seconds a run waits for its tasks."""

    def __init__(self, app: Flask, settings: Settings, *, timeout: float | None = None) -> None:
        self.celery = celery_init_app(app)
        self.settings = settings
        self.timeout = float(timeout or settings.ingest_task_timeout)
        # A claim outlives the wait by the longest a task may run: a task taken just before the deadline
        # still counts as in flight. Claims of tasks never taken are released when the wait ends.
        self.claim_seconds = self.timeout + settings.ingest_task_timeout
        assert settings.broker_url
        self.shared = SharedState(connect(settings.broker_url), settings.ingest_queue)

    def close(self) -> None:
        self.shared.client.close()

    def send(self, tasks: Sequence[Task], *, expires: bool = True,
             progress: runner.Progress = runner.quiet) -> tuple[list[Sent], dict[int, Outcome]]:
        """Send what is not in flight already; the outcomes of the tasks not sent, by plan index."""
        sent: list[Sent] = []
        not_sent: dict[int, Outcome] = {}
        deadline = time.time() + self.timeout
        expiry = dt.datetime.fromtimestamp(deadline, dt.timezone.utc) if expires else None
        broker_down: str | None = None
        for index, task in enumerate(tasks):
            if broker_down:
                not_sent[index] = Outcome(task.label, "failed", detail=f"not sent: {broker_down}")
                continue
            message = encode_task(task)
            task_id, claim = str(uuid.uuid4()), claim_name(message, task)
            try:
                if not self.shared.claim(claim, task_id, self.claim_seconds):
                    not_sent[index] = Outcome(task.label, "skipped", detail=IN_FLIGHT)
                    continue
                self.celery.send_task(TASK_NAME, args=[message], kwargs={"claim": claim, "deadline": deadline},
                                      task_id=task_id, queue=self.settings.ingest_queue, expires=expiry)
            except BROKER_ERRORS as exc:
                broker_down = f"the broker is unreachable ({type(exc).__name__})"
                log.warning("cannot send ingest tasks: %s", exc)
                self.shared.release(claim, task_id)
                not_sent[index] = Outcome(task.label, "failed", detail=f"not sent: {broker_down}")
                continue
            sent.append(Sent(index, task, task_id, claim))
        for number, index in enumerate(sorted(not_sent), 1):
            progress(runner.progress_line(number, len(tasks), not_sent[index]))
        return sent, not_sent

    def collect(self, sent: Sequence[Sent], total: int, *, done: int = 0,
                progress: runner.Progress = runner.quiet) -> dict[int, Outcome]:
        """The outcomes of the tasks sent, as they finish; those not finished within the timeout, failed."""
        backend = self.celery.backend
        by_id = {item.task_id: item for item in sent}
        outcomes: dict[int, Outcome] = {}
        deadline = time.monotonic() + self.timeout
        warned = False
        while by_id and time.monotonic() < deadline:
            try:
                for task_id, meta in backend.get_many(list(by_id), timeout=min(1.0, deadline - time.monotonic()),
                                                      interval=POLL):
                    item = by_id.pop(task_id)
                    outcome = outcomes[item.index] = self.outcome_of(item.task, meta)
                    done += 1
                    progress(runner.progress_line(done, total, outcome))
            except ResultTimeout:
                continue
            except BROKER_ERRORS as exc:
                if not warned:
                    log.warning("cannot read the results (waiting until the deadline): %s", exc)
                    warned = True
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        for item in by_id.values():
            outcomes[item.index] = Outcome(item.task.label, "failed", detail=self.unfinished(item))
            done += 1
            progress(runner.progress_line(done, total, outcomes[item.index]))
        return outcomes

    def outcome_of(self, task: Task, meta: Mapping[str, Any]) -> Outcome:
        result = meta.get("result")
        if meta.get("status") == "SUCCESS" and isinstance(result, dict):
            if "configuration_error" in result:
                raise lib.errors.ConfigurationError(result["configuration_error"])
            return decode_outcome(result)
        if meta.get("status") == "REVOKED":
            return Outcome(task.label, "failed", detail=f"no worker took it within {self.timeout:g}s")
        kind = result.get("exc_type", "error") if isinstance(result, dict) else "error"
        return Outcome(task.label, "failed", detail=f"worker error: {kind} (see the worker's log)")

    def unfinished(self, item: Sent) -> str:
        """Why `item` has no outcome yet; a task never taken expires in the queue, so its claim goes."""
        try:
            state = self.celery.AsyncResult(item.task_id).state
        except BROKER_ERRORS:
            state = "UNKNOWN"
        if state in ("PENDING", "REVOKED"):
            self.shared.release(item.claim, item.task_id)
        if state == "STARTED":
            return f"a worker took it but did not finish it within {self.timeout:g}s"
        if state == "RETRY":
            return f"failed, and its retry did not finish within {self.timeout:g}s"
        return f"no worker took it within {self.timeout:g}s"

    def run(self, plan: Plan, *, progress: runner.Progress = runner.quiet) -> Report:
        """Send the plan's tasks, wait for them, then run its after-run steps: the run's Report."""
        sent, outcomes = self.send(plan.tasks, progress=progress)
        outcomes.update(self.collect(sent, len(plan.tasks), done=len(outcomes), progress=progress))
        report = Report(changed=set())
        for index in range(len(plan.tasks)):
            report.add(outcomes[index])
        return after.finish(report, plan.after, progress=progress)  # (under the after-run steps' own lock)

    def enqueue(self, plan: Plan, *, out: TextIO, progress: runner.Progress = runner.quiet) -> int:
        """`--no-wait`: send only (the tasks do not expire; no after-run steps); print how many went. The
        exit status: 1 when some could not be sent."""
        sent, not_sent = self.send(plan.tasks, expires=False, progress=progress)
        print(f"sent {len(sent)} of {len(plan.tasks)} tasks to the workers (queue {self.settings.ingest_queue})",
              file=out, flush=True)
        return 1 if any(outcome.status == "failed" for outcome in not_sent.values()) else 0
