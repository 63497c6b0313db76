"""`python -m bench.signups`: a sign-up flood against real gunicorn on MariaDB + Redis, and what it does to
cached reads.

Eight clients loop `POST /api/auth/signup` for `--seconds` while one client reads a cached GET
(/api/metrics) in a loop; reported per scenario: accounts created, refusals (429 limit, 503 hashing busy)
and the cached GET's median and 95th percentile, beside the same GET with no flood. Scenarios:
- `one-address`: every sign-up from one address, the default SIGNUP_LIMIT_PER_HOUR (10);
- `many-addresses`: each sign-up from its own address (X-Forwarded-For, TRUSTED_PROXIES=1), so the limit
  never bites and only the hashing limit stands between the flood and the reads.
The server runs as in production (APP_ENV=production, real Argon2id cost), with
`-c conf/gunicorn.conf.py --worker-class gthread --threads 8` and 2 workers.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

from bench.run import ROOT, free_port, stop_server
from bench.workers import fresh_database
from tests.conftest import REDIS_URL

READ = "/api/metrics"


def start(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                                "--worker-class", "gthread", "--threads", "8", "-b", f"127.0.0.1:{port}", "app:app"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not become ready")


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def read_latencies(base: str, stop: threading.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        assert status_of(urllib.request.Request(base + READ)) == 200
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def flood(base: str, seconds: float, distinct: bool) -> tuple[dict[int, int], list[float]]:
    stop, counts, lock = threading.Event(), {}, threading.Lock()

    def client(number: int) -> None:
        sent = 0
        while not stop.is_set():
            sent += 1
            headers = {"Content-Type": "application/json"}
            if distinct:
                headers["X-Forwarded-For"] = f"10.{number}.{sent // 250}.{sent % 250}"
            body = json.dumps({"email": f"f{uuid.uuid4().hex[:12]}@example.com",
                               "password": "correct horse battery staple"}).encode()
            status = status_of(urllib.request.Request(base + "/api/auth/signup", data=body, headers=headers))
            with lock:
                counts[status] = counts.get(status, 0) + 1

    with concurrent.futures.ThreadPoolExecutor(9) as pool:
        reader = pool.submit(read_latencies, base, stop)
        clients = [pool.submit(client, number) for number in range(8)]
        time.sleep(seconds)
        stop.set()
        for future in clients:
            future.result()
        return counts, reader.result()


def summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {"reads": len(ordered), "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[int(len(ordered) * 0.95)], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=13.0)
    args = parser.parse_args(argv)
    results = []
    for scenario, distinct in (("one-address", False), ("many-addresses", True)):
        url = fresh_database("mysql", ROOT / "data")
        env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": "bench-secret", "DATABASE_URL": url,
               "REDIS_URL": REDIS_URL, "CACHE_KEY_PREFIX": f"mdt-bench-{uuid.uuid4().hex[:8]}:", "LOG_DIR": "",
               "LOG_LEVEL": "warning", "ENV_FILE": os.devnull, "WEB_CONCURRENCY": "2", "AUTO_MIGRATE": "false",
               "TRUSTED_PROXIES": "1" if distinct else "0", "SIGNUP_LIMIT_PER_HOUR": "10"}
        process, base = start(env)
        try:
            status_of(urllib.request.Request(base + READ))  # warm: the answer is cached from here on
            stop = threading.Event()
            timer = threading.Timer(3.0, stop.set)
            timer.start()
            quiet = summary(read_latencies(base, stop))
            counts, during = flood(base, args.seconds, distinct)
        finally:
            stop_server(process)
        results.append({"scenario": scenario, "seconds": args.seconds, "statuses": counts,
                        "created": counts.get(201, 0), "quiet": quiet, "during": summary(during)})
        print(json.dumps(results[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
