"""Rollups of intraday series by the hour and by the day (the figures of long windows combine whole
buckets), built for the bars already stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Double = sa.Float(precision=53)


def _rollup_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("instrument_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("bucket", sa.DateTime(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("mean", Double, nullable=False),
        sa.Column("m2", Double, nullable=False),
        sa.Column("first_time", sa.DateTime(), nullable=False),
        sa.Column("first_close", Double, nullable=False),
        sa.Column("last_time", sa.DateTime(), nullable=False),
        sa.Column("last_close", Double, nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("return_mean", Double, nullable=True),
        sa.Column("return_m2", Double, nullable=True),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"], ondelete="CASCADE",
                                name=f"fk_{name}_instrument_id_instruments"),
        sa.PrimaryKeyConstraint("instrument_id", "interval", "bucket", name=f"pk_{name}"),
        sqlite_with_rowid=False,
    )


def upgrade():
    _rollup_table("bar_rollups")
    _rollup_table("bar_day_rollups")
    # The rows of the bars stored so far, computed by the service's own definition, a week at a time. (This
    # revision uses the code's rollups as they are at this revision: a later change to them brings its own
    # migration.)
    from financial.storage import rollups
    rollups.backfill(op.get_bind())


def downgrade():
    op.drop_table("bar_day_rollups")
    op.drop_table("bar_rollups")
