"""Ingest on real Celery workers: `get_raw_data.py --worker` processes and the ingest command with
BROKER_URL, against the Redis on this machine (a database of the workers' own, a queue per session) and
the fake upstreams (which answer each call a little late, as a real upstream does, and time each call).

Never eager mode: every task goes through Redis to another process. The workers' visibility timeout is
short here (INGEST_TASK_TIMEOUT=8), so a task whose worker died is handed out again within seconds.
"""
from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import redis

from financial import create_app
from financial.extensions import db
from tests.conftest import base_settings, env_for
from tests.fakes.alphavantage import FakeAlphaVantage
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.exchanges import FakeKraken
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.fakes.server import FakeServer, Timed, most_in_any_window
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.test_crypto_cli import last_day, minute_with_room
from tests.integration.test_crypto_ingest import rows_of, stored
from tests.integration.test_get_raw_data_cli import cli, summary
from tests.processes import (ROOT, SCRIPT, TEST_BROKER_DB, broker_url, forget_queue, require_broker, start_workers,
                             unique_queue)

UTC = dt.timezone.utc
VISIBILITY = 8  # INGEST_TASK_TIMEOUT of the test workers
MARKETS = 40
SYMBOLS = [f"S{number:02d}" for number in range(24)]
QUOTA_SPENT = "not fetched: the alphavantage daily quota is spent"
IN_FLIGHT = "not sent: its task from an earlier run is still queued or running"


def markets(*numbers: int) -> list[str]:
    return [f"kraken:c{number}usd" for number in numbers]


@pytest.fixture(scope="module")
def upstreams():
    """Cryptowatch (MARKETS markets), AlphaVantage (SYMBOLS) and Kraken, each behind a `Timed` wrapper; the
    minute candles run half an hour past now, so that every test of the module finds the same closed ones."""
    now = dt.datetime.now(UTC)
    end = floor_time(now, 60) + dt.timedelta(minutes=30)
    cryptowatch = FakeCryptowatch(allowance=1e9)
    candles = {}
    for number in range(MARKETS):
        candles[f"kraken:c{number}usd"] = minute_bars(f"c{number}", end=end, count=1530, start_price=100 + number)
        cryptowatch.add_ohlc("kraken", f"c{number}usd", candles[f"kraken:c{number}usd"])
    alphavantage = FakeAlphaVantage(api_key="test-key")
    days = {symbol: daily_bars(symbol, end=now.date() - dt.timedelta(days=1), count=30) for symbol in SYMBOLS}
    for symbol, bars in days.items():
        alphavantage.add_daily(symbol, bars)
    kraken = FakeKraken()
    for key in ("XXBTZUSD", "XETHZUSD", "SOLUSD", "XXBTZEUR"):
        kraken.add_ohlc(key, minute_bars(key, end=end, count=900, start_price=500.0, price_decimals=2))
    timed = {"cryptowatch": Timed(cryptowatch, delay=0.1), "alphavantage": Timed(alphavantage, delay=0.05),
             "kraken": Timed(kraken, delay=0.05)}
    with FakeServer(timed["cryptowatch"]) as cw, FakeServer(timed["alphavantage"]) as av, \
            FakeServer(timed["kraken"]) as kr:
        yield SimpleNamespace(timed=timed, candles=candles, days=days, alphavantage=alphavantage,
                              env={"CRYPTOWATCH_BASE_URL": cw.url, "ALPHAVANTAGE_BASE_URL": av.url,
                                   "ALPHAVANTAGE_API_KEY": "test-key", "EXCHANGE_BASE_URLS": f"kraken={kr.url}"})


def cluster_of(tmp: Path, upstreams, *, workers: int = 2, concurrency: int = 4, broker: str | None = None,
               **env: str) -> SimpleNamespace:
    """A database, a queue and `workers` worker processes on them; `env` for the ingest command."""
    url = require_broker(broker_url())
    queue = unique_queue()
    settings = base_settings(database_url=f"sqlite:///{tmp / 'workers.db'}")
    app = create_app(settings, process="test")  # the schema, before the workers start
    command_env = env_for(settings, BROKER_URL=broker or url, INGEST_QUEUE=queue,
                          INGEST_TASK_TIMEOUT=str(VISIBILITY), **upstreams.env, **env)
    worker_env = {**command_env, "LOG_LEVEL": "INFO"}
    started = start_workers(workers, worker_env, tmp, concurrency=concurrency) if workers else []
    return SimpleNamespace(url=url, queue=queue, settings=settings, app=app, env=command_env, worker_env=worker_env,
                           workers=started, tmp=tmp)


def shut(cluster: SimpleNamespace) -> None:
    for worker in cluster.workers:
        worker.stop()
    forget_queue(cluster.url, cluster.queue)
    with cluster.app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, upstreams):
    """Two workers of four threads, pacing AlphaVantage and Kraken at 0.25 s between calls, all together."""
    made = cluster_of(tmp_path_factory.mktemp("cluster"), upstreams, ALPHAVANTAGE_MIN_INTERVAL="0.25",
                      EXCHANGE_MIN_INTERVAL="0.25")
    yield made
    shut(made)


def in_process_env(tmp: Path, upstreams, **env: str) -> dict[str, str]:
    settings = base_settings(database_url=f"sqlite:///{tmp / 'in-process.db'}")
    return env_for(settings, **upstreams.env, **env)


def progress_of(stderr: str) -> list[str]:
    """The progress lines without their numbers (workers finish tasks in any order)."""
    return sorted(line.split("] ", 1)[1] for line in stderr.splitlines() if line.startswith("["))


def test_two_workers_share_the_markets_and_the_run_reads_as_an_in_process_run(cluster, upstreams, tmp_path):
    names = markets(*range(12))
    now = minute_with_room(10)
    spread = cli(cluster.env, "--source", "cryptowatch", "--markets", ",".join(names))
    alone = cli(in_process_env(tmp_path, upstreams), "--source", "cryptowatch", "--markets", ",".join(names))
    assert spread.returncode == alone.returncode == 0, spread.stderr
    assert spread.stdout == alone.stdout  # the same summary, line for line, in the plan's order
    assert progress_of(spread.stderr) == progress_of(alone.stderr)
    want = {name: last_day(upstreams.candles[name], now) for name in names}
    table, closing = summary(spread.stdout)
    assert table == {name: ("ok", len(want[name]), "") for name in names}
    assert closing.startswith(f"12 instruments: 12 ok, 0 failed, 0 skipped; {sum(map(len, want.values()))} rows")
    ran = [worker.ran() for worker in cluster.workers]
    assert all(ran) and not set(ran[0]) & set(ran[1]), ran  # both worked, no task ran twice
    assert set(ran[0]) | set(ran[1]) == set(names)
    for name in names[:3]:
        assert stored(cluster.app, "kraken", name.split(":")[1]) == rows_of(want[name])


def test_alphavantage_pacing_holds_for_both_workers_together(cluster, upstreams):
    """ALPHAVANTAGE_MIN_INTERVAL=0.25 on two workers of four threads: never more than 4 calls in any second,
    measured where the calls arrive."""
    timed = upstreams.timed["alphavantage"]
    started = time.monotonic()
    result = cli(cluster.env, "--symbols", ",".join(SYMBOLS[:16]))
    assert result.returncode == 0, result.stdout + result.stderr
    arrivals = [stamp for stamp in timed.arrivals("/query") if stamp >= started]
    assert len(arrivals) == 16
    assert most_in_any_window(arrivals, 1.0) <= 4
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert min(gaps) > 0.2, gaps
    ran = [worker.ran() for worker in cluster.workers]
    assert {len(set(SYMBOLS[:16]) & set(done)) > 0 for done in ran} == {True}  # both workers called


def test_exchange_pacing_holds_for_both_workers_together(cluster, upstreams):
    """EXCHANGE_MIN_INTERVAL for Kraken through ccxt: every call (market lists and candles alike)."""
    timed = upstreams.timed["kraken"]
    started = time.monotonic()
    result = cli(cluster.env, "--source", "exchange", "--markets", "kraken:btcusd,kraken:ethusd,kraken:solusd,"
                                                                   "kraken:btceur")
    assert result.returncode == 0, result.stdout + result.stderr
    arrivals = [stamp for stamp in timed.arrivals("/0/public/") if stamp >= started]
    assert len(arrivals) >= 6  # at least one market list and four candle pages
    assert most_in_any_window(arrivals, 1.0) <= 4


def test_a_quota_spent_seen_by_one_worker_stops_the_others(cluster, upstreams):
    fake = upstreams.alphavantage
    first = len(fake.calls())
    fake.quota = fake.served + 3  # three more calls answered, then the daily-limit notice
    try:
        result = cli(cluster.env, "--symbols", ",".join(SYMBOLS[16:24]))
    finally:
        fake.quota = None
        redis.Redis.from_url(cluster.url).delete(f"ingest:{cluster.queue}:quota:alphavantage")
    assert result.returncode == 1
    table, closing = summary(result.stdout)
    statuses = sorted(status for status, _, _ in table.values())
    assert statuses == ["failed"] + ["ok"] * 3 + ["skipped"] * 4, table
    assert {detail for status, _, detail in table.values() if status == "skipped"} == {QUOTA_SPENT}
    assert [detail.startswith("daily quota spent") for status, _, detail in table.values()
            if status == "failed"] == [True]
    assert len(fake.calls()) - first == 4  # no worker called again once one was told


def test_retryable_failures_are_tried_again_and_permanent_ones_are_not(cluster, upstreams):
    fake = upstreams.alphavantage
    fake.scenarios.update({"S00": "fail_then_ok:5", "S01": "unknown"})  # 5 > the client's 4 attempts
    try:
        before = {symbol: len(fake.calls(symbol)) for symbol in ("S00", "S01")}
        result = cli(cluster.env, "--symbols", "S00,S01", "--timeout", "30")
    finally:
        fake.scenarios.clear()
    table, _ = summary(result.stdout)
    assert table["S00"][0] == "ok" and table["S01"][0] == "failed", result.stdout
    assert len(fake.calls("S00")) - before["S00"] == 6  # 4 by the client, then the task again: 1 more + ok
    assert len(fake.calls("S01")) - before["S01"] == 1


def test_a_market_still_in_flight_is_not_sent_again_by_the_next_tick(cluster, upstreams):
    slow, quick = markets(20, 21)
    timed = upstreams.timed["cryptowatch"]
    timed.slow[f"/markets/kraken/{slow.split(':')[1]}/ohlc"] = 5.0
    try:
        result = cli(cluster.env, "--source", "cryptowatch", "--markets", f"{slow},{quick}", "--every", "1",
                     "--max-runs", "3", "--timeout", "1")
    finally:
        timed.slow.clear()
    ticks = [summary("symbol" + part) for part in result.stdout.split("symbol")[1:]]
    assert len(ticks) == 3, result.stdout
    first, second, _ = (table for table, _ in ticks)
    assert first[slow] == ("failed", 0, "a worker took it but did not finish it within 1s")
    assert first[quick][0] == "ok" and second[quick][0] == "ok"
    assert second[slow] == ("skipped", 0, IN_FLIGHT)
    path = f"/markets/kraken/{slow.split(':')[1]}/ohlc"
    assert sum(1 for _, called in timed.times if called == path) == 1  # one task for it, in three ticks
    deadline = time.monotonic() + 10
    while stored(cluster.app, "kraken", slow.split(":")[1]) == {} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(stored(cluster.app, "kraken", slow.split(":")[1])) > 1000  # the slow task did finish, whole
    assert wait_for_no_claims(cluster) == []


def wait_for_no_claims(cluster, seconds: float = 5) -> list[bytes]:
    client = redis.Redis.from_url(cluster.url)
    deadline = time.monotonic() + seconds
    while (claims := list(client.scan_iter(f"ingest:{cluster.queue}:inflight:*"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return claims


def test_no_wait_sends_once_and_a_queued_task_is_not_sent_twice(tmp_path, upstreams):
    nobody = cluster_of(tmp_path, upstreams, workers=0)
    try:
        names = ",".join(markets(30, 31))
        first = cli(nobody.env, "--source", "cryptowatch", "--markets", names, "--no-wait")
        again = cli(nobody.env, "--source", "cryptowatch", "--markets", names, "--no-wait")
        assert (first.returncode, first.stdout) == (0, f"sent 2 of 2 tasks to the workers (queue {nobody.queue})\n")
        assert (again.returncode, again.stdout) == (0, f"sent 0 of 2 tasks to the workers (queue {nobody.queue})\n")
        assert redis.Redis.from_url(nobody.url).llen(nobody.queue) == 2
        waited = cli(nobody.env, "--source", "cryptowatch", "--markets", names + ",kraken:c32usd", "--timeout", "2")
        table, _ = summary(waited.stdout)
        assert waited.returncode == 1
        assert table == {"kraken:c30usd": ("skipped", 0, IN_FLIGHT), "kraken:c31usd": ("skipped", 0, IN_FLIGHT),
                         "kraken:c32usd": ("failed", 0, "no worker took it within 2s")}
        queued = [json.loads(raw) for raw in redis.Redis.from_url(nobody.url).lrange(nobody.queue, 0, -1)]
        expiries = [message["headers"]["expires"] for message in queued]
        assert expiries.count(None) == 2  # --no-wait: whenever a worker comes
        expired = dt.datetime.fromisoformat(next(stamp for stamp in expiries if stamp))
        assert abs((expired - dt.datetime.now(UTC)).total_seconds()) < 5  # the waiting run's task: at its deadline
        claims = redis.Redis.from_url(nobody.url).scan_iter(f"ingest:{nobody.queue}:inflight:*")
        assert sorted(key.decode().split(":inflight:")[1].rsplit(":", 1)[0] for key in claims) == [
            "market:kraken:c30usd", "market:kraken:c31usd"]  # the claim of the task never taken is gone
    finally:
        shut(nobody)


def test_a_worker_killed_mid_task_leaves_its_tasks_to_the_other(tmp_path, upstreams):
    """SIGKILL while both its tasks wait on the upstream: nothing was acknowledged, so Redis hands them to the
    surviving worker once the visibility timeout has passed; every market is stored, whole."""
    pair = cluster_of(tmp_path, upstreams, concurrency=2)
    victim, survivor = pair.workers
    timed = upstreams.timed["cryptowatch"]
    names = markets(*range(33, 39))
    for name in names:
        timed.slow[f"/markets/kraken/{name.split(':')[1]}/ohlc"] = 1.5
    try:
        run = subprocess.Popen([sys.executable, SCRIPT, "--source", "cryptowatch", "--markets", ",".join(names),
                                "--timeout", "60"], cwd=ROOT, env=pair.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while victim.log().count("] received") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # its two tasks are waiting for their candles
        victim.kill()
        stdout, stderr = run.communicate(timeout=90)
    finally:
        timed.slow.clear()
        shut(pair)
    assert run.returncode == 0, stdout + stderr
    table, _ = summary(stdout)
    assert {status for status, _, _ in table.values()} == {"ok"} and set(table) == set(names)
    assert victim.ran() == {} and set(survivor.ran()) == set(names)
    for name in names:
        rows = stored(pair.app, "kraken", name.split(":")[1])
        assert len(rows) == table[name][1] >= 1439
        assert rows.items() <= rows_of(upstreams.candles[name]).items()


def test_the_worker_and_the_scheduler_outlive_the_broker_going_away(tmp_path, upstreams):
    redis_server = urlsplit(require_broker(broker_url()))
    with TcpProxy(redis_server.hostname or "127.0.0.1", redis_server.port or 6379) as proxy:
        through = f"redis://127.0.0.1:{proxy.port}/{TEST_BROKER_DB}"
        heartbeat = tmp_path / "heartbeat"
        pair = cluster_of(tmp_path, upstreams, workers=0, broker=through)
        pair.workers = start_workers(1, pair.worker_env, tmp_path, concurrency=2, args=("--heartbeat", str(heartbeat)))
        out = open(tmp_path / "scheduler.out", "w")
        scheduler = subprocess.Popen([sys.executable, SCRIPT, "--source", "cryptowatch", "--markets",
                                      ",".join(markets(0, 1)), "--every", "2", "--timeout", "3"], cwd=ROOT,
                                     env=pair.env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            def ticks() -> list[str]:
                return [line for line in (tmp_path / "scheduler.out").read_text().splitlines()
                        if line.startswith("2 instruments:")]

            def wait_for_ok_tick(after: int, seconds: float) -> None:
                deadline = time.monotonic() + seconds
                while not any(line.startswith("2 instruments: 2 ok") for line in ticks()[after:]):
                    assert time.monotonic() < deadline, (tmp_path / "scheduler.out").read_text()
                    time.sleep(0.2)

            wait_for_ok_tick(0, 30)
            proxy.cut()
            time.sleep(5)
            failed = [line for line in ticks() if " 0 ok" in line]
            proxy.restore()
            restored = time.time()
            wait_for_ok_tick(len(ticks()), 60)
            assert failed, "no tick ran while the broker was away"
            assert scheduler.poll() is None and pair.workers[0].process.poll() is None
            assert heartbeat.stat().st_mtime > restored  # connected again: its health check passes again
        finally:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=30)
            out.close()
            shut(pair)
    assert "Traceback" not in (tmp_path / "scheduler.out").read_text()


def test_without_broker_url_the_ingest_runs_in_process_and_never_imports_celery(tmp_path, upstreams):
    code = ("import sys, get_raw_data; status = get_raw_data.main(['--source', 'cryptowatch', '--markets', "
            "'kraken:c39usd']); print('celery' in sys.modules, 'kombu' in sys.modules, status, file=sys.stderr)")
    now = minute_with_room(15)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=in_process_env(tmp_path, upstreams),
                            capture_output=True, text=True, timeout=60)
    assert result.stderr.splitlines()[-1] == "False False 0", result.stderr
    table, _ = summary(result.stdout)
    assert table == {"kraken:c39usd": ("ok", len(last_day(upstreams.candles["kraken:c39usd"], now)), "")}


@pytest.mark.parametrize("args, message", [
    (["--worker"], "error: --worker needs BROKER_URL"),
    (["--no-wait"], "error: --no-wait needs BROKER_URL"),
    (["--timeout", "30"], "error: --timeout needs BROKER_URL"),
    (["--concurrency", "4"], "--concurrency needs --worker"),
    (["--worker", "--symbols", "IBM"], "--worker runs the tasks others send; it takes no --symbols"),
    (["--worker", "--concurrency", "0"], "--concurrency must be between 1 and 256, got 0"),
    (["--no-wait", "--every", "60"], "--no-wait cannot go with --every"),
])
def test_worker_options_are_checked(tmp_path, args, message):
    result = cli(env_for(base_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
