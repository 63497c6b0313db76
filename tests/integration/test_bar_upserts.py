"""storage.upsert_bars hands rows to the drivers directly: values must come back exactly as given, on both
stacks, and only the types of a bar row may be written as MySQL literals."""
import datetime as dt
import math
import sys

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from financial import storage
from financial.extensions import db
from financial.models import AssetClass, Bar

AWKWARD = [1 / 3, 0.1, 2 / 3 * 1e-9, 123456789.12345679, 1e-300, 1.7976931348623157e308, 2.0 ** 53 + 2,
           5e-324 * 2 ** 60, 0.0, 98765432101.25, 3.141592653589793e20]


def test_awkward_floats_and_timestamps_round_trip_exactly(app):
    start = dt.datetime(2001, 2, 3, 4, 5, 6)
    rows_in = [{"interval": "1day", "ts": start + dt.timedelta(days=n), "open": value, "high": value, "low": value,
                "close": value, "volume": value, "adjusted_close": None if n % 2 else value,
                "market_cap": value if n % 3 else None}
               for n, value in enumerate(AWKWARD)]
    with app.app_context():
        instrument = storage.instruments.get_or_create(db.session, AssetClass.CRYPTO, "AWK", name="Awkward")
        for row in rows_in:
            row["instrument_id"] = instrument.id
        assert storage.bars.upsert(db.session, rows_in, batch_size=4) == len(AWKWARD)  # several batches
        db.session.commit()
        with db.engine.connect() as connection:
            stored = {row.ts: row for row in connection.execute(sa.select(Bar.__table__))}
    assert len(stored) == len(rows_in)
    for row in rows_in:
        got = stored[row["ts"]]
        for column in ("open", "high", "low", "close", "volume", "adjusted_close", "market_cap"):
            assert getattr(got, column) == row[column], (column, row[column])


def test_sqlite_timestamps_are_written_in_sqlalchemys_format():
    """Queries compare against SQLAlchemy's text for DateTime on SQLite, so the upsert must write the same."""
    process = sqlite.DATETIME().bind_processor(sqlite.dialect())
    for value in (dt.datetime(2021, 7, 6), dt.datetime(999, 1, 2, 3, 4, 5, 6), dt.datetime(2021, 7, 6, 23, 59, 59, 1),
                  dt.datetime(9999, 12, 31, 23, 59, 59, 999999)):
        assert storage.dialect.sqlite_datetime(value) == process(value)


@pytest.mark.parametrize("name, value, literal", [
    ("open", 1.5, "1.5"), ("low", 1e-300, "1e-300"), ("market_cap", None, "NULL"), ("instrument_id", 7, "7"),
    ("interval", "1day", "'1day'"), ("ts", dt.datetime(2021, 7, 6), "'2021-07-06 00:00:00'"),
    ("ts", dt.datetime(2021, 7, 6, 1, 2, 3, 4), "'2021-07-06 01:02:03.000004'"),
])
def test_mysql_literals_of_bar_values(name, value, literal):
    assert storage.dialect.mysql_literal(name, value) == literal


@pytest.mark.parametrize("name, value", [("open", math.nan), ("high", math.inf), ("low", -math.inf),
                                         ("interval", "1day'; DROP TABLE bars; --"), ("interval", "a b"),
                                         ("close", True), ("volume", b"1"), ("ts", dt.date(2021, 7, 6)),
                                         ("open", [1]), ("open", "1.5")])
def test_mysql_literals_refuse_anything_else(name, value):
    with pytest.raises((TypeError, ValueError)):
        storage.dialect.mysql_literal(name, value)


def test_mysql_literals_of_numpy_numbers():
    numpy = pytest.importorskip("numpy")
    assert storage.dialect.mysql_literal("open", numpy.float64(0.1)) == "0.1"
    assert storage.dialect.mysql_literal("close", numpy.float64(sys.float_info.max)) == repr(sys.float_info.max)
    assert storage.dialect.mysql_literal("instrument_id", numpy.int64(3)) == "3"
