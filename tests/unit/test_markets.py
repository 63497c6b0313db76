"""lib.markets: how users name crypto markets, how pairs split, which candles count as closed."""
import datetime as dt

import pytest

import lib
from lib.markets import MarketId, closed_since, display_name, split_pair
from tests.fakes.series import minute_bars


@pytest.mark.parametrize("text, exchange, pair", [
    ("kraken:btcusd", "kraken", "btcusd"),
    ("  Kraken:BTCUSD ", "kraken", "btcusd"),
    ("binance:ETH/USDT", "binance", "ethusdt"),
    ("coinbase:btc-usd", "coinbase", "btcusd"),
    ("gate_io:sol_usdt", "gate_io", "solusdt"),
])
def test_markets_are_exchange_colon_pair_in_lower_case(text, exchange, pair):
    market = lib.parse_market(text)
    assert market == MarketId(exchange, pair)
    assert market.label == f"{exchange}:{pair}" == str(market)


@pytest.mark.parametrize("text", ["btcusd", "kraken:", ":btcusd", "kraken:b", "kra ken:btcusd", "kraken:btc usd",
                                  "kraken:btc$usd", "kraken:" + "x" * 33, "", "a:b:c",
                                  "\u212araken:btcusd", "kraken:btc\u212a"])  # the Kelvin sign lower-cases to k
def test_anything_else_is_refused_with_the_expected_spelling(text):
    with pytest.raises(ValueError, match="write exchange:pair, e.g. kraken:btcusd"):
        lib.parse_market(text)


def test_lists_drop_duplicates_and_blanks_keeping_order():
    assert lib.parse_markets("kraken:btcusd, binance:ethusdt,,KRAKEN:BTCUSD,kraken:btc/usd") == [
        MarketId("kraken", "btcusd"), MarketId("binance", "ethusdt")]
    assert lib.parse_markets("") == []


@pytest.mark.parametrize("pair, base, quote", [
    ("btcusd", "BTC", "USD"), ("btcusdt", "BTC", "USDT"), ("ethbtc", "ETH", "BTC"), ("solfdusd", "SOL", "FDUSD"),
    ("xbteur", "XBT", "EUR"), ("usdtusd", "USDT", "USD"), ("tusdusdt", "TUSD", "USDT"), ("abcxyz", None, None),
    ("usd", None, None),
])
def test_pairs_split_on_their_quote_currency(pair, base, quote):
    assert split_pair(pair) == (base, quote)


def test_display_names():
    assert display_name("BTC", "USD", "btcusd", "Kraken") == "BTC/USD on Kraken"
    assert display_name(None, None, "abcxyz", "Kraken") == "ABCXYZ on Kraken"


def test_closed_since_keeps_finished_candles_from_since_on():
    now = dt.datetime(2030, 1, 2, 12, 0, 30, tzinfo=dt.timezone.utc)
    bars = minute_bars("m", end=now, count=10)  # 11:51 .. 12:00, the last one still open at 12:00:30
    since = bars[3].timestamp
    kept = closed_since(list(reversed(bars)) + bars[4:6], lib.Interval.MIN1, since, now)  # shuffled, duplicated
    assert kept == bars[3:9]
    assert closed_since(bars, lib.Interval.MIN1, since, now + dt.timedelta(seconds=30)) == bars[3:]
