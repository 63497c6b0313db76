"""The patterns the served spec states accept exactly what the server's own parsers accept, so that a
client generating requests from the spec gets neither a refusal it could not foresee nor an answer to a
request the spec calls invalid."""
from __future__ import annotations

import random
import re
import sys

import pytest

import lib.markets
from financial.api import dashboard, me, metrics, search
from financial.services.metrics import parse_window


def accepts(parse, text: str) -> bool:
    try:
        parse(text)
        return True
    except ValueError:
        return False


def test_the_window_pattern_is_parse_window():
    pattern = re.compile(metrics.WINDOW_PATTERN)
    for number in ["0", "00", "01", *map(str, range(1, 10_000))]:
        for unit in "hdHDmw":
            text = number + unit
            assert accepts(parse_window, text) == bool(pattern.search(text)), text


@pytest.mark.parametrize("pattern, parse, alphabet", [
    (me.PAIR_PATTERN, lib.markets.parse_pair, "aB0./_-xZ9:é"),
    (me.PATH_PAIR_PATTERN, lib.markets.parse_pair, "aB0._-xZ9é"),
    (me.EXCHANGE_PATTERN, lib.markets.parse_exchange, "aB0_-xZ9.é"),
])
def test_the_market_patterns_are_the_parsers(pattern, parse, alphabet):
    compiled, chance = re.compile(pattern), random.Random(15)
    for _ in range(50_000):
        text = "".join(chance.choice(alphabet) for _ in range(chance.randint(0, 36)))
        assert accepts(parse, text) == bool(compiled.search(text)), text


def test_the_dashboard_id_pattern_is_its_list_rule():
    compiled = re.compile(dashboard.ID_PATTERN)
    symbols = ",".join(f"S{n}" for n in range(dashboard.MAX_SYMBOLS))
    for text in ("all", "ALL", "btc", "btc,eth", "BRK.B,X^Y,BTC/USD", symbols):
        assert compiled.search(text), text
    for text in ("", ",", "btc,", ",btc", "btc,,eth", "b c", "btc;eth", "^GSPC", symbols + ",X"):
        assert not compiled.search(text), text


def test_a_search_name_holds_a_character_that_strip_keeps():
    compiled = re.compile(search.NOT_SPACE)
    for code in range(sys.maxunicode + 1):
        assert bool(compiled.search(chr(code))) == (chr(code).strip() != ""), hex(code)
