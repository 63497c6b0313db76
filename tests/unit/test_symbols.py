"""lib.symbols: one rule for stock and coin symbols, on the command line, in the API and in coin files."""
import pytest

import get_raw_data
from lib.symbols import BadSymbol, parse_list, parse_symbol, parse_symbols


@pytest.mark.parametrize("text, symbol", [("ibm", "IBM"), (" BRK.B ", "BRK.B"), ("brk/b", "BRK/B"), ("BF^A", "BF^A"),
                                          ("EURUSD=X", "EURUSD=X"), ("a" * 32, "A" * 32)])
def test_symbols_are_upper_cased(text, symbol):
    assert parse_symbol(text) == symbol


@pytest.mark.parametrize("text", ["", " ", ".IBM", "I B M", "a" * 33, "IBM;DROP", "ibm\tx", "^GSPC",
                                  "ß", "maß", "ﬁ", "ǆ", "\u0131bm"])  # upper-case: SS, MASS, FI, Ǆ, IBM
def test_what_cannot_be_a_symbol_is_named(text):
    with pytest.raises(BadSymbol) as caught:
        parse_symbol(text)
    assert caught.value.raw == text.strip() and str(caught.value) == f"{text.strip()!r} is not a valid symbol"


def test_lists_keep_order_and_drop_repeats_and_blanks():
    assert parse_symbols("ibm, aapl,,IBM , msft,") == ["IBM", "AAPL", "MSFT"]
    assert parse_symbols(" , ") == []
    assert parse_list("3,1,3,2", int) == [3, 1, 2]
    with pytest.raises(BadSymbol, match="'a b' is not a valid symbol"):
        parse_symbols("ibm,a b,c d")


def test_the_command_line_and_the_api_accept_the_same_symbols():
    """The command line once refused the `/` that the API and the coin files accept."""
    assert get_raw_data.parse_args(["--symbols", "brk/b,ibm"]).request.symbols == ("BRK/B", "IBM")
    with pytest.raises(SystemExit):
        get_raw_data.parse_args(["--symbols", "ibm;drop"])
