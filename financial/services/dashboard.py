"""System D: the dashboard of daily price changes, for coins and any other instrument with daily bars.

Figures come from SQL (`storage.dashboard.entries`) and go out as JSON numbers at full precision. An entry's
`crypto` is the instrument's name, or its symbol when it has none (stocks ingested from AlphaVantage
carry no name), so the column is never null.
"""
from __future__ import annotations

import datetime as dt

from financial.errors import NotFound
from financial.extensions import db_session
from financial.paging import Page
from financial.storage import dashboard as storage

ORDER_BY = {"crypto": "crypto", "symbol": "symbol", "price": "price", "24h": "change_1d", "7d": "change_7d",
            "1m": "change_30d", "24h-volume": "volume", "market-cap": "market_cap"}  # API name -> column


def dashboard(page: Page, *, symbols: list[str] | None, day: dt.date | None, order_by: str,
              descending: bool) -> tuple[list[dict], int]:
    """One page of entries and the count of all of them.

    `symbols` (upper-case) selects instruments by symbol, None selects every instrument with a daily bar
    on or before `day`; `day` None means the latest date with a daily bar among the selected ones.
    Raises NotFound naming every symbol that no instrument with daily bars has.
    """
    session = db_session()
    ids = None
    if symbols is not None:
        found = storage.daily_instruments(session, symbols)
        known = {row.symbol.upper() for row in found}
        unknown = [symbol for symbol in symbols if symbol not in known]
        if unknown:
            raise NotFound(f"id: unknown symbol{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                           f"(no instrument with daily bars)")
        ids = [row.id for row in found]
    day = day or storage.latest_daily_date(session, ids)
    if day is None:
        return [], 0
    rows = storage.entries(session, day=day, instrument_ids=ids, order_by=ORDER_BY[order_by], descending=descending)
    return [_entry(row) for row in page.of(rows)], len(rows)


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def _entry(row: storage.Entry) -> dict:
    return {"crypto": row.crypto, "symbol": row.symbol, "price": _number(row.price),
            "24h": _number(row.change_1d), "7d": _number(row.change_7d), "1m": _number(row.change_30d),
            "24h-volume": _number(row.volume), "market-cap": _number(row.market_cap)}
