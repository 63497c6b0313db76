"""Migrations: an empty database reaches the head revision from every entry point, also when several
processes start at once; the `financial_data` view of system A; the cross-process locks behind them."""
import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

import lib
from financial import create_app, ingest
from financial.extensions import db
from financial.locks import LockBusy, exclusive, mysql_lock_name
from financial.models import AssetClass, BarRollup
from tests.conftest import MYSQL_ADMIN_URL, MYSQL_HOST, MYSQL_PORT, _reachable, base_settings, env_for, missing_server
from tests.fakes.series import daily_bars, minute_bars

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"instruments", "bars", "service_state", "rankings", "alembic_version", "users", "auth_tokens",
          "watchlist_entries", "alerts", "alert_deliveries", "bar_rollups",
          "bar_day_rollups"}
ACCOUNT_TABLES = {"users", "auth_tokens", "watchlist_entries", "alerts", "alert_deliveries"}
DEMO_COINS = sorted((ROOT / "data" / "fixtures" / "csv").glob("*.csv"))
DEMO_INSTRUMENTS = 2 + 4 + len(DEMO_COINS)  # IBM and AAPL, four crypto markets, the sample coins
DEMO_ROWS = 2 * 262 + 4 * 1440 + sum(len(path.read_text().splitlines()) - 1 for path in DEMO_COINS)


def head() -> str:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def schema_state(url: str) -> tuple[str | None, set[str], set[str]]:
    """(alembic revision, tables, views) of the database at `url`, read with a private engine."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables, views = set(inspector.get_table_names()), set(inspector.get_view_names())
        revision = None
        if "alembic_version" in tables:
            with engine.connect() as connection:
                revision = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
        return revision, tables, views
    finally:
        engine.dispose()


def count_bars(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.text("SELECT COUNT(*) FROM bars"))
    finally:
        engine.dispose()


@pytest.fixture
def fresh_mysql_url():
    """A new, empty MySQL database for this test, dropped afterwards."""
    if not _reachable(MYSQL_HOST, MYSQL_PORT):
        missing_server(f"no MySQL/MariaDB server at {MYSQL_HOST}:{MYSQL_PORT}")
    name = f"mdt_fresh_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    try:
        yield sa.engine.make_url(MYSQL_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "mysql"])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("fresh_mysql_url")


def test_create_app_brings_an_empty_database_to_head(fresh_url):
    assert schema_state(fresh_url) == (None, set(), set())
    apps = [create_app(base_settings(database_url=fresh_url), process="test")]
    try:
        revision, tables, views = schema_state(fresh_url)
        assert revision == head()
        assert TABLES <= tables
        assert "financial_data" in views
        apps.append(create_app(base_settings(database_url=fresh_url), process="test"))  # at head: a no-op
        assert schema_state(fresh_url) == (revision, tables, views)
    finally:
        for app in apps:
            with app.app_context():
                db.engine.dispose()


def test_the_migrations_build_what_the_models_describe(fresh_url):
    """Alembic finds nothing to change between the migrated database and the models, on both dialects."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    app = create_app(base_settings(database_url=fresh_url), process="test")
    try:
        with app.app_context(), db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, db.metadata)

        def same_float(difference) -> bool:
            """MySQL reflects Float(precision=53) as DOUBLE: the same column type, spelled another way."""
            return isinstance(difference, list) and difference[0][0] == "modify_type" \
                and isinstance(difference[0][5], sa.Float) and isinstance(difference[0][6], sa.Float)

        assert [difference for difference in differences if not same_float(difference)] == []
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_accounts_migration_goes_down_and_up_again(fresh_url):
    from flask_migrate import downgrade, upgrade
    app = create_app(base_settings(database_url=fresh_url), process="test")
    try:
        with app.app_context():
            downgrade(directory=str(ROOT / "migrations"), revision="0002")
            revision, tables, _ = schema_state(fresh_url)
            assert revision == "0002" and not tables & ACCOUNT_TABLES and "rankings" in tables
            upgrade(directory=str(ROOT / "migrations"))
            revision, tables, _ = schema_state(fresh_url)
            assert revision == head() == "0004" and TABLES <= tables
    finally:
        with app.app_context():
            db.engine.dispose()


def test_the_rollups_migration_builds_the_rollups_of_the_bars_already_stored(fresh_url):
    """Migration 0004 on a database with minute bars: the rollups it builds are those the write path keeps."""
    from flask_migrate import downgrade, upgrade
    app = create_app(base_settings(database_url=fresh_url), process="test")
    bars = minute_bars("btc", end=dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.timezone.utc), count=300, start_price=600)
    rollup_columns = [column for column in BarRollup.__table__.columns]
    try:
        with app.app_context():
            ingest.store_series(ingest.Series(ingest.InstrumentSpec(AssetClass.CRYPTO, "btcusd", exchange="kraken"),
                                              lib.Interval.MIN1, bars))
            written = db.session.execute(sa.select(*rollup_columns).order_by(BarRollup.bucket)).all()
            db.session.rollback()
            assert len(written) == 6  # 300 minutes ending at 03:04 span six hours
            downgrade(directory=str(ROOT / "migrations"), revision="0003")
            assert not {"bar_rollups", "bar_day_rollups"} & schema_state(fresh_url)[1]
            upgrade(directory=str(ROOT / "migrations"))
            assert db.session.execute(sa.select(*rollup_columns).order_by(BarRollup.bucket)).all() == written
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_two_processes_starting_together_on_an_empty_database(fresh_url):
    """The API (importing app.py) and an ingest start at the same moment: one migrates, the other waits."""
    env = env_for(base_settings(database_url=fresh_url))
    commands = [[sys.executable, "-c", "import app; print('imported')"],
                [sys.executable, str(ROOT / "get_raw_data.py"), "--demo"]]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for command in commands]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    (api_code, api_out, api_err), (ingest_code, ingest_out, ingest_err) = results
    assert (api_code, api_out) == (0, "imported\n"), api_err
    assert ingest_code == 0, ingest_err
    assert ingest_out.splitlines()[-1] == (f"{DEMO_INSTRUMENTS} instruments: {DEMO_INSTRUMENTS} ok, 0 failed, "
                                           f"0 skipped; {DEMO_ROWS} rows stored")
    assert "Traceback" not in api_err + ingest_err
    revision, tables, views = schema_state(fresh_url)
    assert revision == head() and TABLES <= tables and "financial_data" in views
    assert count_bars(fresh_url) == DEMO_ROWS


def test_flask_db_upgrade_migrates_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = env_for(base_settings(database_url=url), AUTO_MIGRATE="false")  # so only the command migrates
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    revision, tables, views = schema_state(url)
    assert revision == head()
    assert TABLES <= tables and "financial_data" in views


def test_financial_data_view_matches_the_daily_stock_bars(app):
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    ibm = daily_bars("IBM", end=yesterday, count=6, start_price=180)
    aapl = daily_bars("AAPL", end=yesterday, count=4, start_price=190)
    minutes = minute_bars("IBM", end=dt.datetime.now(dt.timezone.utc), count=5, volume_decimals=0)
    btc = daily_bars("BTC", end=yesterday, count=3, start_price=60000)
    with app.app_context():
        for symbol, bars, interval, asset_class, exchange in [
                ("IBM", ibm, lib.Interval.DAY, AssetClass.STOCK, ""),
                ("AAPL", aapl, lib.Interval.DAY, AssetClass.STOCK, ""),
                ("IBM", minutes, lib.Interval.MIN1, AssetClass.STOCK, ""),
                ("btcusd", btc, lib.Interval.DAY, AssetClass.CRYPTO, "kraken")]:
            spec = ingest.InstrumentSpec(asset_class, symbol, exchange=exchange)
            ingest.store_series(ingest.Series(spec, interval, bars))
        with db.engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT symbol, date, open_price, close_price, volume FROM financial_data ORDER BY date, symbol"))
            columns, rows = list(rows.keys()), rows.all()
    assert columns == ["symbol", "date", "open_price", "close_price", "volume"]
    want = sorted((symbol, bar.timestamp.date().isoformat(), bar.open, bar.close, bar.volume)
                  for symbol, bars in (("IBM", ibm), ("AAPL", aapl)) for bar in bars)
    want.sort(key=lambda row: (row[1], row[0]))
    assert [(symbol, str(day), float(o), float(c), float(v)) for symbol, day, o, c, v in rows] == want


# -- locks ------------------------------------------------------------------------------------------

def test_sqlite_file_lock_excludes_other_holders(tmp_path):
    url = f"sqlite:///{tmp_path / 'locks.db'}"
    first, second = sa.create_engine(url), sa.create_engine(url)
    with exclusive(first, "scheduled-ingest"):
        with pytest.raises(LockBusy, match="scheduled-ingest"):
            with exclusive(second, "scheduled-ingest"):
                pass
        with exclusive(second, "schema-upgrade"):  # another name is another lock
            pass
    with exclusive(second, "scheduled-ingest"):  # released on leaving the block
        pass
    assert (tmp_path / "locks.db.scheduled-ingest.lock").exists()


def test_mysql_locks_belong_to_one_database(mysql_url, fresh_mysql_url):
    """GET_LOCK names are server-wide: two databases on one server must not block each other."""
    same, also_same, other = (sa.create_engine(url) for url in (mysql_url, mysql_url, fresh_mysql_url))
    try:
        with exclusive(same, "scheduled-ingest"):
            with pytest.raises(LockBusy):
                with exclusive(also_same, "scheduled-ingest"):
                    pass
            with exclusive(other, "scheduled-ingest"):
                pass
        with exclusive(also_same, "scheduled-ingest"):
            pass
    finally:
        for engine in (same, also_same, other):
            engine.dispose()


def test_mysql_lock_names_fit_and_stay_distinct():
    long_a, long_b = "a" * 60 + "_one", "a" * 60 + "_two"
    names = {mysql_lock_name(database, "scheduled-ingest") for database in (long_a, long_b, "market", None)}
    assert len(names) == 4
    assert all(len(name) <= 64 for name in names)
    assert mysql_lock_name("market", "schema-upgrade") == "market_data:market:schema-upgrade"
