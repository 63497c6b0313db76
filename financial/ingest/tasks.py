"""What an ingest is made of: tasks that fetch one series each, and the series they return.

A task is plain data (which symbol, market or file; which interval and window), so the plan can decide
a run ahead of it and a task engine can carry it to a worker. Its `fetch` goes to its upstream through
`lib` and returns a typed `Series`; it never touches the database. What it needs to know of the stored
data (where a market's series ends, which coin owns a symbol) it asks `context.stored`, the runner's
read-only view, which tests replace with a dict.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import lib
from financial.models import AssetClass
from financial.upstreams import Upstreams


@dataclass(frozen=True)
class InstrumentSpec:
    """An instrument as a task names it; stored (created if need be) by its identity."""

    asset_class: AssetClass
    symbol: str
    exchange: str = ""
    base: str | None = None
    quote: str | None = None
    name: str | None = None


@dataclass
class Series:
    """What a task fetched: the instrument, its bars, and a note for the report."""

    instrument: InstrumentSpec
    interval: lib.Interval
    bars: Sequence[lib.Bar]
    note: str = ""


class Stored(Protocol):
    """What a task may ask of the data already stored."""

    def latest(self, instrument: InstrumentSpec, interval: lib.Interval) -> dt.datetime | None:
        """The newest stored bar of the instrument (naive UTC), None when there is none."""

    def name_of(self, instrument: InstrumentSpec) -> str | None:
        """The stored name of the instrument, None when it is unknown or has none."""


@dataclass
class FetchContext:
    upstreams: Upstreams
    stored: Stored
    clock: Callable[[], dt.datetime]  # aware UTC; tests pin it


class NotFetched(Exception):
    """The task's upstream must not be called after all (its daily quota was spent meanwhile, as another
    worker found): the task is reported as skipped, with this message."""


class Task(Protocol):
    @property
    def label(self) -> str:
        """How the report names it: the symbol, the market (`kraken:btcusd`) or the file."""

    @property
    def upstream(self) -> str:
        """The upstream it calls: once one says its daily quota is spent, the run stops calling it."""

    def fetch(self, context: FetchContext) -> Series: ...


def utc_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
