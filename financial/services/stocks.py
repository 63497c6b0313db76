"""System A: daily stock records and statistics, in the exact shapes its users rely on.

Records carry prices as strings with two decimals and volume as an integer string; statistics carry
numbers rounded to two decimals (prices) and to an integer (volume). Rounding is half-up on the decimal
value, as a person rounding the upstream's figures would do it.
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from financial.errors import NotFound
from financial.extensions import db_session
from financial.paging import Page
from financial.storage import stocks

CENT = Decimal("0.01")


def round_half_up(value: float, places: Decimal = CENT) -> Decimal:
    return Decimal(repr(float(value))).quantize(places, rounding=ROUND_HALF_UP)


def price_text(value: float) -> str:
    return str(round_half_up(value))


def volume_text(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else repr(float(value))


def financial_data(page: Page, *, symbol: str | None = None, start_date: dt.date | None = None,
                   end_date: dt.date | None = None) -> tuple[list[dict], int]:
    """One page of daily records, sorted by date then symbol, and the count of all matching records."""
    session = db_session()
    count = stocks.count_records(session, symbol=symbol, start=start_date, end=end_date)
    rows = []
    if page.reaches(count):
        rows = stocks.records(session, symbol=symbol, start=start_date, end=end_date, limit=page.size,
                              offset=page.offset)
    records = [{"symbol": row.symbol, "date": row.ts.date().isoformat(), "open_price": price_text(row.open),
                "close_price": price_text(row.close), "volume": volume_text(row.volume)} for row in rows]
    return records, count


def statistics(*, symbol: str, start_date: dt.date, end_date: dt.date) -> dict:
    """Means of the daily open, close and volume of `symbol` over [start_date, end_date]."""
    row = stocks.averages(db_session(), symbol=symbol, start=start_date, end=end_date)
    if not row.points or row.open is None or row.close is None or row.volume is None:
        raise NotFound(f"no daily bars for symbol {symbol!r} between {start_date} and {end_date}")
    return {
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "symbol": symbol,
        "average_daily_open_price": float(round_half_up(row.open)),
        "average_daily_close_price": float(round_half_up(row.close)),
        "average_daily_volume": int(round_half_up(row.volume, Decimal(1))),
    }
