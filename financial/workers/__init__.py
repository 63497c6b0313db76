"""Ingest on Celery workers, for deployments that outgrow one process: with BROKER_URL set, the ingest
command sends one task per symbol, market or file to the workers, waits for them and prints the same
summary; `--every N` is then the one scheduler that enqueues each tick. Without BROKER_URL nothing here
is imported and the ingest runs in-process.

    messages  tasks and outcomes as JSON
    app       the Celery app, bound to the Flask app (tasks run inside its context), and its configuration
    execute   the worker's side of a task: `runner.run_one` with the worker's long-lived clients
    shared    what the processes share through Redis: pacing, spent quotas, the tasks in flight
    batch     the enqueuing side: send, wait, collect the outcomes, then the after-run steps once
    worker    `get_raw_data.py --worker`: the worker process

The tasks themselves are the in-process ones (financial.ingest): a worker stores a series exactly as an
in-process run does, in one transaction.
"""
