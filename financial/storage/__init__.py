"""Data access, one module per domain, in SQL for SQLite and MySQL alike.

Functions take the session (or connection) as their first argument and never commit: the caller owns
the transaction (`financial.transactions.unit_of_work`), so an ingest can write a whole series, bump the
data generation and commit once. Reads return small typed rows (NamedTuples declared beside their
query), never bare `sa.Row`s read by label.

    dialect      native upserts and the hand-rendered literals of the bulk bar path
    instruments  instruments: identity, creation, search, finest stored interval
    bars         bar upserts, retention pruning, a series' bars
    rollups      hourly sufficient statistics of intraday series, kept with their bars
    stocks       system A: daily stock records and their averages
    metrics      system B: figures over a window, the stored rankings
    dashboard    system D: daily changes per instrument
    accounts     users and bearer tokens
    watchlists   who watches which market
    alerts       alerts and their e-mail deliveries
    state        the data generation that tags cache entries
"""
from financial.storage import (accounts, alerts, bars, dashboard, dialect, instruments, metrics, rollups, state,
                               stocks, watchlists)

__all__ = ["accounts", "alerts", "bars", "dashboard", "dialect", "instruments", "metrics", "rollups", "state",
           "stocks", "watchlists"]
