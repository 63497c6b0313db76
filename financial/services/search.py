"""System D: finding instruments by name or symbol."""
from __future__ import annotations

from financial.extensions import db_session
from financial.paging import Page
from financial.storage import instruments


def search(page: Page, *, name: str) -> tuple[list[dict], int]:
    """One page of the instruments matching `name` (best matches first, see `storage.instruments.search`)
    and the count of all matches. `exchange` is null for stocks and coins, as in /api/metrics."""
    rows, count = instruments.search(db_session(), name, limit=page.size, offset=page.offset)
    return [{"name": row.name or row.symbol, "symbol": row.symbol, "exchange": row.exchange or None,
             "asset_class": row.asset_class} for row in rows], count
