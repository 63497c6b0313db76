"""The unit of work: every write of the service and of the ingest commits through here.

    with unit_of_work(changes_data=True) as work:      # an ingest's series, the rankings, a new instrument
        storage.bars.upsert(work.session, rows)
    with unit_of_work() as work:                       # an account, a token, a watchlist entry
        work.session.add(user)

The block's writes are committed when it ends and rolled back if it raises. A change to the data that
answers are computed from (`changes_data`, or `work.changes_data = True` once the block knows) commits
with a new data generation, which is then published to the cache: once the block has ended, no process
serves a cached answer computed before the change.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy.orm import Session

from financial.extensions import app_state, db_session
from financial.storage import state


@dataclass
class Work:
    session: Session
    changes_data: bool


@contextlib.contextmanager
def unit_of_work(*, changes_data: bool = False) -> Iterator[Work]:
    work = Work(db_session(), changes_data)
    generation = None
    try:
        yield work
        if work.changes_data:
            generation = state.bump_generation(work.session)
        work.session.commit()
    except BaseException:
        work.session.rollback()
        raise
    if generation is not None:
        app_state().cache.publish(generation)
