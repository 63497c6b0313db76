"""Gunicorn settings, from the environment (the Dockerfile and compose files use this file).

    GUNICORN_BIND (default $HOST:$PORT, 0.0.0.0:5000), WEB_CONCURRENCY (workers, default: CPU count),
    GUNICORN_THREADS (threads per worker, default 8), GUNICORN_TIMEOUT (30), GUNICORN_MAX_REQUESTS
    (0: never recycle).

Workers are gunicorn's threaded ones (financial.serving.JsonThreadWorker), so a request that hashes a
password does not hold up the cached reads of the same process. What gunicorn answers itself (a request
line over 4 KiB: 414, a header over 8 KiB or more than 100 headers: 431, an unparsable request: 400) is the
API's JSON envelope, and its log lines go through the app's formatter (financial.serving.JsonLogger: JSON
in production).
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "financial.serving.JsonThreadWorker"
logger_class = "financial.serving.JsonLogger"
# gunicorn's defaults, stated: conf/nginx.conf lets headers of up to 8 KiB through as well (its request
# line may be longer, up to 8 KiB; every URL the API serves is far under 4 KiB).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
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
