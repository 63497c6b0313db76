"""`python get_raw_data.py --worker [--concurrency N]`: a Celery worker running ingest tasks.

A worker runs N tasks at once on threads (the `threads` pool): an ingest task spends its time waiting on
its upstream, so threads, not processes, keep a core busy. It takes tasks from INGEST_QUEUE only, no more
than it has threads. Its node name is `ingest-<pid>@<host>`, so several workers can share a machine.

`--heartbeat FILE` touches FILE on each of the worker's heartbeats (every 2 s while it is connected to the
broker): a container health check can tell a worker cut off from Redis from a working one. SIGTERM asks
for a warm shutdown (tasks in progress finish; those it had taken but not started go back to the queue);
the upstream clients are closed at shutdown.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from celery.signals import heartbeat_sent, worker_shutdown
from flask import Flask

from financial.workers.app import celery_init_app
from financial.workers.execute import close_worker_context

DEFAULT_CONCURRENCY = 8


def node_name() -> str:
    return f"ingest-{os.getpid()}@{socket.gethostname()}"


def run_worker(app: Flask, *, concurrency: int = DEFAULT_CONCURRENCY, heartbeat: Path | None = None) -> int:
    """Run the worker until it is asked to stop; its exit status."""
    settings = app.config["SETTINGS"]
    celery = celery_init_app(app)
    worker_shutdown.connect(close_worker_context, weak=False)
    if heartbeat is not None:
        def beat(**_: object) -> None:
            heartbeat.touch()
        heartbeat_sent.connect(beat, weak=False)
    argv = ["worker", "--pool", "threads", "--concurrency", str(concurrency), "--queues", settings.ingest_queue,
            "--hostname", node_name(), "--without-gossip", "--without-mingle", "--loglevel", settings.log_level]
    return celery.start(argv=argv) or 0
