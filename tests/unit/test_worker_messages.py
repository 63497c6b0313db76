"""Tasks and outcomes as the JSON they travel in to and from the workers: every task kind comes back equal,
field by field and type by type, through an actual JSON text."""
from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest

import financial.ingest.sources
import lib
from financial.config import ROOT
from financial.ingest.report import Outcome
from financial.ingest.sources.alphavantage import StockTask
from financial.ingest.sources.coins import CoinFileTask
from financial.ingest.sources.crypto import MarketTask
from financial.ingest.sources.demo import DemoCoin, DemoMarket, DemoStock, demo_tasks
from financial.workers.messages import KINDS, decode_outcome, decode_task, encode_outcome, encode_task

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.timezone.utc)
TASKS = [
    StockTask("IBM", lib.Interval.DAY, 14),
    StockTask("MSFT", lib.Interval.MIN5, 3),
    MarketTask(lib.parse_market("kraken:btcusd"), "exchange"),
    MarketTask(lib.parse_market("binance:ethusdt"), "cryptowatch", lib.Interval.MIN15, dt.timedelta(days=2, seconds=30),
               dt.timedelta(days=30)),
    CoinFileTask(Path("/srv/history/coin_Bitcoin.csv")),
    CoinFileTask(ROOT / "data" / "fixtures" / "csv" / "coin_Bitcoin.csv"),
    DemoStock(ROOT / "data" / "fixtures" / "alphavantage" / "TIME_SERIES_DAILY_IBM.json", NOW.date()),
    DemoMarket(ROOT / "data" / "fixtures" / "cryptowatch" / "OHLC_kraken_btcusd.json", NOW),
    DemoCoin(ROOT / "data" / "fixtures" / "csv" / "coin_XRP.csv", NOW.date()),
]


def through_json(data):
    return json.loads(json.dumps(data))


@pytest.mark.parametrize("task", TASKS, ids=lambda task: f"{type(task).__name__}:{task.label}")
def test_every_task_kind_comes_back_equal(task):
    back = decode_task(through_json(encode_task(task)))
    assert back == task and type(back) is type(task)
    for field in dataclasses.fields(task):
        assert type(getattr(back, field.name)) is type(getattr(task, field.name)), field.name
    assert back.label == task.label and back.upstream == task.upstream


def test_the_sample_data_tasks_travel_too():
    tasks = demo_tasks(now=NOW)
    assert [decode_task(through_json(encode_task(task))) for task in tasks] == tasks


def test_a_path_in_the_repository_travels_relative_to_it():
    inside = encode_task(TASKS[5])["fields"]["path"]
    assert inside == {"$repo_path": "data/fixtures/csv/coin_Bitcoin.csv"}  # another checkout finds it
    assert encode_task(TASKS[4])["fields"]["path"] == {"$path": "/srv/history/coin_Bitcoin.csv"}


def test_the_wire_format_is_plain_tagged_json():
    assert encode_task(TASKS[3]) == {"kind": "market", "fields": {
        "market": {"$market": "binance:ethusdt"}, "source": "cryptowatch", "interval": {"$interval": "15min"},
        "first_window": {"$timedelta": 172830.0}, "retention": {"$timedelta": 2592000.0}}}
    assert encode_task(TASKS[7])["fields"]["now"] == {"$datetime": "2026-03-04T05:06:07.890123+00:00"}


def test_every_task_class_of_the_sources_is_registered():
    """A new source's task must be registered to travel; found here by what a task is (a dataclass with fetch)."""
    found = set()
    for module_info in pkgutil.iter_modules(financial.ingest.sources.__path__):
        module = importlib.import_module(f"financial.ingest.sources.{module_info.name}")
        found |= {cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if cls.__module__ == module.__name__ and dataclasses.is_dataclass(cls) and hasattr(cls, "fetch")}
    assert found == set(KINDS.values())


def test_what_is_not_a_task_is_refused_by_name():
    @dataclasses.dataclass(frozen=True)
    class Stray:
        label: str = "x"
        upstream: str = "y"

    with pytest.raises(TypeError, match="Stray is not a registered ingest task"):
        encode_task(Stray())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown kind"):
        decode_task({"kind": "rocket", "fields": {}})
    with pytest.raises(ValueError, match="of kind 'stock'"):
        decode_task({"kind": "stock", "fields": {"symbol": "IBM", "colour": "red"}})
    with pytest.raises(ValueError, match="not an ingest task value"):
        decode_task({"kind": "coin_file", "fields": {"path": {"$pickle": "..."}}})


def test_outcomes_travel_by_field_name_and_unknown_fields_are_dropped():
    outcome = Outcome("IBM", "failed", 0, "daily quota spent: ...", 1.25, quota_spent=True, retryable=False)
    assert decode_outcome(through_json(encode_outcome(outcome))) == outcome
    stored = Outcome("BTC", "ok", 10, instrument_id=42)
    assert decode_outcome(through_json(encode_outcome(stored))) == stored  # which instrument changed travels too
    newer = {**encode_outcome(Outcome("BTC", "ok", 10)), "warnings": 3}  # a field a newer worker adds
    assert decode_outcome(newer) == Outcome("BTC", "ok", 10)
