"""System D: finding instruments by name or symbol (SPEC §5.D)."""
from __future__ import annotations

from financial import storage
from financial.extensions import db


def search(*, name: str, limit: int, page: int) -> tuple[list[dict], int]:
    """One page of the instruments matching `name` (best matches first, see `storage.search_instruments`)
    and the count of all matches. `exchange` is null for stocks and coins, as in /api/metrics."""
    rows, count = storage.search_instruments(db.session, name, limit=limit, offset=(page - 1) * limit)
    return [{"name": row.name or row.symbol, "symbol": row.symbol, "exchange": row.exchange or None,
             "asset_class": row.asset_class} for row in rows], count
