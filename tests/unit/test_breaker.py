"""The database's circuit breaker, on a clock the test moves, and the client timeouts each process gets."""
import pytest

from financial import breaker, database
from financial.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_on_a_failure_fails_fast_then_lets_one_probe_through():
    clock, opened = Clock(), []
    guard = breaker.Breaker(open_seconds=5, probe_seconds=8, on_open=lambda: opened.append(clock.now), clock=clock)
    assert guard.allow() and not guard.is_open
    guard.failed("OperationalError")
    guard.failed("OperationalError")  # another request's failure in the same moment: the pool is emptied once
    assert guard.is_open and opened == [1000.0]
    clock.now += 1.2
    assert not guard.allow() and guard.retry_after() == 4
    with pytest.raises(breaker.Unavailable) as raised:
        guard.check()
    assert (raised.value.status, raised.value.message, raised.value.headers) == (
        503, "database unavailable; try again shortly", {"Retry-After": "4"})
    clock.now += 3.8
    assert guard.allow()  # the probe
    assert not guard.allow() and guard.is_open  # one at a time
    guard.failed("OperationalError")  # the probe failed: open for another period, the pool not emptied again
    assert opened == [1000.0] and guard.retry_after() == 5
    clock.now += 5
    assert guard.allow()
    clock.now += 8  # a probe that never reported back does not keep the breaker shut
    assert guard.allow()
    guard.succeeded()
    assert not guard.is_open and guard.allow() and guard.allow()


def test_requests_wait_on_the_client_a_second_longer_than_their_statements_ingests_keep_theirs():
    settings = Settings(database_url="mysql+pymysql://u@db/market", statement_timeout=5, ingest_statement_timeout=300)
    web = database.engine_options(settings, "app")["connect_args"]
    assert (web["connect_timeout"], web["read_timeout"], web["write_timeout"]) == (6, 6, 6)
    for process in ("ingest", "worker"):
        connect_args = database.engine_options(settings, process)["connect_args"]
        assert (connect_args["read_timeout"], connect_args["write_timeout"]) == (301, 301)
        assert database.statement_timeout(settings, process) == 300
