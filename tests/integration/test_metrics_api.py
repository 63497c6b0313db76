"""System B's endpoints on both stacks, every figure checked against pandas (tests/expected.py).

The data is built relative to now: crypto markets with minute bars inside and outside the windows, two
markets with identical bars (a tie), a market with one bar in the last day, a stock with daily bars only,
a stock with daily and minute bars (measured on the minutes), and an instrument without bars. The
rankings are computed as an ingest computes them, at a pinned moment.
"""
from __future__ import annotations

import datetime as dt
import math

import pytest
import sqlalchemy as sa

import lib
from financial import storage
from financial.extensions import db
from financial.models import AssetClass, Bar, BarDayRollup, BarRollup
from financial.services import metrics
from tests import expected
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.seed import assert_bad_request, store, store_crypto

UTC = dt.timezone.utc
MINUTE = lib.Interval.MIN1
WINDOWS = {"24h": 24, "7d": 168, "30d": 720, "36h": 36, "2d": 48, "1d": 24, "1h": 1, "366d": 8784}


@pytest.fixture
def as_of():
    return floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=30)


@pytest.fixture
def tracked(app, as_of):
    """{(exchange, symbol): bars} of everything stored, stocks under exchange ''; rankings refreshed at as_of."""
    last_minute = floor_time(as_of, 60)
    btc = minute_bars("btc", end=last_minute, count=1600, start_price=60000, price_decimals=1)
    series = {
        ("kraken", "btcusd"): (btc, MINUTE, "BTC", "USD"),
        ("bitstamp", "btcusd"): (btc, MINUTE, "BTC", "USD"),  # the same bars: ties are broken by exchange
        ("kraken", "ethusd"): (minute_bars("eth", end=last_minute, count=100, start_price=3000), MINUTE,
                               "ETH", "USD"),
        ("binance", "solusdt"): (minute_bars("sol", end=last_minute - dt.timedelta(days=2), count=500,
                                             start_price=150), MINUTE, "SOL", "USDT"),
        ("coinbase", "dogeusd"): (minute_bars("doge", end=last_minute - dt.timedelta(hours=2), count=1,
                                              start_price=0.2), MINUTE, "DOGE", "USD"),
    }
    for (exchange, pair), (bars, interval, base, quote) in series.items():
        store_crypto(app, bars, exchange, pair, interval=interval, base=base, quote=quote)
    yesterday = as_of.date() - dt.timedelta(days=1)
    ibm = daily_bars("IBM", end=yesterday, count=40, start_price=150)
    msft_minutes = minute_bars("MSFT", end=last_minute - dt.timedelta(minutes=3), count=200, start_price=400,
                               volume_decimals=0)
    store(app, ibm, "IBM")
    store(app, daily_bars("MSFT", end=yesterday, count=40, start_price=400), "MSFT")
    store(app, msft_minutes, "MSFT", interval=MINUTE)
    with app.app_context():
        storage.instruments.get_or_create(db.session, AssetClass.CRYPTO, "xrpusd", exchange="kraken", base="XRP",
                                          quote="USD")
        db.session.commit()
        metrics.refresh_rankings(now=as_of)
    reference = {key: value[0] for key, value in series.items()}
    reference.update({("", "IBM"): ibm, ("", "MSFT"): msft_minutes, ("kraken", "xrpusd"): []})
    return reference


def ids(app) -> dict[tuple[str, str], tuple[int, str, str | None, str | None]]:
    with app.app_context():
        rows = db.session.execute(sa.text("SELECT exchange, symbol, id, asset_class, base, quote FROM instruments"))
        return {(row.exchange, row.symbol): (row.id, row.asset_class, row.base, row.quote) for row in rows}


INTERVALS = {("", "IBM"): "1day", ("kraken", "xrpusd"): None}


def test_the_fixture_covers_every_case(tracked, as_of):
    day = {key: expected.figures(bars, as_of, 24) for key, bars in tracked.items()}
    assert day[("kraken", "btcusd")]["points"] == 1440 and day[("kraken", "ethusd")]["points"] == 100
    assert day[("binance", "solusdt")]["points"] == 0
    assert expected.figures(tracked[("binance", "solusdt")], as_of, 168)["points"] == 500
    doge = day[("coinbase", "dogeusd")]
    assert (doge["points"], doge["stdev"], doge["volatility"]) == (1, 0.0, None)
    assert day[("", "IBM")]["points"] == 0 and day[("", "MSFT")]["points"] == 200


@pytest.mark.parametrize("rank_by", ["stdev", "volatility"])
def test_every_instrument_is_ranked_with_independent_figures(app, client, tracked, as_of, rank_by):
    identities = ids(app)
    for window, hours in WINDOWS.items():
        response = client.get("/api/metrics", query_string={"window": window, "rank_by": rank_by})
        assert response.status_code == 200
        body = response.get_json()
        want = expected.ranking(tracked, as_of, hours, rank_by)
        assert body["info"] == {"error": ""}
        assert body["pagination"] == {"count": len(want), "page": 1, "limit": 100, "pages": 1}
        assert [(entry["exchange"] or "", entry["symbol"]) for entry in body["data"]] == [key for key, _, _ in want]
        for entry, (key, figures, rank) in zip(body["data"], want):
            instrument_id, asset_class, base, quote = identities[key]
            assert list(entry) == ["id", "exchange", "symbol", "base", "quote", "interval", "last_price",
                                   "last_time", "points", "mean", "stdev", "volatility", "rank"]
            assert (entry["id"], entry["exchange"], entry["base"], entry["quote"]) == (
                instrument_id, key[0] or None, base, quote)
            assert entry["interval"] == INTERVALS.get(key, "1min")
            assert entry["rank"] == rank, (window, key)
            expected.assert_figures(entry, figures)


def test_the_ranking_is_not_the_price_order(client, tracked, as_of):
    """The tie and the volatility order: both figures really are ranked, and differently."""
    by_stdev = client.get("/api/metrics").get_json()["data"]
    by_volatility = client.get("/api/metrics?rank_by=volatility").get_json()["data"]
    assert [(e["exchange"], e["rank"]) for e in by_stdev[:2]] == [("bitstamp", 1), ("kraken", 2)]
    assert by_stdev[0]["stdev"] == by_stdev[1]["stdev"]
    ranked_volatility = [e for e in by_volatility if e["rank"] is not None]
    volatilities = [e["volatility"] for e in ranked_volatility]
    assert volatilities == sorted(volatilities, reverse=True)
    assert [e["symbol"] for e in by_stdev] != [e["symbol"] for e in by_volatility]
    doge = next(e for e in by_volatility if e["symbol"] == "dogeusd")
    assert doge["points"] == 1 and doge["stdev"] == 0 and doge["volatility"] is None and doge["rank"] is None


def test_pages_of_the_ranking(client, tracked):
    everything = client.get("/api/metrics?window=7d").get_json()["data"]
    pages = [client.get(f"/api/metrics?window=7d&limit=3&page={page}").get_json() for page in (1, 2, 3, 4)]
    assert [entry for body in pages for entry in body["data"]] == everything
    assert pages[0]["pagination"] == {"count": len(everything), "page": 1, "limit": 3,
                                      "pages": math.ceil(len(everything) / 3)}
    assert pages[3]["data"] == []


@pytest.mark.parametrize("window, rank_by", [("7d", "volatility"), ("36h", "stdev")])
def test_one_instrument_is_its_entry_of_the_list(app, client, tracked, window, rank_by):
    listing = client.get(f"/api/metrics?window={window}&rank_by={rank_by}").get_json()["data"]
    for entry in listing:
        body = client.get(f"/api/metrics/{entry['id']}?window={window}&rank_by={rank_by}").get_json()
        assert body == {"data": entry, "info": {"error": ""}}


@pytest.mark.parametrize("key, window", [(("kraken", "btcusd"), "24h"), (("kraken", "ethusd"), "36h"),
                                         (("", "IBM"), "30d"), (("", "MSFT"), "7d"), (("binance", "solusdt"), "24h"),
                                         (("kraken", "xrpusd"), "24h")])
def test_prices_are_the_windows_closes_ascending(app, client, tracked, as_of, key, window):
    instrument_id = ids(app)[key][0]
    body = client.get(f"/api/metrics/{instrument_id}/prices?window={window}").get_json()
    selected = expected.window(tracked[key], as_of, WINDOWS[window])
    want = [{"price": row.close, "time": row.ts.isoformat(timespec="seconds") + "Z"} for row in selected.itertuples()]
    assert body["data"] == want
    assert body["pagination"] == {"count": len(want), "page": 1, "limit": 50000, "pages": math.ceil(len(want) / 50000)}
    points = client.get(f"/api/metrics/{instrument_id}?window={window}").get_json()["data"]["points"]
    assert points == len(want)


def test_prices_in_pages(app, client, tracked, as_of):
    instrument_id = ids(app)[("kraken", "btcusd")][0]
    everything = client.get(f"/api/metrics/{instrument_id}/prices").get_json()["data"]
    page = client.get(f"/api/metrics/{instrument_id}/prices?limit=100&page=3").get_json()
    assert page["data"] == everything[200:300]
    assert page["pagination"] == {"count": 1440, "page": 3, "limit": 100, "pages": 15}
    assert [p["time"] for p in everything] == sorted(p["time"] for p in everything)


@pytest.mark.parametrize("path", ["/api/metrics/{missing}", "/api/metrics/{missing}/prices",
                                  "/api/metrics/99999999999999999999", "/api/metrics/0/prices"])
def test_unknown_ids_are_404_in_the_envelope(app, client, tracked, path):
    missing = max(instrument_id for instrument_id, *_ in ids(app).values()) + 1
    response = client.get(path.format(missing=missing))
    assert response.status_code == 404
    body = response.get_json()
    assert body["data"] is None and body["info"]["error"]
    if "{missing}" in path:
        assert body["info"]["error"] == f"no tracked instrument with id {missing}"


@pytest.mark.parametrize("query, name", [
    ("window=0h", "window"), ("window=367d", "window"), ("window=8785h", "window"), ("window=24", "window"),
    ("window=h", "window"), ("window=1.5h", "window"), ("window=-1h", "window"), ("window=1w", "window"),
    ("window=", "window"), ("rank_by=price", "rank_by"), ("rank_by=", "rank_by"), ("limit=0", "limit"),
    ("limit=1001", "limit"), ("page=0", "page"), ("windw=24h", "windw"),
])
def test_bad_parameters_are_400_naming_them(client, query, name):
    for path in ("/api/metrics", "/api/metrics/1", "/api/metrics/1/prices"):
        if name in ("rank_by", "limit", "page") and path != "/api/metrics":
            continue
        response = client.get(f"{path}?{query}")
        assert_bad_request(response, name)
        assert "Traceback" not in response.get_data(as_text=True)


def test_window_spellings(client, tracked):
    assert client.get("/api/metrics?window=1d").get_json()["data"] == client.get("/api/metrics").get_json()["data"]
    assert client.get("/api/metrics?window=24H").status_code == 200


# -- computed once per ingest, served from the cache, never stale ------------------------------------

def test_rankings_are_computed_by_the_ingest_not_by_requests(app, client, tracked, as_of, monkeypatch):
    before = client.get("/api/metrics").get_json()
    # The data changes behind the service's back, with a new generation (so no cached answer is served):
    # the standard windows still show what the last ingest computed, as they are read, not computed.
    with app.app_context():
        db.session.execute(sa.text("UPDATE bars SET close = close * 2"))
        storage.rollups.backfill(db.session)  # the hourly rollups follow, as every write path keeps them
        storage.state.bump_generation(db.session)
        db.session.commit()

    def no_computing(*args, **kwargs):
        raise AssertionError("a request computed the figures of a standard window")

    monkeypatch.setattr(storage.metrics, "window_figures", no_computing)
    assert client.get("/api/metrics").get_json() == before
    assert client.get("/api/metrics?window=7d").status_code == 200
    monkeypatch.undo()
    with app.app_context():
        metrics.refresh_rankings(now=as_of)
    after = client.get("/api/metrics").get_json()["data"]
    btc = next(e for e in after if e["exchange"] == "kraken" and e["symbol"] == "btcusd")
    assert btc["stdev"] == pytest.approx(2 * next(e for e in before["data"] if e["exchange"] == "kraken"
                                                  and e["symbol"] == "btcusd")["stdev"], rel=1e-9)


def test_answers_come_from_the_cache_until_an_ingest(app, client, tracked, as_of):
    first = client.get("/api/metrics?window=36h").get_json()
    with app.app_context():  # behind the service's back, no new generation: the cached answer stays
        db.session.execute(sa.delete(Bar).where(Bar.interval == MINUTE.value))
        db.session.execute(sa.delete(BarRollup))  # (the bars' rollups go with them)
        db.session.execute(sa.delete(BarDayRollup))
        db.session.commit()
    assert client.get("/api/metrics?window=36h").get_json() == first
    # An ingest stores new bars for one market (new generation) and recomputes the rankings.
    new = minute_bars("eth-new", end=floor_time(as_of, 60), count=50, start_price=3500)
    store_crypto(app, new, "kraken", "ethusd", interval=MINUTE)
    with app.app_context():
        metrics.refresh_rankings(now=as_of)
    data = client.get("/api/metrics?window=36h").get_json()["data"]
    eth = next(e for e in data if e["symbol"] == "ethusd")
    expected.assert_figures(eth, expected.figures(new, as_of, 36))
    assert next(e for e in data if e["symbol"] == "btcusd")["points"] == 0


def test_an_on_demand_window_is_computed_once_per_generation(app, client, tracked, as_of, monkeypatch):
    computed = []
    window_figures = storage.metrics.window_figures

    def counted(session, instrument_ids, interval, start, end):
        computed.append((interval, round((end - start).total_seconds() / 3600)))
        return window_figures(session, instrument_ids, interval, start, end)

    monkeypatch.setattr(storage.metrics, "window_figures", counted)
    whole = client.get("/api/metrics?window=36h").get_json()["data"]
    once = len(computed)
    assert once > 0 and {hours for _, hours in computed} == {36}
    # Other pages, limits, rankings and one instrument's view of the same window: the same figures, no SQL.
    assert client.get("/api/metrics?window=36h&limit=2&page=2").get_json()["data"] == whole[2:4]
    by_volatility = client.get("/api/metrics?window=36h&rank_by=volatility").get_json()["data"]
    assert {entry["id"]: entry["stdev"] for entry in by_volatility} == {entry["id"]: entry["stdev"] for entry in whole}
    assert client.get(f"/api/metrics/{whole[0]['id']}?window=36h").get_json()["data"] == whole[0]
    assert len(computed) == once
    # An ingest rewrites every ETH bar (a new generation): the window is computed again, once, from them.
    new = minute_bars("eth-again", end=floor_time(as_of, 60), count=100, start_price=3600)
    store_crypto(app, new, "kraken", "ethusd", interval=MINUTE)
    with app.app_context():
        metrics.refresh_rankings(now=as_of)
    computed.clear()
    eth = next(e for e in client.get("/api/metrics?window=36h").get_json()["data"] if e["symbol"] == "ethusd")
    assert client.get("/api/metrics?window=36h&limit=3").status_code == 200
    assert len(computed) == once
    expected.assert_figures(eth, expected.figures(new, as_of, 36))


def test_an_instrument_added_after_the_ingest_is_listed_without_figures(app, client, tracked):
    with app.app_context():
        instrument = storage.instruments.get_or_create(db.session, AssetClass.STOCK, "NEWCO")
        storage.state.bump_generation(db.session)
        db.session.commit()
        new_id = instrument.id
    body = client.get(f"/api/metrics/{new_id}").get_json()["data"]
    assert body == {"id": new_id, "exchange": None, "symbol": "NEWCO", "base": None, "quote": None,
                    "interval": None, "last_price": None, "last_time": None, "points": 0, "mean": None,
                    "stdev": None, "volatility": None, "rank": None}
    assert client.get("/api/metrics").get_json()["data"][-1]["symbol"] in ("NEWCO", "xrpusd")


def test_an_empty_database_has_an_empty_ranking(client):
    assert client.get("/api/metrics").get_json() == {
        "data": [], "info": {"error": ""}, "pagination": {"count": 0, "page": 1, "limit": 100, "pages": 0}}
    assert client.get("/api/metrics?window=5d").get_json()["data"] == []
