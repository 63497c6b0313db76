"""Shared fixtures: the app on each real backend, its test client and CLI runner, and the fake upstreams.

`app` is parametrized over two stacks, so every test that uses it runs on both:
- `sqlite`: an SQLite file and the in-process cache (the zero-set-up default);
- `mysql`: the MariaDB server on 127.0.0.1:3306 and Redis on 127.0.0.1:6379 (production's stack).
A server that cannot be reached skips its tests locally with the reason, and fails them under CI=true.
"""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from financial import Settings, create_app
from financial.extensions import db
from tests.fakes.alphavantage import FakeAlphaVantage
from tests.fakes.server import FakeServer

MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
STACKS = ["sqlite", "mysql"]


def missing_server(reason: str) -> None:
    """Skip locally; fail in CI, where every server must be there."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def base_settings(**changes) -> Settings:
    """Settings for tests: nothing read from the developer's environment or .env. Sign-ups are unlimited
    (tests sign many accounts up from one address); the tests of the limit turn it on."""
    values = dict(secret_key="test-secret-key", log_dir=None, log_level="WARNING", alphavantage_api_key="test-key",
                  alphavantage_min_interval=0.0, cache_key_prefix=f"mdt-test-{uuid.uuid4().hex[:8]}:",
                  signup_limit_per_hour=0)
    values.update(changes)
    return Settings(**values)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """A fresh database for this test session (per xdist worker), dropped at the end."""
    if not _reachable(MYSQL_HOST, MYSQL_PORT):
        missing_server(f"no MySQL/MariaDB server at {MYSQL_HOST}:{MYSQL_PORT}")
    name = f"mdt_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except sa.exc.OperationalError as exc:
        missing_server(f"cannot create a test database on {MYSQL_ADMIN_URL}: {exc.orig}")
    url = sa.engine.make_url(MYSQL_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        missing_server(f"no Redis server at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    return request.param


@pytest.fixture
def stack_settings(request, stack) -> Settings:
    """Settings for the current stack, with empty tables and (for Redis) an empty key space."""
    if stack == "sqlite":
        return base_settings(database_url=request.getfixturevalue("sqlite_url"))
    return base_settings(database_url=request.getfixturevalue("mysql_url"),
                         redis_url=request.getfixturevalue("redis_url"))


def empty_tables(app) -> None:
    with app.app_context():
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def app_factory(stack_settings):
    """`app_factory(**changes)`: an app on the current stack with some settings changed (an SMTP server, the
    upstreams' URLs...); the first one made starts from empty tables."""
    apps = []

    def make(**changes):
        app = create_app(stack_settings.replace(**changes), process="test")
        if not apps:
            empty_tables(app)
        apps.append(app)
        return app

    yield make
    for made in apps:
        if stack_settings.redis_url:
            with made.app_context():
                from financial.extensions import cache
                cache.clear()
        with made.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def fake_av():
    """A fake AlphaVantage server; `fake_av.app` is the `FakeAlphaVantage` to load data and scenarios into."""
    upstream = FakeAlphaVantage(api_key="test-key")
    with FakeServer(upstream) as server:
        server.app = upstream
        yield server


@pytest.fixture
def fast_hashing(monkeypatch):
    """Argon2id at its cheapest for tests that sign many users in: the same code paths and hash format,
    milliseconds instead of 64 MiB and a few hundred per hash. (One test checks the production cost.)"""
    from argon2 import PasswordHasher
    from financial.services import accounts
    monkeypatch.setattr(accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free port of 127.0.0.1; `.messages` holds what it accepted."""
    from tests.fakes.smtp import SmtpServer
    server = SmtpServer().start()
    yield server
    server.stop()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for running app.py or get_raw_data.py as a subprocess against the same stack."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("ALPHAVANTAGE_", "DATABASE_", "REDIS_", "CACHE_", "BROKER_", "INGEST_",
                                  "RATE_LIMIT_"))}
    env.update(ENV_FILE=os.devnull, DATABASE_URL=settings.database_url, LOG_DIR="", LOG_LEVEL="WARNING",
               SECRET_KEY=settings.secret_key, CACHE_KEY_PREFIX=settings.cache_key_prefix,
               ALPHAVANTAGE_MIN_INTERVAL="0", SIGNUP_LIMIT_PER_HOUR=str(settings.signup_limit_per_hour),
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.rate_limit_redis_url:
        env["RATE_LIMIT_REDIS_URL"] = settings.rate_limit_redis_url
    env.update(extra)
    return env
