"""The bulk upsert path agrees with SQLAlchemy's own: same keys, same stored values, on both dialects."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

import lib
from financial import storage
from financial.extensions import db
from financial.models import AssetClass, Bar
from tests.fakes.series import minute_bars


def test_rows_written_by_the_orm_are_updated_not_duplicated_by_the_bulk_path(app):
    stamp = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone.utc)
    with app.app_context():
        instrument = storage.instruments.get_or_create(db.session, AssetClass.CRYPTO, "btcusd", exchange="kraken")
        db.session.add(Bar(instrument_id=instrument.id, interval="1min", ts=stamp.replace(tzinfo=None), open=1,
                           high=2, low=0.5, close=1.5, volume=10, market_cap=123.0))
        db.session.commit()
        bar = lib.Bar(timestamp=stamp, open=3, high=4, low=2.5, close=3.5, volume=20)
        storage.bars.upsert(db.session, storage.bars.rows(instrument.id, lib.Interval.MIN1, [bar]))
        db.session.commit()
        rows = db.session.execute(sa.select(Bar.ts, Bar.open, Bar.close, Bar.volume, Bar.market_cap)).all()
        assert rows == [(stamp.replace(tzinfo=None), 3.0, 3.5, 20.0, 123.0)]  # market cap kept (coalesce)
        # And the ORM finds the bulk-written row by its key (same stored timestamp format).
        assert db.session.get(Bar, (instrument.id, "1min", stamp.replace(tzinfo=None))).close == 3.5


def test_bulk_upsert_round_trips_every_value(app):
    bars = minute_bars("round-trip", end=dt.datetime.now(dt.timezone.utc), count=12_345, start_price=0.5)
    with app.app_context():
        instrument = storage.instruments.get_or_create(db.session, AssetClass.CRYPTO, "dogeusd", exchange="kraken")
        assert storage.bars.upsert(db.session, storage.bars.rows(instrument.id, "1min", bars), batch_size=1000) \
            == len(bars)
        db.session.commit()
        stored = db.session.execute(sa.select(Bar.ts, Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume)
                                    .order_by(Bar.ts)).all()
    assert stored == [(b.timestamp.replace(tzinfo=None), b.open, b.high, b.low, b.close, b.volume) for b in bars]


@pytest.mark.parametrize("name, value", [("interval", "1sec"), ("interval", "1min'); DROP TABLE bars; --"),
                                         ("open", float("nan")), ("close", float("inf")), ("volume", "1; --")])
def test_mysql_rendering_refuses_anything_but_numbers_and_known_intervals(name, value):
    """On MySQL the rows are rendered into the statement, so the renderer itself is the guard."""
    with pytest.raises((TypeError, ValueError)):
        storage.dialect.mysql_literal(name, value)


def test_mysql_rendering_of_a_row():
    row = {"instrument_id": 7, "interval": "1min", "ts": dt.datetime(2026, 3, 1, 12, 30), "open": 1.5, "high": 2.0,
           "low": 1e-05, "close": 1.75, "volume": 10.0, "adjusted_close": None, "market_cap": 1.5e12}
    columns = [column.name for column in Bar.__table__.columns]
    assert storage.dialect.mysql_row(row, columns) == \
        "(7,'1min','2026-03-01 12:30:00',1.5,2.0,1e-05,1.75,10.0,NULL,1500000000000.0)"


def test_two_transactions_creating_the_same_instrument_get_the_same_row(app):
    """The second waits for the first's uncommitted insert, then must find the row the first committed
    (on MySQL its snapshot predates that commit: only a locking read sees it)."""
    import threading
    import time
    from sqlalchemy.orm import Session

    with app.app_context():
        engine = db.engine
    first, second = Session(engine), Session(engine)
    created = storage.instruments.get_or_create(first, AssetClass.CRYPTO, "racecoin", exchange="kraken", base="RACE")
    found = {}

    def other():
        try:
            found["id"] = storage.instruments.get_or_create(second, AssetClass.CRYPTO, "racecoin", exchange="kraken").id
            second.commit()
        except Exception as exc:  # reported below
            found["error"] = exc

    thread = threading.Thread(target=other)
    thread.start()
    time.sleep(0.5)  # the other transaction is now waiting on this one's row
    first.commit()
    thread.join(timeout=30)
    assert found == {"id": created.id}
    first.close()
    second.close()
