"""Instruments, OHLCV bars, service state, and the `financial_data` view of system A.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Double = sa.Float(precision=53)


def upgrade():
    op.create_table(
        "instruments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_class", sa.String(16), nullable=False),
        sa.Column("exchange", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("base", sa.String(16), nullable=True),
        sa.Column("quote", sa.String(16), nullable=True),
        sa.Column("name", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instruments"),
        sa.UniqueConstraint("asset_class", "exchange", "symbol", name="uq_instruments_asset_class_exchange_symbol"),
    )
    op.create_table(
        "bars",
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("open", Double, nullable=False),
        sa.Column("high", Double, nullable=False),
        sa.Column("low", Double, nullable=False),
        sa.Column("close", Double, nullable=False),
        sa.Column("volume", Double, nullable=False),
        sa.Column("adjusted_close", Double, nullable=True),
        sa.Column("market_cap", Double, nullable=True),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"], ondelete="CASCADE",
                                name="fk_bars_instrument_id_instruments"),
        sa.PrimaryKeyConstraint("instrument_id", "interval", "ts", name="pk_bars"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_bars_interval_ts", "bars", ["interval", "ts"])
    op.create_table(
        "service_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_service_state"),
    )
    op.execute(f"CREATE VIEW financial_data AS {_financial_data_select()}")


def downgrade():
    op.execute("DROP VIEW financial_data")
    op.drop_table("service_state")
    op.drop_index("ix_bars_interval_ts", table_name="bars")
    op.drop_table("bars")
    op.drop_table("instruments")


def _financial_data_select() -> str:
    """System A's table, as a view over the daily stock bars, compiled for the running dialect."""
    bind = op.get_bind()
    instruments = sa.table("instruments", sa.column("id"), sa.column("symbol"), sa.column("asset_class"))
    bars = sa.table("bars", sa.column("instrument_id"), sa.column("interval"), sa.column("ts"),
                    sa.column("open"), sa.column("close"), sa.column("volume"))
    query = (
        sa.select(
            instruments.c.symbol.label("symbol"),
            sa.func.date(bars.c.ts).label("date"),
            bars.c.open.label("open_price"),
            bars.c.close.label("close_price"),
            bars.c.volume.label("volume"),
        )
        .select_from(bars.join(instruments, instruments.c.id == bars.c.instrument_id))
        .where(instruments.c.asset_class == "stock", bars.c.interval == "1day")
    )
    return str(query.compile(dialect=bind.dialect, compile_kwargs={"literal_binds": True}))
