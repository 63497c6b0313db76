"""System A's endpoints against figures computed independently with pandas and decimal arithmetic."""
from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest

import lib
from tests.fakes.series import daily_bars, minute_bars
from tests.seed import frame, store, store_crypto, today_utc

START_PRICES = {"IBM": 150.0, "AAPL": 180.0, "MSFT": 410.0}


def cents(value: float) -> str:
    """Two decimals, rounding half up from the 4-decimal upstream figure (as a person would)."""
    return str(Decimal(f"{value:.4f}").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@pytest.fixture
def stocks(app) -> pd.DataFrame:
    """Six weeks of daily bars for three stocks ending yesterday, plus data that must never show up in
    system A's answers: a crypto market's daily bars and a stock's minute bars."""
    yesterday = today_utc() - dt.timedelta(days=1)
    series = {symbol: daily_bars(symbol, end=yesterday, count=30, start_price=price)
              for symbol, price in START_PRICES.items()}
    for symbol, bars in series.items():
        store(app, bars, symbol)
    store_crypto(app, daily_bars("btc", end=yesterday, count=30, start_price=60000), "kraken", "IBM")
    now = dt.datetime.now(dt.timezone.utc)
    store(app, minute_bars("IBM-min", end=now, count=50, start_price=150, volume_decimals=0), "IBM",
          interval=lib.Interval.MIN1)
    return frame(series)


def expected_records(data: pd.DataFrame, *, symbol=None, start=None, end=None) -> list[dict]:
    selected = data
    if symbol:
        selected = selected[selected.symbol == symbol]
    if start:
        selected = selected[selected.date >= start]
    if end:
        selected = selected[selected.date <= end]
    selected = selected.sort_values(["date", "symbol"])
    return [{"symbol": row.symbol, "date": row.date.isoformat(), "open_price": cents(row.open),
             "close_price": cents(row.close), "volume": str(int(row.volume))} for row in selected.itertuples()]


def all_pages(client, **query) -> tuple[list[dict], list[dict]]:
    records, paginations, page = [], [], 1
    while True:
        body = client.get("/api/financial_data", query_string={**query, "page": page}).get_json()
        assert body["info"] == {"error": ""}
        paginations.append(body["pagination"])
        if not body["data"]:
            return records, paginations
        records += body["data"]
        page += 1


@pytest.mark.parametrize("query", [
    {},
    {"symbol": "IBM"},
    {"symbol": "aapl"},
    {"window": True},
    {"window": True, "symbol": "MSFT"},
])
def test_financial_data_pages_concatenate_to_the_independent_selection(client, stocks, query):
    query = dict(query)  # the parameter is shared by both stacks
    days = sorted(stocks.date.unique())
    start, end = (days[5], days[17]) if query.pop("window", False) else (None, None)
    if start:
        query.update(start_date=start.isoformat(), end_date=end.isoformat())
    expected = expected_records(stocks, symbol=query.get("symbol", "").upper() or None, start=start, end=end)
    records, paginations = all_pages(client, limit=7, **query)
    assert records == expected
    count = len(expected)
    assert paginations[0] == {"count": count, "page": 1, "limit": 7, "pages": math.ceil(count / 7)}
    assert len(paginations) == math.ceil(count / 7) + 1  # the page past the end is empty, not an error


def test_financial_data_defaults_to_five_records_of_page_one(client, stocks):
    body = client.get("/api/financial_data").get_json()
    assert body["data"] == expected_records(stocks)[:5]
    assert body["pagination"] == {"count": 90, "page": 1, "limit": 5, "pages": 18}


def test_financial_data_matches_the_spec_example_shape(client, stocks):
    """The brief's example: two calendar weeks of IBM, three records per page, page 2."""
    last = max(stocks.date)
    start, end = last - dt.timedelta(days=13), last
    response = client.get("/api/financial_data", query_string={
        "start_date": start.isoformat(), "end_date": end.isoformat(), "symbol": "IBM", "limit": 3, "page": 2})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    expected = expected_records(stocks, symbol="IBM", start=start, end=end)
    assert len(expected) == 10  # two weeks of weekdays
    assert body == {"data": expected[3:6], "info": {"error": ""},
                    "pagination": {"count": 10, "page": 2, "limit": 3, "pages": 4}}
    record = body["data"][0]
    assert list(record) == ["symbol", "date", "open_price", "close_price", "volume"]
    assert all(isinstance(value, str) for value in record.values())


def test_financial_data_with_no_match_is_an_empty_page(client, stocks):
    for query in ({"symbol": "NOPE"}, {"start_date": "1999-01-01", "end_date": "1999-12-31"}):
        body = client.get("/api/financial_data", query_string=query).get_json()
        empty = {"count": 0, "page": 1, "limit": 5, "pages": 0}
        assert body == {"data": [], "info": {"error": ""}, "pagination": empty}
    body = client.get("/api/financial_data?page=1000").get_json()
    assert body["data"] == [] and body["pagination"]["count"] == 90


def test_financial_data_dates_are_inclusive(client, stocks):
    day = sorted(stocks.date.unique())[10].isoformat()
    body = client.get(f"/api/financial_data?start_date={day}&end_date={day}&limit=10").get_json()
    assert [r["date"] for r in body["data"]] == [day] * 3
    assert [r["symbol"] for r in body["data"]] == ["AAPL", "IBM", "MSFT"]


def test_statistics_are_the_means_over_the_range(client, stocks):
    days = sorted(stocks.date.unique())
    start, end = days[3], days[21]
    response = client.get("/api/statistics", query_string={"start_date": start.isoformat(),
                                                           "end_date": end.isoformat(), "symbol": "msft"})
    assert response.status_code == 200
    body = response.get_json()
    selected = stocks[(stocks.symbol == "MSFT") & (stocks.date >= start) & (stocks.date <= end)]
    assert len(selected) == 19

    def half_up(value: float, places: str) -> Decimal:
        return Decimal(str(float(value))).quantize(Decimal(places), rounding=ROUND_HALF_UP)

    assert body == {"data": {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "symbol": "MSFT",
        "average_daily_open_price": float(half_up(selected.open.mean(), "0.01")),
        "average_daily_close_price": float(half_up(selected.close.mean(), "0.01")),
        "average_daily_volume": int(half_up(selected.volume.mean(), "1")),
    }, "info": {"error": ""}}
    assert list(body["data"]) == ["start_date", "end_date", "symbol", "average_daily_open_price",
                                  "average_daily_close_price", "average_daily_volume"]
    assert isinstance(body["data"]["average_daily_volume"], int)


def test_statistics_of_a_single_day_equal_that_days_figures(client, stocks):
    row = stocks[stocks.symbol == "IBM"].iloc[-1]
    day = row.date.isoformat()
    data = client.get(f"/api/statistics?start_date={day}&end_date={day}&symbol=IBM").get_json()["data"]
    assert data["average_daily_open_price"] == float(cents(row.open))
    assert data["average_daily_close_price"] == float(cents(row.close))
    assert data["average_daily_volume"] == int(row.volume)


@pytest.mark.parametrize("query", ["start_date=1999-01-01&end_date=1999-12-31&symbol=IBM",
                                   "start_date=2000-01-01&end_date=2099-12-31&symbol=NOPE"])
def test_statistics_without_bars_is_404_naming_the_symbol(client, stocks, query):
    response = client.get(f"/api/statistics?{query}")
    assert response.status_code == 404
    body = response.get_json()
    assert body["data"] is None
    assert query.split("symbol=")[1] in body["info"]["error"]


def test_crypto_and_minute_bars_never_count_as_daily_stock_data(client, stocks):
    """A crypto market named like a stock and IBM's minute bars are in the database but not in system A."""
    first, last = min(stocks.date), max(stocks.date)
    body = client.get(f"/api/financial_data?symbol=IBM&limit=1000&start_date={first}&end_date={last}").get_json()
    assert body["pagination"]["count"] == 30
    tomorrow = today_utc() + dt.timedelta(days=1)
    response = client.get(f"/api/statistics?start_date={today_utc()}&end_date={tomorrow}&symbol=IBM")
    assert response.status_code == 404  # today's minute bars are not daily bars


@pytest.mark.parametrize("path, query, names", [
    ("financial_data", "limit=0", "limit"),
    ("financial_data", "limit=1001", "limit"),
    ("financial_data", "limit=abc", "limit"),
    ("financial_data", "limit=2.5", "limit"),
    ("financial_data", "page=0", "page"),
    ("financial_data", "page=-1", "page"),
    ("financial_data", "start_date=2023-02-30", "start_date"),
    ("financial_data", "start_date=20230105", "start_date"),
    ("financial_data", "end_date=05/01/2023", "end_date"),
    ("financial_data", "symbol=%27%3B%20DROP%20TABLE%20bars%3B--", "symbol"),
    ("financial_data", "symbl=IBM", "symbl"),
    ("financial_data", "start_date=2023-01-10&end_date=2023-01-01", "end_date"),
    ("statistics", "", "start_date"),
    ("statistics", "start_date=2023-01-01&end_date=2023-01-10", "symbol"),
    ("statistics", "start_date=2023-01-01&symbol=IBM", "end_date"),
    ("statistics", "start_date=2023-01-10&end_date=2023-01-01&symbol=IBM", "start_date"),
    ("statistics", "start_date=x&end_date=2023-01-01&symbol=IBM", "start_date"),
])
def test_bad_input_is_400_naming_the_parameter(client, stocks, path, query, names):
    response = client.get(f"/api/{path}?{query}")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["data"] is None
    assert names in body["info"]["error"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_statistics_missing_everything_names_every_parameter(client):
    error = client.get("/api/statistics").get_json()["info"]["error"]
    assert all(name in error for name in ("start_date", "end_date", "symbol"))


@pytest.mark.parametrize("start, end", [("0001-01-01", "9999-12-31"), ("0001-01-01", None),
                                        (None, "9999-12-31"), ("9999-12-31", "9999-12-31"),
                                        ("0001-01-01", "0001-01-01")])
def test_the_first_and_last_days_of_the_calendar_are_normal_ranges(client, stocks, start, end):
    """A range may reach the ends of the calendar: it selects what lies within, like any other range."""
    query = {key: value for key, value in (("start_date", start), ("end_date", end)) if value}
    records, _ = all_pages(client, limit=50, symbol="IBM", **query)
    low, high = dt.date.fromisoformat(start or "0001-01-01"), dt.date.fromisoformat(end or "9999-12-31")
    assert records == expected_records(stocks, symbol="IBM", start=low, end=high)
    if high.year == 9999 and low.year == 1:
        assert len(records) == 30


def test_statistics_over_the_whole_calendar_cover_every_bar(client, stocks):
    response = client.get("/api/statistics?start_date=0001-01-01&end_date=9999-12-31&symbol=IBM")
    assert response.status_code == 200, response.get_data(as_text=True)
    data = response.get_json()["data"]
    selected = stocks[stocks.symbol == "IBM"]
    assert (data["start_date"], data["end_date"], data["symbol"]) == ("0001-01-01", "9999-12-31", "IBM")
    assert data["average_daily_volume"] == int(Decimal(str(float(selected.volume.mean()))).quantize(
        Decimal("1"), rounding=ROUND_HALF_UP))
    edge = client.get("/api/statistics?start_date=9999-12-31&end_date=9999-12-31&symbol=IBM")
    assert edge.status_code == 404 and "IBM" in edge.get_json()["info"]["error"]


@pytest.mark.parametrize("day", ["２０２３-０１-０５", "٢٠٢٣-٠١-٠٥", "2023-01-05\n", "+2023-01-05", "2023-1-5"])
def test_dates_are_written_in_ascii_digits_only(client, stocks, day):
    response = client.get("/api/financial_data", query_string={"end_date": day})
    assert response.status_code == 400
    assert response.get_json()["info"]["error"].startswith("end_date: must be a date as YYYY-MM-DD")
