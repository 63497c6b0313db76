"""Minute tracking of crypto markets (system B): the ingest tasks of `--source cryptowatch|exchange`.

One task per market, run by `ingest.run` like any other. A task validates the market with the source
(an unknown market fails that task alone), picks its window from what is already stored, fetches the
closed candles of that window and hands them to `ingest.store_series`:

- first run for a market: the last `first_window` (24 hours by default);
- after that: from the newest stored bar minus `OVERLAP_BARS` periods, so the candles fetched last time
  are fetched again and any the exchange corrected since are rewritten (the upsert keeps one row per
  minute); never further back than the retention, since older bars would be pruned again at once.

Exchanges keep limited history (Kraken: the last 720 candles), so a first run may start later than asked;
the summary says so.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Sequence

import lib
from financial import ingest, storage
from financial.config import Settings
from financial.extensions import db
from financial.models import CRYPTO
from lib.markets import CryptoSource, MarketId

FIRST_WINDOW = dt.timedelta(hours=24)
OVERLAP_BARS = 5
SOURCES = ("cryptowatch", "exchange")


def crypto_source(name: str, settings: Settings, **client_options) -> CryptoSource:
    """The crypto source called `name`, configured from the settings (never from the process environment);
    `client_options` (timeout, retry) go to its clients."""
    if name == "cryptowatch":
        return lib.CryptowatchClient(settings.cryptowatch_api_key, settings.cryptowatch_base_url, environ={},
                                     **client_options)
    if name == "exchange":
        return lib.ExchangeSource(lib.exchange.parse_base_urls(settings.exchange_base_urls),
                                  min_interval=settings.exchange_min_interval, **client_options)
    raise ValueError(f"unknown crypto source {name!r}; expected one of {', '.join(SOURCES)}")


def crypto_tasks(source: CryptoSource, markets: Sequence[MarketId], *, interval: lib.Interval = lib.Interval.MIN1,
                 first_window: dt.timedelta = FIRST_WINDOW, retention: dt.timedelta | None = None,
                 now: Callable[[], dt.datetime] | None = None) -> list[ingest.Task]:
    """One task per market: the closed candles since the last stored one (with an overlap), or over
    `first_window` on the first run. `now` is a clock (tests pin it)."""
    clock = now or (lambda: dt.datetime.now(dt.timezone.utc))
    return [ingest.Task(market.label, source.source,
                        _fetch(source, market, interval, first_window, retention, clock)) for market in markets]


def _fetch(source: CryptoSource, market: MarketId, interval: lib.Interval, first_window: dt.timedelta,
           retention: dt.timedelta | None, clock: Callable[[], dt.datetime]) -> Callable[[], ingest.Series]:
    def fetch() -> ingest.Series:
        info = source.resolve(market)
        now = clock()
        # A connection of its own: the read must not leave the session's transaction open for the fetch.
        with db.engine.connect() as connection:
            latest = storage.latest_bar_time_of(connection, CRYPTO, info.pair, exchange=info.exchange,
                                                interval=interval)
        since = window_start(latest, interval, now, first_window, retention)
        bars = source.candles(info, interval, since, now)
        note = ""
        if latest is not None and not bars:
            note = f"no closed candles since {since:%Y-%m-%d %H:%M} UTC"
        elif latest is None and bars and bars[0].timestamp - since > dt.timedelta(seconds=2 * interval.seconds):
            note = f"history from {bars[0].timestamp:%Y-%m-%d %H:%M} UTC only (the upstream keeps no older candles)"
        spec = ingest.InstrumentSpec(CRYPTO, info.pair, exchange=info.exchange, base=info.base, quote=info.quote,
                                     name=info.name)
        return ingest.Series(spec, interval, bars, note)
    return fetch


def window_start(latest: dt.datetime | None, interval: lib.Interval, now: dt.datetime, first_window: dt.timedelta,
                 retention: dt.timedelta | None) -> dt.datetime:
    """Where a market's fetch starts: `latest` (naive UTC, as stored) minus the overlap, else now − first_window;
    never before now − retention."""
    if latest is None:
        since = now - first_window
    else:
        since = latest.replace(tzinfo=dt.timezone.utc) - dt.timedelta(seconds=OVERLAP_BARS * interval.seconds)
    if retention is not None:
        since = max(since, now - retention)
    return since
