"""Real ingest worker processes (`get_raw_data.py --worker`) for the tests and the benchmark.

Each test session (and each benchmark run) works on a queue of its own (`unique_queue`), on a Redis
database kept for workers (TEST_BROKER_DB, 10), so that parallel sessions on one machine never take each
other's tasks. `Worker` starts one process, waits until Celery says it is ready, and reads back from its
log which tasks it ran.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO

import redis

from tests.conftest import REDIS_URL, missing_server

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "get_raw_data.py")
TEST_BROKER_DB = int(os.environ.get("TEST_BROKER_DB", "10"))
_RAN = re.compile(r"financial\.ingest\.runner: ingest (\S+): (\w+),")


def broker_url(db: int = TEST_BROKER_DB) -> str:
    return REDIS_URL.rsplit("/", 1)[0] + f"/{db}"


def require_broker(url: str) -> str:
    """`url`, once its Redis answers; skips locally (fails under CI=true) when it does not."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        missing_server(f"no Redis server for the workers' broker at {url}: {exc}")
    return url


def unique_queue(prefix: str = "test") -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def forget_queue(url: str, queue: str) -> None:
    """Delete the queue, its bindings and everything the workers kept under its name (results expire)."""
    client = redis.Redis.from_url(url)
    keys = [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}",
            *client.scan_iter(f"ingest:{queue}:*")]
    client.delete(*keys)
    client.close()


class Worker:
    """`get_raw_data.py --worker` with `env`, its output in `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, *, concurrency: int = 4,
                 args: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        self._log: IO[str] = open(log_path, "w")
        self.process = subprocess.Popen([sys.executable, SCRIPT, "--worker", "--concurrency", str(concurrency),
                                         *args], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        text=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 60) -> "Worker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"the worker was not ready within {timeout}s:\n{self.log()}")

    def ran(self) -> dict[str, str]:
        """{label: status} of the tasks this worker finished, from its log."""
        return {label: status for label, status in _RAN.findall(self.log())}

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (a warm shutdown), then SIGKILL if it is still there after `timeout`; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


def start_workers(count: int, env: dict[str, str], log_dir: Path, *, concurrency: int = 4,
                  args: tuple[str, ...] = ()) -> list[Worker]:
    """`count` workers, started together and ready."""
    workers = [Worker(env, log_dir / f"worker-{number}.log", concurrency=concurrency, args=args)
               for number in range(1, count + 1)]
    try:
        for worker in workers:
            worker.wait_ready()
    except AssertionError:
        for worker in workers:
            worker.stop(timeout=5)
        raise
    return workers
