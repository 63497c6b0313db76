"""lib.coincsv: historical coin CSV files into bars, with the skipped rows named by line.

Expected bars are the ones the file was rendered from (tests.fakes.coin_csv), never the parser's output.
"""
import datetime as dt

import pytest

from lib import coincsv
from lib.bars import Bar, day_start
from lib.errors import MalformedPayloadError, NotFoundError
from tests.fakes.coin_csv import HEADER, coin_bars, render, row

END = dt.date(2024, 3, 5)


@pytest.fixture
def bars():
    return coin_bars("BTC", end=END, days=12, start_price=60000.0, supply=19.6e6)


def text_of(bars, extra_lines=(), *, name="Bitcoin", symbol="BTC", bom=False):
    return render(name, symbol, bars, bom=bom) + "".join(line + "\n" for line in extra_lines)


def values(bar):
    return (bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.adjusted_close, bar.market_cap)


def test_rows_become_daily_bars_at_midnight_utc(bars):
    parsed = coincsv.parse(text_of(bars).encode(), source="coin_Bitcoin.csv")
    assert (parsed.source, parsed.symbol, parsed.name) == ("coin_Bitcoin.csv", "BTC", "Bitcoin")
    assert [values(b) for b in parsed.bars] == [values(b) for b in bars]
    assert all(b.timestamp.tzinfo == dt.timezone.utc and b.timestamp.time() == dt.time() for b in parsed.bars)
    assert (parsed.rows, parsed.repeated, parsed.problems) == (12, 0, [])


def test_byte_order_mark_crlf_quotes_and_unsorted_rows_are_fine(bars):
    lines = render("Bitcoin", "btc", bars).splitlines()
    body = lines[1:]
    body.reverse()  # newest first, as some exports are
    body[0] = body[0].replace(",Bitcoin,", ',"Bitcoin",')
    content = ("\ufeff" + "\r\n".join([lines[0]] + body) + "\r\n").encode()
    parsed = coincsv.parse(content)
    assert parsed.symbol == "BTC"  # symbols are upper-case
    assert [values(b) for b in parsed.bars] == [values(b) for b in bars]  # oldest first
    assert parsed.problems == []


def test_header_names_match_in_any_order_and_case(bars):
    columns = HEADER.split(",")
    order = [9, 3, 0, 2, 1, 4, 5, 6, 7, 8]
    lines = [",".join(columns[i].upper() for i in order)]
    for line in render("Bitcoin", "BTC", bars).splitlines()[1:]:
        fields = line.split(",")
        lines.append(",".join(fields[i] for i in order))
    parsed = coincsv.parse("\n".join(lines))
    assert [values(b) for b in parsed.bars] == [values(b) for b in bars]


def test_date_only_and_iso_timestamps_are_accepted(bars):
    lines = render("Bitcoin", "BTC", bars).splitlines()
    lines[1] = lines[1].replace(" 23:59:59", "")
    lines[2] = lines[2].replace(" 23:59:59", "T00:00:00")
    assert [values(b) for b in coincsv.parse("\n".join(lines)).bars] == [values(b) for b in bars]


def test_empty_market_cap_is_unknown(bars):
    lines = render("Bitcoin", "BTC", bars).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ","
    parsed = coincsv.parse("\n".join(lines))
    assert parsed.bars[2].market_cap is None
    assert [b.market_cap for b in parsed.bars[:2] + parsed.bars[3:]] == [b.market_cap for b in bars[:2] + bars[3:]]


@pytest.mark.parametrize("cap", ["0.0", "0", "0e0", "-0.0"])
def test_a_zero_market_cap_is_unknown_as_the_published_dataset_writes_it(bars, cap):
    """The dataset writes an unknown cap as 0.0 (WBTC, SOL, ATOM...), never leaving it empty. Row 2 takes the
    fast path; row 4, with a padded symbol the fast path refuses, the field-by-field one."""
    lines = render("Bitcoin", "BTC", bars).splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + "," + cap
    lines[4] = lines[4].rsplit(",", 1)[0].replace(",BTC,", ", BTC ,") + f", {cap} "
    parsed = coincsv.parse("\n".join(lines))
    assert parsed.problems == []
    assert [b.market_cap for b in parsed.bars] == [None if n in (1, 3) else b.market_cap for n, b in enumerate(bars)]
    assert all(bars[n].market_cap > 0 for n in (1, 3))


BAD_ROWS = [
    # (row text after SNo, what the reason must say)
    ("Bitcoin,BTC,2024-03-10 23:59:59,abc,1.0,1.0,1.0,5.0,7.0", "High 'abc' is not a number"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,,1.0,1.0,5.0,7.0", "Low '' is not a number"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,nan,1.0,5.0,7.0", "Open 'nan' is not a finite number"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,inf,5.0,7.0", "Close 'inf' is not a finite number"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,-5.0,7.0", "Volume '-5.0' is negative"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,-7", "Marketcap '-7' is negative"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,1.0,2.0,1.0,1.5,5.0,7.0", "Low 2.0 is above High 1.0"),
    ("Bitcoin,BTC,2024-02-30 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0", "Date '2024-02-30 23:59:59' is not a date"),
    ("Bitcoin,BTC,2024-03-10 25:00:00,2.0,1.0,1.0,1.5,5.0,7.0", "Date '2024-03-10 25:00:00' is not a date"),
    ("Bitcoin,BTC,10/03/2024,2.0,1.0,1.0,1.5,5.0,7.0", "Date '10/03/2024' is not a date"),
    ("Bitcoin,BTC,2024-03-10T10:00:00+02:00,2.0,1.0,1.0,1.5,5.0,7.0", "is not a date"),
    ("Bitcoin,BTC,2024-W10-1,2.0,1.0,1.0,1.5,5.0,7.0", "is not a date"),
    ("Bitcoin,,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0", "Symbol is empty"),
    ("Bitcoin,B T C,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0", "Symbol 'B T C' is not a valid symbol"),
    (",BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0", "Name must have 1 to 128 characters"),
    ("Ethereum,ETH,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0", "a different coin (ETH, Ethereum)"),
    ("Bitcoin Gold,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0", "a different coin (BTC, Bitcoin Gold)"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0", "expected 10 fields, got 9"),
    ("Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0,8.0", "expected 10 fields, got 11"),
]


@pytest.mark.parametrize("line, reason", BAD_ROWS, ids=[reason for _, reason in BAD_ROWS])
def test_a_bad_row_is_skipped_and_named_by_line(bars, line, reason):
    after = "".join(row(n, "Bitcoin", "BTC", b) + "\n" for n, b in enumerate(bars[6:], 7))
    content = text_of(bars[:6], [f"99,{line}"]) + after
    parsed = coincsv.parse(content, source="coin_Bitcoin.csv")
    assert [values(b) for b in parsed.bars] == [values(b) for b in bars]
    assert len(parsed.problems) == 1
    problem = parsed.problems[0]
    assert problem.line == 8  # the header is line 1, six good rows, then this one
    assert reason in problem.message
    assert str(problem) == f"line 8: {problem.message}"
    assert parsed.rows == 13


def test_blank_lines_are_not_rows(bars):
    lines = render("Bitcoin", "BTC", bars).splitlines()
    content = "\n".join(lines[:3] + ["", "   "] + lines[3:]) + "\n\n"
    parsed = coincsv.parse(content)
    assert parsed.rows == len(bars) and parsed.problems == []
    assert len(parsed.bars) == len(bars)


def test_identical_repeated_rows_are_kept_once(bars):
    parsed = coincsv.parse(text_of(bars, [row(50, "Bitcoin", "BTC", bars[3]), row(51, "Bitcoin", "BTC", bars[3])]))
    assert [values(b) for b in parsed.bars] == [values(b) for b in bars]
    assert (parsed.repeated, parsed.problems) == (2, [])


def test_a_date_with_differing_rows_is_dropped_and_every_line_reported(bars):
    changed = Bar(bars[3].timestamp, bars[3].open, bars[3].high, bars[3].low, bars[3].low, bars[3].volume, None,
                  bars[3].market_cap)
    identical = row(41, "Bitcoin", "BTC", bars[3])
    parsed = coincsv.parse(text_of(bars, [row(40, "Bitcoin", "BTC", changed), identical]))
    assert [values(b) for b in parsed.bars] == [values(b) for n, b in enumerate(bars) if n != 3]
    day = bars[3].date
    assert [(p.line, p.message) for p in parsed.problems] == [
        (line, f"date {day} appears with different figures on lines 5, 14, 15; none of them is loaded")
        for line in (5, 14, 15)]


def test_the_coin_is_the_one_most_rows_name(bars):
    """A file whose first row belongs to another coin keeps the coin of the other rows."""
    stray = "0,Ethereum,ETH,2024-01-01 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0"
    lines = render("Bitcoin", "BTC", bars).splitlines()
    parsed = coincsv.parse("\n".join([lines[0], stray] + lines[1:]))
    assert (parsed.symbol, parsed.name) == ("BTC", "Bitcoin")
    assert [(p.line, p.message) for p in parsed.problems] == [
        (2, "a different coin (ETH, Ethereum) from the file's (BTC, Bitcoin)")]
    assert len(parsed.bars) == len(bars)


def test_name_differing_only_in_case_is_the_same_coin(bars):
    lines = render("Bitcoin", "BTC", bars).splitlines()
    lines[2] = lines[2].replace(",Bitcoin,BTC,", ",BITCOIN,btc,")
    parsed = coincsv.parse("\n".join(lines))
    assert parsed.problems == [] and len(parsed.bars) == len(bars) and parsed.name == "Bitcoin"


def test_no_usable_row_leaves_no_coin():
    parsed = coincsv.parse(HEADER + "\n1,Bitcoin,BTC,nope,1,1,1,1,1,1\n")
    assert (parsed.symbol, parsed.name, parsed.bars, parsed.rows) == ("", "", [], 1)
    assert [p.line for p in parsed.problems] == [2]


def test_header_only_file_has_no_rows():
    parsed = coincsv.parse(HEADER + "\n")
    assert (parsed.rows, parsed.bars, parsed.problems) == (0, [], [])


@pytest.mark.parametrize("content, message", [
    (b"", "empty file; expected the header SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"),
    (b"\xef\xbb\xbf\n\n", "empty file"),
    (b"SNo,Name,Symbol,Date,High,Low,Open,Close,Volume\n",
     "wrong header: expected SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap; missing Marketcap"),
    (b"SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Market Cap\n", "missing Marketcap; unexpected 'Market Cap'"),
    (b"SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap,Open\n", "repeated Open"),
    (b"1,Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0\n", "wrong header"),
    (b'{"data": [1, 2, 3]}', "wrong header"),
    (HEADER.encode() + b"\n1,Bitcoin,BTC,2024-03-10 23:59:59,2.0,1.0,1.0,1.5,5.0,7.0\n2,Bitc\xf6in,BTC,2024",
     "not UTF-8 text (byte 0xf6 on line 3)"),
    (b"\xff\xfeS\x00N\x00o\x00", "not UTF-8 text (byte 0xff on line 1)"),  # UTF-16
    # An unterminated quote swallows the rest of the file into one field, beyond what a field may hold.
    (HEADER.encode() + b'\n1,"Bitcoin,BTC\n' + b"2,Bitcoin,BTC,2024-03-10,2,1,1,1,5,7\n" * 5000, "not readable as CSV"),
])
def test_a_malformed_file_raises_naming_the_file(content, message):
    with pytest.raises(MalformedPayloadError) as info:
        coincsv.parse(content, source="coin_X.csv")
    assert str(info.value).startswith("coin_X.csv: ")
    assert message in str(info.value)


def test_read_names_missing_files(tmp_path, bars):
    with pytest.raises(NotFoundError, match="coin_Nope.csv: no such file"):
        coincsv.read(tmp_path / "coin_Nope.csv")
    path = tmp_path / "coin_Bitcoin.csv"
    path.write_text(text_of(bars, bom=True), encoding="utf-8")
    parsed = coincsv.read(path)
    assert parsed.source == "coin_Bitcoin.csv" and [values(b) for b in parsed.bars] == [values(b) for b in bars]


def test_rows_at_the_limits_of_the_rules():
    content = HEADER + "\n" + "\n".join([
        "1,Zero,ZERO,2024-01-01 23:59:59,0,0,0,0,0,0",  # zero everywhere: allowed (a zero cap means unknown)
        "2,Zero,ZERO,2024-01-02,1e3,1E-3,0.5,2.5e2,1_000,",  # float() spellings; no market cap
        "3, Zero , zero ,2024-01-03 , 2 , 1 , 1 , 1 , 1 , 1 ",  # spaces around values
    ])
    parsed = coincsv.parse(content)
    assert parsed.problems == []
    assert [values(b) for b in parsed.bars] == [
        (day_start(dt.date(2024, 1, 1)), 0.0, 0.0, 0.0, 0.0, 0.0, None, None),
        (day_start(dt.date(2024, 1, 2)), 0.5, 1000.0, 0.001, 250.0, 1000.0, None, None),
        (day_start(dt.date(2024, 1, 3)), 1.0, 2.0, 1.0, 1.0, 1.0, None, 1.0),
    ]
