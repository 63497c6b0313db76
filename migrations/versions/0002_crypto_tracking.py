"""Crypto tracking: the rankings table of /api/metrics (figures per instrument and standard window).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Double = sa.Float(precision=53)


def upgrade():
    op.create_table(
        "rankings",
        sa.Column("window_hours", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instrument_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("interval", sa.String(8), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("mean", Double, nullable=True),
        sa.Column("stdev", Double, nullable=True),
        sa.Column("volatility", Double, nullable=True),
        sa.Column("last_price", Double, nullable=True),
        sa.Column("last_time", sa.DateTime(), nullable=True),
        sa.Column("rank_stdev", sa.Integer(), nullable=True),
        sa.Column("rank_volatility", sa.Integer(), nullable=True),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"], ondelete="CASCADE",
                                name="fk_rankings_instrument_id_instruments"),
        sa.PrimaryKeyConstraint("window_hours", "instrument_id", name="pk_rankings"),
    )
    op.create_index("ix_rankings_instrument_id", "rankings", ["instrument_id"])


def downgrade():
    op.drop_table("rankings")  # its indexes go with it (MySQL refuses to drop the foreign key's index alone)
