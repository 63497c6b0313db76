"""Bring the database to the latest migration, safely when several processes start at once.

`app.py`, `get_raw_data.py` and `flask db upgrade` all run the same Alembic migrations. Start-up runs
them under a lock that spans processes (and machines, on MySQL), so the API workers and the scheduler
can start together on an empty database: one migrates, the others wait and then find nothing to do.
"""
from __future__ import annotations

import functools
import logging

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import upgrade

from financial.config import ROOT
from financial.extensions import db
from financial.locks import exclusive

log = logging.getLogger(__name__)
MIGRATIONS = str(ROOT / "migrations")
LOCK_TIMEOUT = 120


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(app: Flask) -> None:
    """Apply pending migrations; no-op (one cheap query) when the schema is current."""
    with app.app_context():
        engine = db.engine
        with engine.connect() as connection:
            if current_revision(connection) == head_revision():
                return
        with exclusive(engine, "schema-upgrade", wait_seconds=LOCK_TIMEOUT):
            with engine.connect() as connection:
                if current_revision(connection) == head_revision():
                    return
            log.info("upgrading the database schema to %s", head_revision())
            upgrade(directory=MIGRATIONS)


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS}"
    return head
