"""`/api/search`: matches on name or symbol, case-insensitive; exact, then prefix, then substring matches;
LIKE wildcards in the text match only themselves."""
from __future__ import annotations

import datetime as dt
import math

import pytest

import lib
from financial.models import AssetClass
from tests.fakes.coin_csv import coin_bars
from tests.fakes.series import daily_bars, minute_bars
from tests.seed import assert_bad_request, store, today_utc

# (asset_class, exchange, symbol, name)
INSTRUMENTS = [
    (AssetClass.CRYPTO, "", "BTC", "Bitcoin"),
    (AssetClass.CRYPTO, "", "BCH", "Bitcoin Cash"),
    (AssetClass.CRYPTO, "", "WBTC", "Wrapped Bitcoin"),
    (AssetClass.CRYPTO, "", "ETH", "Ethereum"),
    (AssetClass.CRYPTO, "", "PCT", "100% Coin"),
    (AssetClass.CRYPTO, "", "U_S", "Under Score"),
    (AssetClass.CRYPTO, "", "BITCOIN", "Satoshi Token"),  # exact by symbol, like Bitcoin is exact by name
    (AssetClass.CRYPTO, "kraken", "btcusd", "BTC/USD"),  # a market, as crypto minute tracking stores them
    (AssetClass.STOCK, "", "BTCS", None),  # a stock without a name
    (AssetClass.STOCK, "", "IBM", None),
]


@pytest.fixture
def instruments(app):
    yesterday = today_utc() - dt.timedelta(days=1)
    for asset_class, exchange, symbol, name in INSTRUMENTS:
        if exchange:
            bars = minute_bars(symbol, end=dt.datetime.now(dt.timezone.utc), count=3, start_price=100.0)
            store(app, bars, symbol, asset_class=asset_class, exchange=exchange, name=name,
                  interval=lib.Interval.MIN1)
        elif asset_class == AssetClass.STOCK:
            store(app, daily_bars(symbol, end=yesterday, count=3), symbol)
        else:
            store(app, coin_bars(symbol, end=yesterday, days=3, start_price=10.0), symbol,
                  asset_class=AssetClass.CRYPTO, name=name)
    return INSTRUMENTS


def expected(text: str) -> list[dict]:
    """The documented ranking, applied here in Python: exact match of name or symbol, then prefix, then
    substring; within each, by name (the symbol when there is none), symbol, exchange, asset class."""
    needle = text.lower()
    found = []
    for asset_class, exchange, symbol, name in INSTRUMENTS:
        fields = [symbol.lower(), (name or "").lower()]
        if not any(needle in field for field in fields):
            continue
        rank = 0 if needle in fields else 1 if any(field.startswith(needle) for field in fields) else 2
        found.append(((rank, (name or symbol).lower(), symbol.lower(), exchange, asset_class),
                      {"name": name or symbol, "symbol": symbol, "exchange": exchange or None,
                       "asset_class": asset_class}))
    return [match for _, match in sorted(found, key=lambda item: item[0])]


def search(client, **query):
    response = client.get("/api/search", query_string=query)
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, response.get_json()


@pytest.mark.parametrize("text", ["bitcoin", "btc", "BTC", "BiTcOiN"])
def test_bitcoin_comes_first(client, instruments, text):
    status, body = search(client, name=text)
    assert status == 200
    assert body["data"][0] == {"name": "Bitcoin", "symbol": "BTC", "exchange": None, "asset_class": "crypto"}
    assert body["data"] == expected(text)


@pytest.mark.parametrize("text", ["bitcoin", "btc", "coin", "c", "usd", "i", "eth", "satoshi token", "zzz"])
def test_exact_then_prefix_then_substring(client, instruments, text):
    status, body = search(client, name=text)
    assert status == 200
    want = expected(text)
    assert body == {"data": want, "info": {"error": ""},
                    "pagination": {"count": len(want), "page": 1, "limit": 20, "pages": math.ceil(len(want) / 20)}}


def test_the_ranking_tiers_are_all_exercised(instruments):
    """Guards the data: 'bitcoin' has two exact matches (name and symbol), prefix and substring ones."""
    names = [match["name"] for match in expected("bitcoin")]
    assert names == ["Bitcoin", "Satoshi Token", "Bitcoin Cash", "Wrapped Bitcoin"]
    assert [m["symbol"] for m in expected("btc")] == ["BTC", "btcusd", "BTCS", "WBTC"]


@pytest.mark.parametrize("text, symbols", [
    ("%", ["PCT"]),
    ("0%", ["PCT"]),
    ("_", ["U_S"]),
    ("u_s", ["U_S"]),
    ("/", ["btcusd"]),  # the escape character itself
    ("c/u", ["btcusd"]),
    ("\\", []),
    ("'", []),
    ("%%", []),
])
def test_like_wildcards_match_only_themselves(client, instruments, text, symbols):
    status, body = search(client, name=text)
    assert status == 200
    assert [match["symbol"] for match in body["data"]] == symbols


def test_surrounding_spaces_are_ignored(client, instruments):
    assert search(client, name="  bitcoin ")[1] == search(client, name="bitcoin")[1]


def test_pages(client, instruments):
    whole = expected("c")
    assert len(whole) > 4
    collected = []
    for page in range(1, math.ceil(len(whole) / 2) + 2):
        status, body = search(client, name="c", limit=2, page=page)
        assert status == 200
        assert body["pagination"] == {"count": len(whole), "page": page, "limit": 2, "pages": math.ceil(len(whole) / 2)}
        collected += body["data"]
    assert collected == whole


@pytest.mark.parametrize("query, names", [
    ("", "name"),
    ("name=", "name"),
    ("name=%20%20", "name"),
    ("name=" + "x" * 101, "name"),
    ("name=btc&limit=0", "limit"),
    ("name=btc&limit=101", "limit"),
    ("name=btc&page=0", "page"),
    ("q=btc", "q"),
])
def test_bad_parameters_are_400_naming_them(client, query, names):
    assert_bad_request(client.get(f"/api/search?{query}"), names)
