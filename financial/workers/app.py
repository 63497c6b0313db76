"""The Celery app of the ingest, bound to a Flask app (Flask's "Background Tasks with Celery" pattern):
`celery_init_app(app)` configures Celery from the app's settings and makes every task run inside the
app's context, where the database, the cache and the settings are.

How the configuration serves the ingest:
- the broker and the result backend are the Redis of BROKER_URL, a database apart from the cache's;
  messages and results are JSON (financial.workers.messages), never pickle;
- a task is acknowledged only once it has finished (`task_acks_late`), so a worker that dies mid-task (even
  by SIGKILL) leaves its message to be delivered to another: Redis hands an unacknowledged message out
  again once INGEST_TASK_TIMEOUT seconds have passed (the visibility timeout), which must therefore be
  longer than the longest task; the workers look for such messages every quarter of it (at most 10 s);
  a worker never takes more tasks than it has threads (prefetch 1);
- tasks are marked started, so a run that stops waiting can tell "never taken" from "still running";
- connections to the broker are retried for ever, at start-up too: a worker or a scheduler outlives a
  Redis restart; storing a result is retried for a few minutes.
"""
from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from financial.config import Settings

TASK_NAME = "financial.ingest.run_task"
RESULT_KEEP = 3600  # seconds a result stays in Redis at least (a run reads it as soon as it is there)


def celery_config(settings: Settings) -> dict[str, Any]:
    assert settings.broker_url, "the Celery app needs BROKER_URL"
    prefix = f"ingest:{settings.ingest_queue}:"
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.broker_url,
        "task_default_queue": settings.ingest_queue,
        "task_serializer": "json", "result_serializer": "json", "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            "visibility_timeout": settings.ingest_task_timeout,
            # The list of messages handed out and not yet acknowledged, per queue: workers of a deployment
            # whose timeout is shorter never hand out again what another deployment's workers are running.
            "unacked_key": f"{prefix}unacked", "unacked_index_key": f"{prefix}unacked_index",
            "unacked_mutex_key": f"{prefix}unacked_mutex",
            # How soon a worker looks for messages whose worker died: every quarter of the visibility
            # timeout (at most every 10 s), each look a real one (kombu's default scans every tenth).
            "unacked_restore_interval": max(1, min(10, settings.ingest_task_timeout // 4)),
            "unacked_restore_throttle": 1,
            # A broker gone without closing the connection (failover, NAT) is noticed, not waited on.
            "socket_timeout": 30, "socket_connect_timeout": 5,
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                      "interval_max": 1},
        "redis_socket_timeout": 5, "redis_socket_connect_timeout": 2,
        "result_expires": max(RESULT_KEEP, 2 * settings.ingest_task_timeout),
        "result_backend_always_retry": True, "result_backend_max_retries": 30,
        "worker_hijack_root_logger": False,  # the app's own logging (JSON in production) stays
        "worker_cancel_long_running_tasks_on_connection_loss": False,  # a task in progress finishes
        "worker_send_task_events": False,
    }


def celery_init_app(app: Flask) -> Celery:
    """The app's Celery app, made once and kept in `app.extensions["celery"]`."""
    if "celery" in app.extensions:
        return app.extensions["celery"]

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(app.config["SETTINGS"]))
    from financial.workers.execute import run_task
    celery.task(name=TASK_NAME, bind=True)(run_task)
    app.extensions["celery"] = celery
    return celery
