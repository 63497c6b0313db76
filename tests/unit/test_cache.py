"""lib.cache.is_cacheable: which upstream answers hold data (kept) and which are errors sent with HTTP 200."""
import json

import pytest
import requests

from lib.cache import is_cacheable
from tests.fakes.alphavantage import NOTE_MESSAGE, QUOTA_MESSAGE


def response(body, status=200) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return answer


@pytest.mark.parametrize("body, status, kept", [
    ({"Meta Data": {"2. Symbol": "IBM"}, "Time Series (Daily)": {"2026-01-02": {"1. open": "1.0"}}}, 200, True),
    ({"Error Message": "Invalid API call. Please retry or visit the documentation"}, 200, False),
    ({"Information": QUOTA_MESSAGE.format(key="K")}, 200, False),
    ({"Note": NOTE_MESSAGE}, 200, False),
    ({}, 200, False),
    ({"Global Quote": {}}, 200, False),
    ({"error": ["EQuery:Unknown asset pair"], "result": None}, 200, False),  # Kraken
    ({"error": ["EService:Unavailable"]}, 200, False),
    ({"error": [], "result": {"XXBTZUSD": [[1, "1", "1", "1", "1", "1", "1", 1]], "last": 1}}, 200, True),
    ({"result": {"price": 1.5}, "allowance": {"cost": 0.005}}, 200, True),  # Cryptowatch
    ({"error": "Instrument not found"}, 404, False),
    ([[1700000000000, "1", "1", "1", "1", "1"]], 200, True),  # Binance klines
    ({"code": -1121, "msg": "Invalid symbol."}, 400, False),
    ("<!DOCTYPE html><html>Application Error</html>", 200, False),
    ('{"Meta Data": {"2. Sym', 200, False),  # truncated
    ("3.5", 200, False),
])
def test_only_answers_with_data_are_kept(body, status, kept):
    assert is_cacheable(response(body, status)) is kept
