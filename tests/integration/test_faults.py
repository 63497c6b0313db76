"""Faults: the database or Redis goes away, or stops answering, and comes back; ingests are killed mid-run
or run twice at once.

The real servers are taken away through a TCP proxy (tests/fakes/tcp_proxy.py) that the test cuts (or
blackholes) and restores, so the shared MariaDB and Redis keep running for everyone else.
"""
from __future__ import annotations

import datetime as dt
import itertools
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from financial import breaker, caching, create_app
from financial.extensions import db
from tests.conftest import REDIS_URL, base_settings, empty_tables, env_for
from tests.fakes.coin_csv import coin_bars, render
from tests.fakes.series import daily_bars
from tests.fakes.tcp_proxy import TcpProxy
from tests.seed import store, today_utc

ROOT = Path(__file__).resolve().parents[2]


def ibm_bars():
    return daily_bars("IBM", end=today_utc() - dt.timedelta(days=1), count=20, start_price=100)


def statistics_url(bars) -> str:
    return f"/api/statistics?symbol=IBM&start_date={bars[0].date}&end_date={bars[-1].date}"


def mean_close(bars) -> float:
    return round(sum(bar.close for bar in bars) / len(bars), 2)


def through(proxy: TcpProxy, url: str) -> str:
    return sa.engine.make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def answered(client, url: str, within: float):
    """The first 200 answer to `url` within `within` seconds (asking every 0.1 s), and when it came."""
    deadline = time.monotonic() + within
    while True:
        response = client.get(url)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.get_json()
            return response, time.monotonic()
        time.sleep(0.1)


def serving_ibm(settings):
    """An app on `settings` with IBM's bars stored and their statistics answered (and so cached) once:
    (app, its client, the bars, the statistics URL)."""
    app = create_app(settings, process="test")
    empty_tables(app)
    bars = ibm_bars()
    store(app, bars, "IBM")
    client = app.test_client()
    url = statistics_url(bars)
    assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(bars)
    return app, client, bars, url


@pytest.mark.parametrize("with_redis", [False, True], ids=["in-process cache", "redis"])
def test_the_database_goes_away_and_comes_back(mysql_url, redis_url, with_redis, monkeypatch):
    monkeypatch.setattr(breaker, "OPEN_SECONDS", 0.5)
    with TcpProxy("127.0.0.1", sa.engine.make_url(mysql_url).port or 3306) as proxy:
        settings = base_settings(database_url=through(proxy, mysql_url), redis_url=redis_url if with_redis else None)
        app, client, bars, cached = serving_ibm(settings)

        proxy.cut()
        uncached = client.get("/api/financial_data?symbol=IBM&limit=7")
        assert uncached.status_code == 503
        assert uncached.get_json() == {"data": None, "info": {"error": "database unavailable; try again shortly"}}
        assert uncached.headers["Retry-After"] == "1"  # the breaker's next probe (OPEN_SECONDS, rounded up)
        if with_redis:  # a cached answer needs no database: the service keeps answering it
            assert client.get(cached).get_json()["data"]["average_daily_close_price"] == mean_close(bars)
        else:  # the in-process cache asks the database for the data generation on every lookup
            assert client.get(cached).status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database unavailable" in ready.get_json()["info"]["error"]
        assert client.get("/healthz").status_code == 200

        proxy.restore()  # no restart: the circuit breaker's next probe reconnects
        records = answered(client, "/api/financial_data?symbol=IBM&limit=7", within=3)[0].get_json()
        assert [r["date"] for r in records["data"]] == [bar.date.isoformat() for bar in bars[:7]]
        assert client.get(cached).get_json()["data"]["average_daily_close_price"] == mean_close(bars)
        assert client.get("/readyz").status_code == 200
        with app.app_context():
            db.engine.dispose()


UNAVAILABLE = {"data": None, "info": {"error": "database unavailable; try again shortly"}}


def timed(client, url: str):
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


def test_a_database_that_stops_answering_costs_one_wait_then_fails_fast(mysql_url, redis_url, monkeypatch):
    """The path to MariaDB silently drops everything: the first request that needs it waits out the client
    timeout (STATEMENT_TIMEOUT + 1 s) and gets the 503; the breaker then answers the others at once;
    /healthz never waits; once the path is back the service recovers by itself."""
    monkeypatch.setattr(breaker, "OPEN_SECONDS", 1.0)
    with TcpProxy("127.0.0.1", sa.engine.make_url(mysql_url).port or 3306) as proxy:
        settings = base_settings(database_url=through(proxy, mysql_url), redis_url=redis_url, statement_timeout=2)
        app, client, bars, _ = serving_ibm(settings)

        proxy.blackhole()
        first, waited = timed(client, "/api/financial_data?symbol=IBM&limit=3")
        assert first.status_code == 503 and first.get_json() == UNAVAILABLE
        assert 2 < waited < 6 and first.headers["Retry-After"] == "1"
        fast = []
        for limit in (4, 5, 6, 7):
            response, took = timed(client, f"/api/financial_data?symbol=IBM&limit={limit}")
            assert response.status_code == 503 and response.get_json() == UNAVAILABLE
            assert took < 0.5 and response.headers["Retry-After"] == "1"
            fast.append(took)
        health, took = timed(client, "/healthz")
        assert health.get_json() == {"data": {"status": "ok"}, "info": {"error": ""}} and took < 0.5
        print(f"\nfirst 503 after {waited:.1f}s, then in {max(fast) * 1000:.1f} ms at most; "
              f"/healthz {took * 1000:.1f} ms")
        assert "database unavailable" in client.get("/readyz").get_json()["info"]["error"]

        proxy.restore()
        records = answered(client, "/api/financial_data?symbol=IBM&limit=3", within=1 + 10)[0].get_json()
        assert [r["date"] for r in records["data"]] == [bar.date.isoformat() for bar in bars[:3]]
        assert client.get("/readyz").status_code == 200
        with app.app_context():
            db.engine.dispose()


def test_cached_answers_are_served_for_the_whole_database_outage(mysql_url, redis_url, monkeypatch):
    """While the database does not answer, every answer cached before stays served (the same body and ETag)
    long after the generation's copy in Redis has expired; uncached ones get the 503; after it, a new
    ingest still replaces them."""
    monkeypatch.setattr(caching, "GENERATION_TTL", 1)
    monkeypatch.setattr(breaker, "OPEN_SECONDS", 1.0)
    with TcpProxy("127.0.0.1", sa.engine.make_url(mysql_url).port or 3306) as proxy:
        settings = base_settings(database_url=through(proxy, mysql_url), redis_url=redis_url, statement_timeout=2)
        app, client, bars, statistics = serving_ibm(settings)
        urls = [statistics, "/api/financial_data?symbol=IBM&limit=4", "/api/dashboard?limit=5",
                f"/api/financial_data?symbol=IBM&start_date={bars[5].date}&end_date={bars[9].date}"]
        before = {url: client.get(url) for url in urls}
        assert all(response.status_code == 200 for response in before.values())

        proxy.blackhole()
        started, served = time.monotonic(), 0
        while time.monotonic() - started < 4 * caching.GENERATION_TTL + 2:  # the copy expires several times
            for url in urls:
                response = client.get(url)
                assert response.status_code == 200, (url, response.get_json())
                assert response.data == before[url].data and response.headers["ETag"] == before[url].headers["ETag"]
                served += 1
            uncached = client.get(f"/api/financial_data?symbol=IBM&limit={8 + served % 50}")
            assert uncached.status_code == 503 and uncached.get_json() == UNAVAILABLE
            time.sleep(0.05)
        assert served > 40
        print(f"\n{served} cached answers served in {time.monotonic() - started:.1f}s of outage")

        proxy.restore()
        answered(client, "/api/financial_data?symbol=IBM&limit=99", within=1 + 10)
        changed = [bar.__class__(**{**{f: getattr(bar, f) for f in bar.__slots__}, "close": bar.high}) for bar in bars]
        store(app, changed, "IBM")
        assert client.get(statistics).get_json()["data"]["average_daily_close_price"] == mean_close(changed)
        assert client.get(urls[1]).get_json()["data"][0]["close_price"] == f"{changed[0].high:.2f}"
        with app.app_context():
            from financial.extensions import cache
            cache.clear()
            db.engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


class Load:
    """`clients` threads asking a gunicorn server for `urls` in turn (`{n}` in one: a number never asked
    before, so that its answer cannot have been cached), each answer noted as (when it was asked, url,
    status, seconds it took, body, Content-Type)."""

    def __init__(self, base: str, urls: list[str], clients: int = 8) -> None:
        self.base, self.urls, self.answers, self.done = base, urls, [], threading.Event()
        self.numbers = itertools.count(1)
        self.threads = [threading.Thread(target=self._ask, args=(number,)) for number in range(clients)]
        for thread in self.threads:
            thread.start()

    def _ask(self, number: int) -> None:
        with requests.Session() as session:
            turn = number
            while not self.done.is_set():
                url = self.urls[turn % len(self.urls)].replace("{n}", str(next(self.numbers)))
                turn += 1
                started = time.monotonic()
                try:
                    response = session.get(self.base + url, timeout=40)
                    status, body, content_type = response.status_code, response.content, response.headers.get(
                        "Content-Type")
                except requests.RequestException as exc:  # (no answer at all: status 0)
                    status, body, content_type = 0, repr(exc).encode(), None
                self.answers.append((started, url, status, time.monotonic() - started, body, content_type))
                time.sleep(0.1)

    def stop(self) -> list[tuple]:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return self.answers


@pytest.mark.parametrize("threads", [1, 8], ids=["one thread a worker", "8 threads a worker"])
def test_gunicorn_answers_json_and_keeps_its_workers_while_the_database_hangs(mysql_url, redis_url, tmp_path, threads):
    """The shipped gunicorn configuration (its worker timeout shortened to 10 s, to keep the test short),
    the default STATEMENT_TIMEOUT, 8 clients at ~50 requests a second: while MariaDB's path drops everything,
    no worker is killed, every answer is the JSON envelope, cached answers stay served, and the service
    recovers by itself."""
    with TcpProxy("127.0.0.1", sa.engine.make_url(mysql_url).port or 3306) as proxy:
        settings = base_settings(database_url=through(proxy, mysql_url), redis_url=redis_url)
        app, client, bars, statistics = serving_ibm(settings)
        cached = client.get(statistics).data
        port, log = free_port(), tmp_path / "gunicorn.log"
        env = env_for(settings, GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2", GUNICORN_THREADS=str(threads),
                      LOG_LEVEL="INFO")
        with open(log, "w") as stderr:
            # (--no-control-socket: its default path is shared by every gunicorn on the machine)
            server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "conf" / "gunicorn.conf.py"),
                                       "--timeout", "10", "--no-control-socket", "app:app"],
                                      cwd=ROOT, env=env, stdout=stderr, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(base + "/api/financial_data?symbol=IBM&limit=2", timeout=5).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()[-2000:]
                time.sleep(0.2)
            while len(children(server.pid)) < 2:  # the first worker may answer before the second is forked
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()[-2000:]
                time.sleep(0.1)
            workers = children(server.pid)
            load = Load(base, ["/api/financial_data?symbol=IBM&limit=2&page={n}", statistics, "/healthz"])
            time.sleep(2)  # every worker has pooled connections now
            blackholed = time.monotonic()
            proxy.blackhole()
            time.sleep(15)
            proxy.restore()
            restored = time.monotonic()
            time.sleep(12)
            answers = load.stop()
            assert children(server.pid) == workers and len(workers) == 2  # none was killed and replaced
        finally:
            server.terminate()
            server.wait(timeout=30)
        output = log.read_text()

    assert "WORKER TIMEOUT" not in output, output[-3000:]
    assert {status for _, _, status, *_ in answers} <= {200, 503}, {a[4] for a in answers if a[2] not in (200, 503)}
    assert {content_type for *_, content_type in answers} == {"application/json"}
    during = [a for a in answers if blackholed < a[0] and a[0] + a[3] < restored]
    failed = [a for a in during if a[2] == 503]
    assert failed and all(a[4] == b'{"data":null,"info":{"error":"database unavailable; try again shortly"}}'
                          for a in failed)
    first_503 = min(a[0] + a[3] for a in failed) - blackholed
    assert first_503 < 5 + 1 + 2  # STATEMENT_TIMEOUT + the client's margin, and the time to answer
    fast = sorted(a[3] for a in failed if a[0] > blackholed + first_503 + 1)
    assert fast and fast[len(fast) // 2] < 0.5
    served = [a for a in during if a[1] == statistics]
    assert served and all(a[2] == 200 and a[4] == cached for a in served)
    health = [a[3] for a in during if a[1] == "/healthz"]
    assert health and all(a[2] == 200 for a in during if a[1] == "/healthz")
    back = [a for a in answers if a[0] > restored and a[1].startswith("/api/financial_data") and a[2] == 200]
    assert back, "no uncached answer within 12 s of the database's return"
    median = sorted(health)[len(health) // 2]
    print(f"\n{threads} thread(s): first 503 after {first_503:.1f}s; 503s then in "
          f"{fast[len(fast) // 2] * 1000:.0f} ms (median, {len(fast)}), {max(fast):.1f}s max; cached answers "
          f"served {len(served)}/{len(served)}, max {max(a[3] for a in served):.2f}s; /healthz max {max(health):.2f}s, "
          f"median {median * 1000:.0f} ms; recovered {back[0][0] + back[0][3] - restored:.1f}s after the restore; "
          f"{len(answers)} answers")


def test_redis_goes_away_and_comes_back_without_serving_stale_figures(sqlite_url, redis_url, monkeypatch):
    monkeypatch.setattr(caching, "BACKOFF", 0.3)
    redis_port = int(REDIS_URL.split(":")[2].split("/")[0])
    with TcpProxy("127.0.0.1", redis_port) as proxy:
        settings = base_settings(database_url=sqlite_url, redis_url=f"redis://127.0.0.1:{proxy.port}/15")
        app, client, bars, url = serving_ibm(settings)

        proxy.cut()
        started = time.monotonic()
        for _ in range(20):  # answered from the database, and without waiting on Redis every time
            assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(bars)
        assert time.monotonic() - started < 5
        assert client.get("/readyz").get_json()["info"]["error"] == "cache unavailable"
        # An ingest while Redis is away: it cannot publish the new generation there.
        changed = [bar.__class__(**{**{f: getattr(bar, f) for f in bar.__slots__}, "close": bar.high}) for bar in bars]
        store(app, changed, "IBM")
        assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(changed)

        proxy.restore()
        time.sleep(0.4)  # past the backoff: the next lookup uses Redis again
        # Redis still holds the old entry and the old generation; the new figures must be served.
        assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(changed)
        assert client.get(url).get_json()["data"]["average_daily_close_price"] == mean_close(changed)
        assert client.get("/readyz").status_code == 200
        with app.app_context():
            from financial.extensions import cache
            cache.clear()


# -- ingests killed or run twice ---------------------------------------------------------------------

def write_coins(folder: Path, coins: int, days: int) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = {}
    for number in range(coins):
        bars = coin_bars(f"kill{number}", end=today_utc() - dt.timedelta(days=1), days=days, start_price=1 + number,
                         supply=1e6)
        (folder / f"coin_{number:02d}.csv").write_text(render(f"Coin {number}", f"K{number}", bars))
        rows[f"K{number}"] = len(bars)
    return rows


def stored_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(sa.text(
                "SELECT i.symbol, COUNT(*) FROM bars b JOIN instruments i ON i.id = b.instrument_id "
                "GROUP BY i.symbol")).all())
    finally:
        engine.dispose()


def test_an_ingest_killed_mid_run_leaves_whole_instruments_and_the_next_run_completes(app, stack_settings, tmp_path):
    """SIGKILL in the middle of a CSV import: each file is one transaction, so every coin in the database
    is complete (or absent); a re-run then loads everything, without duplicates. The kills are placed by
    the import's own progress lines (one per file stored), plus a little, so they land inside a file's
    work whatever the machine's speed."""
    expected = write_coins(tmp_path / "csv", coins=6, days=3000)
    env = env_for(stack_settings)
    command = [sys.executable, str(ROOT / "get_raw_data.py"), "--source", "csv", "--path", str(tmp_path / "csv")]
    for files_stored, then in ((1, 0.0), (2, 0.05), (3, 0.1)):
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        seen = 0
        while seen < files_stored:
            line = process.stderr.readline()
            assert line, f"the import ended after {seen} files: {process.wait(timeout=30)}"
            seen += line.startswith("[")
        time.sleep(then)
        assert process.poll() is None, "the import finished before the kill: make it bigger"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stderr.close()
        for symbol, count in stored_counts(stack_settings.database_url).items():
            assert count == expected[symbol], f"{symbol}: {count} of {expected[symbol]} rows after a kill"
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert stored_counts(stack_settings.database_url) == expected


def test_two_ingests_of_the_same_data_at_once(app, stack_settings, tmp_path):
    expected = write_coins(tmp_path / "csv", coins=4, days=1500)
    env = env_for(stack_settings)
    command = [sys.executable, str(ROOT / "get_raw_data.py"), "--source", "csv", "--path", str(tmp_path / "csv")]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert "0 failed" in out
    assert stored_counts(stack_settings.database_url) == expected


def test_reads_go_on_while_an_ingest_writes(app, client, stack_settings, tmp_path):
    bars = ibm_bars()
    store(app, bars, "IBM")
    write_coins(tmp_path / "csv", coins=4, days=2000)
    statuses: list[int] = []
    done = threading.Event()

    def read() -> None:
        reader = app.test_client()
        while not done.is_set():
            for url in (statistics_url(bars), "/api/dashboard?limit=5", "/api/financial_data?symbol=IBM"):
                statuses.append(reader.get(url).status_code)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        result = subprocess.run([sys.executable, str(ROOT / "get_raw_data.py"), "--source", "csv", "--path",
                                 str(tmp_path / "csv")], cwd=ROOT, env=env_for(stack_settings),
                                capture_output=True, text=True, timeout=300)
    finally:
        done.set()
        for thread in readers:
            thread.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(statuses) > 30 and set(statuses) == {200}
