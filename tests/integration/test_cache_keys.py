"""Cache keys are canonical: the spellings of one query (`limit=5`, `limit=+5`, `limit=05`, another
parameter order) share one cached answer, served before Flask; integer parameters take ASCII digits only,
so other scripts' digits (`٥`, `５`) and underscores are a 400 naming the parameter, never an entry."""
from __future__ import annotations

import pytest

from financial import ingest
from financial.edge import query, response_cache
from financial.ingest.sources import demo
from tests.integration.test_cached_answers import served_by_flask
from tests.seed import assert_bad_request

SPELLINGS = ["limit=3&symbol=IBM", "limit=+3&symbol=IBM", "limit=03&symbol=IBM", "limit=%2B3&symbol=IBM",
             "limit=%203&symbol=IBM", "symbol=IBM&limit=3", "symbol=IBM&limit=0003", "symbol=%49BM&limit=3"]


@pytest.fixture
def loaded(app):
    with app.app_context():
        assert ingest.run(demo.demo_tasks()).ok
    return app


def test_the_spellings_of_one_query_share_one_entry(loaded, client, monkeypatch):
    seen = served_by_flask(monkeypatch)
    answers = [client.get(f"/api/financial_data?{spelling}") for spelling in SPELLINGS]
    assert seen == ["/api/financial_data"]  # computed once; every other spelling was a hit before Flask
    first = answers[0]
    assert first.status_code == 200 and len(first.get_json()["data"]) == 3
    assert {answer.data for answer in answers} == {first.data}
    assert {answer.headers["ETag"] for answer in answers} == {first.headers["ETag"]}
    assert {response_cache.key("/api/financial_data", spelling) for spelling in SPELLINGS} == {
        "/api/financial_data?limit=3&symbol=IBM"}


def test_a_repeated_parameter_is_read_by_its_first_value(loaded, client):
    """The parser reads the first of a repeated parameter; sorting keeps it first, so these stay two entries."""
    three, five = client.get("/api/financial_data?limit=3&limit=5"), client.get("/api/financial_data?limit=5&limit=3")
    assert (len(three.get_json()["data"]), len(five.get_json()["data"])) == (3, 5)
    assert len(client.get("/api/financial_data?limit=3&limit=5").get_json()["data"]) == 3


@pytest.mark.parametrize("url, name, sent", [
    ("/api/financial_data?limit=٣", "limit", "٣"),  # Arabic-Indic three
    ("/api/financial_data?limit=３", "limit", "３"),  # full-width three
    ("/api/financial_data?limit=1_0", "limit", "1_0"),
    ("/api/financial_data?page=２", "page", "２"),
    ("/api/metrics?limit=٥", "limit", "٥"),
    ("/api/metrics?page=%F0%9D%9F%90", "page", "𝟐"),  # mathematical bold two
    ("/api/search?name=bit&limit=꧕", "limit", "꧕"),  # Javanese five
    ("/api/dashboard?page=१", "page", "१"),  # Devanagari one
    ("/api/metrics/1/candles?points=５０", "points", "５０"),
])
def test_integers_take_ascii_digits_only(loaded, client, url, name, sent):
    for _ in range(2):  # never cached: the second is refused the same way
        response = client.get(url)
        assert_bad_request(response, name)
        assert response.get_json()["info"]["error"] == f"{name}: must be a whole number (got {sent!r})"


@pytest.mark.parametrize("url, name", [
    ("/api/financial_data?start_date=٢٠٢٠-٠١-٠١", "start_date"),
    ("/api/statistics?symbol=IBM&start_date=2020-01-01&end_date=２０２０-12-31", "end_date"),
    ("/api/dashboard?date=2020-0١-01", "date"),
    ("/api/metrics?window=٧d", "window"),
])
def test_dates_and_windows_take_ascii_digits_only(loaded, client, url, name):
    for _ in range(2):
        assert_bad_request(client.get(url), name)


def test_private_lists_take_ascii_digits_only(client, fast_hashing):
    from tests.seed import sign_in
    headers = sign_in(client, "ann@example.com")
    assert_bad_request(client.get("/api/me/alerts?limit=٥", headers=headers), "limit")
    assert client.get("/api/me/alerts?limit=+5", headers=headers).status_code == 200


def test_the_canonical_form():
    assert query.canonical("") == ""
    assert query.canonical("page=02&limit=+5&name=a+b%20c") == "limit=5&name=a%20b%20c&page=2"
    assert query.canonical("name=05&x=%2B5") == "name=05&x=%2B5"  # not integer parameters: as sent
    assert query.canonical("limit=٥") == "limit=%D9%A5"  # not an integer: kept, and refused by the parser
    assert query.canonical("limit=" + "9" * 5000) == "limit=" + "9" * 5000  # more digits than int() takes
    assert query.canonical("limit=") == "limit="
    assert query.ascii_integer(" -07 ") == -7 and query.ascii_integer("٥") is None
