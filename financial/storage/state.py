"""The data generation: one value shared by every process, changed by every write that changes the data.

Cache entries are tagged with the generation they were computed under and served only while it is
current (financial.caching), so it is written in the same transaction as the data it stands for.
"""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from financial.models import ServiceState, utcnow
from financial.storage import dialect

GENERATION = "data_generation"


def read_generation(bind: dialect.Bind) -> str | None:
    """The current generation; None before any write."""
    return bind.scalar(sa.select(ServiceState.value).where(ServiceState.name == GENERATION))


def bump_generation(bind: dialect.Bind) -> str:
    """Give the stored data a new generation (inside the caller's transaction); returns it."""
    generation = uuid.uuid4().hex
    stmt = dialect.upsert(bind, ServiceState, ("name",),
                          {"value": lambda new, cur: new.value, "updated_at": lambda new, cur: new.updated_at})
    bind.execute(stmt, [{"name": GENERATION, "value": generation, "updated_at": utcnow()}])
    return generation
