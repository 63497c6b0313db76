"""Gunicorn settings, from the environment (the Dockerfile and compose files use this file).

    GUNICORN_BIND (default $HOST:$PORT, 0.0.0.0:5000), WEB_CONCURRENCY (workers, default: CPU count),
    GUNICORN_THREADS (1: sync workers), GUNICORN_TIMEOUT (30), GUNICORN_MAX_REQUESTS (0: never recycle).
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
backlog = 2048
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# The app logs every request itself (with request id and duration); gunicorn's access log would double it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Load the app once in the master: migrations run once, workers fork ready to serve (the app drops
# the master's database connections in each child: financial.register_extensions).
preload_app = True
