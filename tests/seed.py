"""Putting known data into the database for API tests, through the same write path as an ingest."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

import lib
from financial import ingest
from financial.models import AssetClass


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def store(app, bars: Sequence[lib.Bar], symbol: str, *, interval: lib.Interval = lib.Interval.DAY,
          asset_class: AssetClass = AssetClass.STOCK, exchange: str = "", name: str | None = None,
          base: str | None = None, quote: str | None = None) -> int:
    spec = ingest.InstrumentSpec(asset_class, symbol, exchange=exchange, name=name, base=base, quote=quote)
    with app.app_context():
        return ingest.store_series(ingest.Series(spec, interval, list(bars))).rows


def store_crypto(app, bars: Sequence[lib.Bar], exchange: str, pair: str, **kwargs) -> int:
    return store(app, bars, pair, asset_class=AssetClass.CRYPTO, exchange=exchange, **kwargs)


def frame(series: dict[str, Sequence[lib.Bar]]) -> pd.DataFrame:
    """One row per bar: symbol, date (datetime.date), timestamp, open, high, low, close, volume."""
    rows = [{"symbol": symbol, "date": bar.timestamp.date(), "timestamp": bar.timestamp, "open": bar.open,
             "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume}
            for symbol, bars in series.items() for bar in bars]
    return pd.DataFrame(rows)


PASSWORD = "correct horse battery staple"


def sign_in(client, email: str, password: str = PASSWORD, *, address: str = "192.0.2.10") -> dict[str, str]:
    """Sign up (if need be) and log in over HTTP; the headers that carry the token."""
    client.post("/api/auth/signup", json={"email": email, "password": password})
    response = client.post("/api/auth/login", json={"email": email, "password": password},
                           environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['data']['token']}"}


class NothingStored:
    """The `Stored` view of an empty database, for fetching tasks without one."""

    def latest(self, instrument, interval):
        return None

    def name_of(self, instrument):
        return None


def offline_context(*, upstreams=None, clock=None) -> ingest.FetchContext:
    """What a task's fetch gets when no database is involved."""
    from financial.upstreams import Upstreams
    from tests.conftest import base_settings
    return ingest.FetchContext(upstreams or Upstreams(base_settings()), NothingStored(),
                               clock or (lambda: dt.datetime.now(dt.timezone.utc)))


def assert_bad_request(response, name: str) -> None:
    """A 400 in the envelope whose message names `name`."""
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["data"] is None and name in body["info"]["error"], body


@dataclass(frozen=True)
class HandMadeTask:
    """An ingest task whose fetch returns given bars or raises a given error, and records that it was called."""

    instrument: ingest.InstrumentSpec
    interval: lib.Interval
    bars: Any = None
    error: Exception | None = None
    upstream: str = "test"
    note: str = ""
    calls: list = field(default_factory=list, compare=False)

    @property
    def label(self) -> str:
        return self.instrument.symbol

    def fetch(self, context):
        self.calls.append(self.label)
        if self.error is not None:
            raise self.error
        return ingest.Series(self.instrument, self.interval, list(self.bars), self.note)
