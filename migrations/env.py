"""Alembic environment: runs the migrations against the app's engine (SQLite or MySQL)."""
from alembic import context
from flask import current_app

from financial.database import lift_statement_timeout

config = context.config
target_db = current_app.extensions["migrate"].db


def run_migrations_offline():
    url = target_db.engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=target_db.metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = target_db.engine
    with engine.connect() as connection:
        # A migration may run long (0004 summarises every stored bar): no statement timeout on this
        # connection, which is then discarded rather than returned to the pool.
        lift_statement_timeout(connection)
        # Flask-Migrate's defaults: compare_type and render_as_batch (ALTERs that SQLite can run).
        context.configure(connection=connection, target_metadata=target_db.metadata,
                          **current_app.extensions["migrate"].configure_args)
        with context.begin_transaction():
            context.run_migrations()
        connection.invalidate()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
