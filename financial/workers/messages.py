"""Ingest tasks and their outcomes as JSON, the form they travel in between the enqueuing process and the
workers.

A task is a frozen dataclass of plain values (see financial.ingest.tasks), registered here under a kind:

    {"kind": "market", "fields": {"market": {"$market": "kraken:btcusd"}, "source": "exchange",
                                  "interval": {"$interval": "1min"}, "first_window": {"$timedelta": 86400.0},
                                  "retention": {"$timedelta": 2592000.0}}}

Values JSON has no type for are tagged: markets, intervals, time spans, datetimes, dates and paths. A path
inside the repository travels relative to it, so that a worker whose checkout sits elsewhere (another
machine, a container) finds the same file. Outcomes travel as their fields by name; fields the receiver
does not know are dropped, so a field added to `Outcome` later crosses between versions unharmed.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Mapping

import lib
from financial.config import ROOT
from financial.ingest.report import Outcome
from financial.ingest.sources.alphavantage import StockTask
from financial.ingest.sources.coins import CoinFileTask
from financial.ingest.sources.crypto import MarketTask
from financial.ingest.sources.demo import DemoCoin, DemoMarket, DemoStock
from financial.ingest.tasks import Task

KINDS: dict[str, type] = {"stock": StockTask, "market": MarketTask, "coin_file": CoinFileTask,
                          "demo_stock": DemoStock, "demo_market": DemoMarket, "demo_coin": DemoCoin}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


def encode_task(task: Task) -> dict[str, Any]:
    kind = _KIND_OF.get(type(task))
    if kind is None:
        raise TypeError(f"{type(task).__name__} is not a registered ingest task (financial.workers.messages.KINDS)")
    fields = dataclasses.fields(task)  # type: ignore[arg-type]  # every registered kind is a dataclass
    return {"kind": kind, "fields": {field.name: encode_value(getattr(task, field.name)) for field in fields}}


def decode_task(message: Mapping[str, Any]) -> Task:
    """The task of `message`; ValueError naming what is wrong with a message that is not one."""
    try:
        cls, fields = KINDS[message["kind"]], message["fields"]
        task: Task = cls(**{name: decode_value(value) for name, value in fields.items()})
    except KeyError as exc:
        raise ValueError(f"not an ingest task message: unknown kind or missing {exc}") from None
    except TypeError as exc:
        raise ValueError(f"not an ingest task message of kind {message.get('kind')!r}: {exc}") from None
    return task


def encode_outcome(outcome: Outcome) -> dict[str, Any]:
    return dataclasses.asdict(outcome)


def decode_outcome(data: Mapping[str, Any]) -> Outcome:
    known = {field.name for field in dataclasses.fields(Outcome)}
    return Outcome(**{name: value for name, value in data.items() if name in known})


def encode_value(value: Any) -> Any:
    if isinstance(value, lib.MarketId):
        return {"$market": value.label}
    if isinstance(value, lib.Interval):  # before str: an Interval is one
        return {"$interval": value.value}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, dt.datetime):  # before date: a datetime is a date too
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Path):
        path = value.absolute()
        if path.is_relative_to(ROOT):
            return {"$repo_path": path.relative_to(ROOT).as_posix()}
        return {"$path": str(path)}
    raise TypeError(f"cannot send a {type(value).__name__} in an ingest task message")


_DECODERS = {"$market": lib.parse_market, "$interval": lib.Interval.parse,
             "$timedelta": lambda seconds: dt.timedelta(seconds=seconds), "$datetime": dt.datetime.fromisoformat,
             "$date": dt.date.fromisoformat, "$repo_path": lambda path: ROOT / path, "$path": Path}


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in _DECODERS:
            raise ValueError(f"not an ingest task value: {str(value)[:80]}")
        tag, encoded = next(iter(value.items()))
        return _DECODERS[tag](encoded)
    return value
