"""`/api/dashboard` against figures computed independently with pandas, on data dated relative to today.

The data has what a dashboard must cope with: gaps in a series (reference days fall back to the last
close before them), a coin listed 12 days ago (no 1m change), a coin whose data stopped 4 days ago, a
coin without market cap, two coins with identical figures (ties), a close of zero (no change against
it), a stock (weekdays only, no name, no market cap) and a crypto market with minute bars only (never
on the dashboard).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import pandas as pd
import pytest

import lib
from lib import stats
from financial.models import AssetClass
from financial import ingest
from financial.ingest.sources.coins import CoinFileTask
from tests.fakes.coin_csv import coin_bars, render
from tests.fakes.series import daily_bars, minute_bars
from tests.seed import assert_bad_request, offline_context, store, store_crypto, today_utc

KEYS = ["crypto", "symbol", "price", "24h", "7d", "1m", "24h-volume", "market-cap"]
ORDER_BY = ["crypto", "symbol", "price", "24h", "7d", "1m", "24h-volume", "market-cap"]
CHANGES = {"24h": 1, "7d": 7, "1m": 30}
YESTERDAY = today_utc() - dt.timedelta(days=1)


def coins(yesterday: dt.date) -> dict[tuple[str, str], list[lib.Bar]]:
    """{(name, symbol): daily bars} of the coins."""
    def days_ago(n):
        return yesterday - dt.timedelta(days=n)

    eth = [bar for bar in coin_bars("ETH", end=yesterday, days=70, start_price=3000.0, supply=120e6)
           if bar.date not in {days_ago(1), days_ago(7), days_ago(8), days_ago(9), days_ago(30)}]
    twin = coin_bars("TWIN", end=yesterday, days=70, start_price=5.0, supply=1e9)
    zero = coin_bars("ZRO", end=yesterday, days=70, start_price=0.01, supply=1e9)
    zero[-2] = replace(zero[-2], open=0.0, low=0.0, close=0.0)  # yesterday's 24h reference is a close of 0
    return {
        ("Bitcoin", "BTC"): coin_bars("BTC", end=yesterday, days=70, start_price=60000.0, supply=19.6e6),
        ("Ethereum", "ETH"): eth,
        ("Newcoin", "NEW"): coin_bars("NEW", end=yesterday, days=12, start_price=2.0, supply=5e8),
        ("Stalecoin", "OLD"): coin_bars("OLD", end=days_ago(4), days=70, start_price=0.5, supply=1e10),
        ("Nocap", "NOC"): coin_bars("NOC", end=yesterday, days=70, start_price=12.0, supply=None),
        ("Twin A", "TWA"): twin,
        ("Twin B", "TWB"): twin,
        ("Zerocoin", "ZRO"): zero,
    }


@pytest.fixture
def data(app) -> pd.DataFrame:
    """The instruments stored through the ingest path; one row per daily bar: symbol, crypto, date, close,
    volume, cap."""
    rows = []
    for (name, symbol), bars in coins(YESTERDAY).items():
        store(app, bars, symbol, asset_class=AssetClass.CRYPTO, name=name)
        rows += [(symbol, name, bar) for bar in bars]
    ibm = daily_bars("IBM", end=YESTERDAY, count=50, start_price=180.0)
    store(app, ibm, "IBM")
    rows += [("IBM", "IBM", bar) for bar in ibm]
    now = dt.datetime.now(dt.timezone.utc)
    store_crypto(app, minute_bars("btcusd", end=now, count=30, start_price=60000.0), "kraken", "btcusd",
                 interval=lib.Interval.MIN1, name="BTC/USD", base="btc", quote="usd")
    return pd.DataFrame([{"symbol": symbol, "crypto": crypto, "date": bar.date, "close": bar.close,
                          "volume": bar.volume, "cap": bar.market_cap} for symbol, crypto, bar in rows])


def expected(data: pd.DataFrame, day: dt.date, *, symbols=None, order_by="market-cap", order_type="desc"):
    """The dashboard from scratch: the rows selected and sorted with pandas, changes by `lib.stats`."""
    entries = []
    chosen = data if symbols is None else data[data.symbol.isin(symbols)]
    for (symbol, crypto), series in chosen.groupby(["symbol", "crypto"]):
        upto = series[series.date <= day].sort_values("date")
        if upto.empty and symbols is None:
            continue  # `all` lists the instruments with a price on that day
        entry = dict.fromkeys(KEYS)
        entry.update(crypto=crypto, symbol=symbol)
        if not upto.empty:
            last = upto.iloc[-1]
            entry.update({"price": last.close, "24h-volume": last.volume,
                          "market-cap": None if pd.isna(last.cap) else last.cap})
            for key, days in CHANGES.items():
                before = series[series.date <= day - dt.timedelta(days=days)].sort_values("date")
                if not before.empty:
                    entry[key] = stats.percent_change(before.iloc[-1].close, last.close)
        entries.append(entry)
    if not entries:
        return []
    frame = pd.DataFrame(entries, columns=KEYS).astype({key: "float64" for key in KEYS[2:]})
    frame["sort_key"] = frame[order_by].str.lower() if order_by in ("crypto", "symbol") else frame[order_by]
    frame["symbol_key"], frame["crypto_key"] = frame.symbol.str.lower(), frame.crypto.str.lower()
    frame = frame.sort_values(["sort_key", "symbol_key", "crypto_key"], ascending=[order_type == "asc", True, True],
                              na_position="last", kind="mergesort")
    return [{key: (None if isinstance(value, float) and math.isnan(value) else value)
             for key, value in row.items() if key in KEYS} for row in frame.to_dict("records")]


def assert_entries(actual: list[dict], wanted: list[dict]) -> None:
    assert [entry["symbol"] for entry in actual] == [entry["symbol"] for entry in wanted]
    for got, want in zip(actual, wanted):
        assert list(got) == KEYS
        for key in KEYS:
            if want[key] is None:
                assert got[key] is None, (got["symbol"], key)
            elif key in CHANGES:  # computed in SQL: equal up to the last bits of a double
                assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-12), (got["symbol"], key)
            else:  # stored figures come back exactly, as JSON numbers
                assert got[key] == want[key] and type(got[key]) is type(want[key]), (got["symbol"], key)


def get(client, **query):
    response = client.get("/api/dashboard", query_string=query)
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, response.get_json()


@pytest.mark.parametrize("days_back", [0, 1, 4, 9, 40, -3], ids=lambda n: f"yesterday-{n}")
def test_figures_on_a_date_match_pandas(client, data, days_back):
    day = YESTERDAY - dt.timedelta(days=days_back)
    status, body = get(client, date=day.isoformat())
    assert status == 200
    want = expected(data, day)
    assert len(want) >= 7
    assert_entries(body["data"], want)
    assert body["pagination"] == {"count": len(want), "page": 1, "limit": 1000, "pages": 1}
    assert body["info"] == {"error": ""}


def test_the_data_exercises_every_case(client, data):
    """Guards the fixture: each situation the dashboard must handle is really in the data."""
    want = {entry["symbol"]: entry for entry in expected(data, YESTERDAY)}
    assert "BTCUSD" not in want and "btcusd" not in want  # minute bars only
    assert want["NEW"]["1m"] is None and want["NEW"]["7d"] is not None
    assert want["OLD"]["24h"] == 0.0  # stale: price and 24h reference are the same bar
    assert want["NOC"]["market-cap"] is None and want["IBM"]["market-cap"] is None
    assert want["ZRO"]["24h"] is None and want["ZRO"]["7d"] is not None
    assert want["TWA"]["price"] == want["TWB"]["price"]
    eth = data[data.symbol == "ETH"]
    assert YESTERDAY - dt.timedelta(days=1) not in set(eth.date)  # 24h falls back two days
    assert want["IBM"]["crypto"] == "IBM"


@pytest.mark.parametrize("order_type", ["asc", "desc"])
@pytest.mark.parametrize("order_by", ORDER_BY)
def test_every_order_sorts_with_nulls_last(client, data, order_by, order_type):
    day = YESTERDAY - dt.timedelta(days=2)
    status, body = get(client, date=day.isoformat(), order_by=order_by, order_type=order_type)
    assert status == 200
    want = expected(data, day, order_by=order_by, order_type=order_type)
    assert_entries(body["data"], want)
    values = [entry[order_by] for entry in body["data"]]
    present = [value for value in values if value is not None]
    assert values == present + [None] * (len(values) - len(present))  # nulls last, in both directions
    if order_by in ("crypto", "symbol"):
        present = [value.lower() for value in present]
    assert present == sorted(present, reverse=order_type == "desc")


def test_ties_are_broken_by_symbol_in_both_directions(client, data):
    for order_type in ("asc", "desc"):
        symbols = [e["symbol"] for e in get(client, order_by="price", order_type=order_type)[1]["data"]]
        assert symbols.index("TWA") + 1 == symbols.index("TWB")


def test_defaults_are_all_latest_date_market_cap_desc(client, data):
    status, body = get(client)
    assert status == 200
    assert_entries(body["data"], expected(data, YESTERDAY))
    explicit = get(client, id="all", date=YESTERDAY.isoformat(), order_by="market-cap", order_type="desc")[1]
    assert explicit == body


def test_default_date_is_the_latest_of_the_chosen_instruments(client, data):
    """The stale coin's own latest date, so its changes are not all against a day it has no data for."""
    status, body = get(client, id="old")
    assert status == 200
    stale_day = max(data[data.symbol == "OLD"].date)
    assert stale_day == YESTERDAY - dt.timedelta(days=4)
    assert_entries(body["data"], expected(data, stale_day, symbols=["OLD"]))
    assert body["data"][0]["24h"] != 0.0


def test_id_lists_are_case_insensitive_and_keep_one_entry_each(client, data):
    status, body = get(client, id=" btc,Eth , IBM,BTC,eth", order_by="symbol", order_type="asc")
    assert status == 200
    assert_entries(body["data"], expected(data, YESTERDAY, symbols=["BTC", "ETH", "IBM"], order_by="symbol",
                                          order_type="asc"))
    assert get(client, id="ALL")[1] == get(client)[1]


def test_a_listed_symbol_without_data_by_the_date_has_nulls(client, data):
    day = YESTERDAY - dt.timedelta(days=30)
    status, body = get(client, id="new,btc", date=day.isoformat())
    assert status == 200
    assert_entries(body["data"], expected(data, day, symbols=["NEW", "BTC"]))
    assert body["data"][-1] == {"crypto": "Newcoin", "symbol": "NEW", **dict.fromkeys(KEYS[2:])}
    assert "NEW" not in [e["symbol"] for e in get(client, date=day.isoformat())[1]["data"]]  # `all`: only priced


def test_before_any_data_the_dashboard_is_empty(client, data):
    status, body = get(client, date=(YESTERDAY - dt.timedelta(days=400)).isoformat())
    assert (status, body["data"], body["pagination"]["count"]) == (200, [], 0)


def test_an_empty_database_gives_an_empty_dashboard(client):
    status, body = get(client)
    assert (status, body) == (200, {"data": [], "info": {"error": ""},
                                    "pagination": {"count": 0, "page": 1, "limit": 1000, "pages": 0}})


def test_unknown_symbols_are_404_naming_each(client, data):
    status, body = get(client, id="btc,nope,Zzz,btcusd")
    assert status == 404
    assert body == {"data": None, "info": {"error": "id: unknown symbols NOPE, ZZZ, BTCUSD (no instrument with "
                                                    "daily bars)"}}
    status, body = get(client, id="nope")
    assert (status, body["info"]["error"]) == (404, "id: unknown symbol NOPE (no instrument with daily bars)")


def test_pages_concatenate_to_the_whole_dashboard(client, data):
    whole = get(client, order_by="24h", order_type="asc")[1]["data"]
    pages, page = [], 1
    while True:
        status, body = get(client, order_by="24h", order_type="asc", limit=3, page=page)
        assert status == 200
        assert body["pagination"] == {"count": len(whole), "page": page, "limit": 3, "pages": math.ceil(len(whole) / 3)}
        if not body["data"]:
            break
        pages += body["data"]
        page += 1
    assert pages == whole and page == math.ceil(len(whole) / 3) + 1


def test_a_new_ingest_shows_at_once(client, app, data):
    before = get(client, id="btc")[1]["data"][0]
    btc = coins(YESTERDAY)[("Bitcoin", "BTC")]
    corrected = replace(btc[-1], close=btc[-1].close * 2, high=btc[-1].high * 2)
    store(app, [corrected], "BTC", asset_class=AssetClass.CRYPTO, name="Bitcoin")
    after = get(client, id="btc")[1]["data"][0]
    assert after["price"] == corrected.close != before["price"]
    assert after["24h"] == pytest.approx((corrected.close - btc[-2].close) / btc[-2].close * 100, rel=1e-12)


@pytest.mark.parametrize("query, names", [
    ("order_by=volume", "order_by"),
    ("order_by=24H", "order_by"),
    ("order_type=up", "order_type"),
    ("order_by=x&order_type=y", "order_by"),
    ("order_by=x&order_type=y", "order_type"),
    ("date=2024-02-30", "date"),
    ("date=20240201", "date"),
    ("date=", "date"),
    ("date=0000-01-01", "date"),
    ("date=２０２４-０２-０１", "date"),
    ("id=", "id"),
    ("id=,,", "id"),
    ("id=btc,,eth", "element 2 of the list is empty"),
    ("id=btc,", "element 2 of the list is empty"),
    ("id=,btc", "element 1 of the list is empty"),
    ("id=btc,%20,eth", "element 2 of the list is empty"),
    ("id=b%20c", "id"),
    ("id=btc;drop", "id"),
    ("id=" + ",".join(f"S{n}" for n in range(201)), "id"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("page=0", "page"),
    ("page=x", "page"),
    ("symbol=BTC", "symbol"),
])
def test_bad_parameters_are_400_naming_them(client, query, names):
    assert_bad_request(client.get(f"/api/dashboard?{query}"), names)


@pytest.mark.parametrize("day", ["0001-01-01", "0001-01-30", "0999-12-31", "1000-01-31", "1000-02-01",
                                 "9999-12-30", "9999-12-31"])
def test_every_day_of_the_calendar_is_answered(client, data, day):
    """The look-backs (1, 7 and 30 days) of the calendar's first days, and the day after its last, lie
    outside it: nothing can be stored there, so those figures are simply null."""
    status, body = get(client, date=day)
    assert status == 200
    assert_entries(body["data"], expected(data, dt.date.fromisoformat(day)))
    if day.startswith("9999"):
        assert body["data"] and all(entry["price"] is not None for entry in body["data"])
    else:
        assert body["data"] == []


def test_a_coin_file_whose_market_cap_is_written_zero_has_an_unknown_cap_sorted_last(app, client, tmp_path):
    """The published coin dataset writes an unknown market cap as 0.0 on every row (WBTC, SOL, ATOM...). Loaded
    through the CSV import, such a coin has a null cap and comes last, not first, when sorting by cap."""
    caps = {"BTC": 19.6e6, "ETH": 120e6}
    files = {symbol: coin_bars(symbol, end=YESTERDAY, days=5, start_price=price, supply=caps.get(symbol))
             for symbol, price in (("BTC", 60000.0), ("ETH", 3000.0), ("WBTC", 60100.0))}
    names = {"BTC": "Bitcoin", "ETH": "Ethereum", "WBTC": "Wrapped Bitcoin"}
    with app.app_context():
        for symbol, bars in files.items():
            text = render(names[symbol], symbol, bars)
            if symbol == "WBTC":  # every row ends with an empty cap; the dataset writes 0.0 there
                text = "\n".join(line + "0.0" if line.endswith(",") else line for line in text.splitlines())
            path = tmp_path / f"coin_{symbol}.csv"
            path.write_text(text, encoding="utf-8")
            ingest.store_series(CoinFileTask(path).fetch(offline_context()))
    for order_type in ("desc", "asc"):
        status, body = get(client, order_by="market-cap", order_type=order_type)
        assert status == 200
        entries = [(entry["symbol"], entry["market-cap"]) for entry in body["data"]]
        known = sorted(((symbol, bars[-1].market_cap) for symbol, bars in files.items() if symbol in caps),
                       key=lambda item: item[1], reverse=order_type == "desc")
        assert entries == known + [("WBTC", None)]
    wbtc = get(client, id="wbtc")[1]["data"][0]
    assert (wbtc["price"], wbtc["market-cap"]) == (files["WBTC"][-1].close, None)
