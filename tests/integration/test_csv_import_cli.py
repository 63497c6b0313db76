"""`get_raw_data.py --source csv --path FILE_OR_DIR` as its users run it: a subprocess, on both stacks.

Expected rows are the bars the files were rendered from, minus the rows a test broke on purpose; the
dashboard figures after a re-import are computed here from those bars.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from financial.models import Bar, Instrument
from tests.conftest import base_settings, env_for
from tests.fakes.coin_csv import HEADER, coin_bars, render, row
from tests.integration.test_get_raw_data_cli import cli, summary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "get_raw_data.py")
YESTERDAY = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
BARS, INSTRUMENTS = Bar.__table__, Instrument.__table__


def stored(url: str) -> dict[tuple[str, str], dict]:
    """{(symbol, name): {naive ts: (open, high, low, close, volume, market_cap)}} of the coins' daily bars."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(INSTRUMENTS.c.symbol, INSTRUMENTS.c.name, BARS.c.ts, BARS.c.open, BARS.c.high, BARS.c.low,
                          BARS.c.close, BARS.c.volume, BARS.c.market_cap)
                .join(INSTRUMENTS, INSTRUMENTS.c.id == BARS.c.instrument_id)
                .where(INSTRUMENTS.c.asset_class == "crypto", INSTRUMENTS.c.exchange == "",
                       BARS.c.interval == "1day"))
            coins: dict = {}
            for symbol, name, ts, *values in rows:
                coins.setdefault((symbol, name), {})[ts] = tuple(values)
            return coins
    finally:
        engine.dispose()


def rows_of(bars) -> dict:
    return {b.timestamp.replace(tzinfo=None): (b.open, b.high, b.low, b.close, b.volume, b.market_cap) for b in bars}


class Folder:
    """A folder of CSV files beside their source bars: good ones, one with bad rows, malformed ones."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.btc = coin_bars("BTC", end=YESTERDAY, days=40, start_price=60000.0, supply=19.6e6)
        self.eth = coin_bars("ETH", end=YESTERDAY, days=35, start_price=3000.0, supply=120e6)
        self.write_btc(self.btc)
        # Ethereum: five bad rows among the good ones, an identical repeat, and a date given two values.
        eth_lines = render("Ethereum", "ETH", self.eth).splitlines()
        conflicting = replace(self.eth[10], close=self.eth[10].low)
        eth_lines[5:5] = [
            "900,Ethereum,ETH,2021-07-06 23:59:59,abc,1,1,1,1,1",
            "901,Ethereum,ETH,2021-07-07 23:59:59,1,2,1,1,1,1",
            "902,Ethereum,ETH,2021-07-08 23:59:59,2,1,1,1,-5,1",
            "903,Tether,USDT,2021-07-09 23:59:59,2,1,1,1,5,1",
            "904,Ethereum,ETH,07/10/2021,2,1,1,1,5,1",
            row(905, "Ethereum", "ETH", self.eth[3]),
            row(906, "Ethereum", "ETH", conflicting),
        ]

        def line_of(text):
            return eth_lines.index(text) + 1

        self.eth_bad_lines = [line_of(text) for text in eth_lines[5:10]] + [
            line_of(row(906, "Ethereum", "ETH", conflicting)), line_of(row(11, "Ethereum", "ETH", self.eth[10]))]
        (path / "coin_Ethereum.csv").write_text("\n".join(eth_lines) + "\n", encoding="utf-8")
        self.eth_loaded = [bar for n, bar in enumerate(self.eth) if n != 10]
        (path / "coin_Empty.csv").write_bytes(b"")
        (path / "coin_HeaderOnly.csv").write_text(HEADER + "\n", encoding="utf-8")
        (path / "coin_WrongHeader.csv").write_text(render("Cardano", "ADA", self.eth).replace("Marketcap", "Cap"))
        # A good file up to its last line, which is not UTF-8: nothing of it may be stored.
        doge = render("Dogecoin", "DOGE", coin_bars("DOGE", end=YESTERDAY, days=30, start_price=0.1, supply=1e11))
        (path / "coin_Latin1.csv").write_bytes(doge.encode() + "31,Dogecoin,DOGE,2021-07-06,1,1,1,1,1,Münze\n"
                                               .encode("latin-1"))
        (path / "coin_AllBad.csv").write_text(HEADER + "\n1,Solana,SOL,never,1,1,1,1,1,1\n", encoding="utf-8")
        (path / "notes.txt").write_text("not a CSV file\n")
        (path / ".coin_Hidden.csv").write_text(render("Hidden", "HID", self.btc))

    def write_btc(self, bars) -> None:
        (self.path / "coin_Bitcoin.csv").write_text(render("Bitcoin", "BTC", bars, bom=True), encoding="utf-8")


@pytest.fixture
def folder(tmp_path) -> Folder:
    path = tmp_path / "csv"
    path.mkdir()
    return Folder(path)


def test_a_folder_loads_its_good_files_and_reports_the_others(app, client, stack_settings, folder):
    url, env = stack_settings.database_url, env_for(stack_settings)
    result = cli(env, "--source", "csv", "--path", str(folder.path))
    assert result.returncode == 1  # some files failed
    table, total = summary(result.stdout)
    assert list(table) == ["coin_AllBad.csv", "coin_Bitcoin.csv", "coin_Empty.csv", "coin_Ethereum.csv",
                           "coin_HeaderOnly.csv", "coin_Latin1.csv", "coin_WrongHeader.csv"]  # name order
    bad = ", ".join(map(str, sorted(folder.eth_bad_lines)[:5]))
    assert table["coin_Bitcoin.csv"] == ("ok", 40, "BTC Bitcoin")
    assert table["coin_Ethereum.csv"] == (
        "ok", 34, f"ETH Ethereum; 1 repeated row ignored; 7 bad rows skipped (bad lines {bad} and 2 more)")
    failures = {
        "coin_AllBad.csv": "MalformedPayloadError: coin_AllBad.csv: none of its 1 rows is usable (bad line 2); "
                           "first: line 2: Date 'never' is not a date like 2021-07-06 or 2021-07-06 23:59:59",
        "coin_Empty.csv": "MalformedPayloadError: coin_Empty.csv: empty file; expected the header " + HEADER,
        "coin_HeaderOnly.csv": "MalformedPayloadError: coin_HeaderOnly.csv: no data rows under the header",
        "coin_Latin1.csv": "MalformedPayloadError: coin_Latin1.csv: not UTF-8 text (byte 0xfc on line 32)",
        "coin_WrongHeader.csv": f"MalformedPayloadError: coin_WrongHeader.csv: wrong header: expected {HEADER}; "
                                f"missing Marketcap; unexpected 'Cap'",
    }
    for label, detail in failures.items():
        assert table[label] == ("failed", 0, detail), label
    assert total == "7 instruments: 2 ok, 5 failed, 0 skipped; 74 rows stored"
    assert stored(url) == {("BTC", "Bitcoin"): rows_of(folder.btc), ("ETH", "Ethereum"): rows_of(folder.eth_loaded)}
    for line in folder.eth_bad_lines:  # every skipped row, by file and line, on stderr
        assert f"coin_Ethereum.csv: line {line} skipped: " in result.stderr, line
    assert "coin_Ethereum.csv: line 6 skipped: High 'abc' is not a number" in result.stderr
    assert "[2/7] coin_Bitcoin.csv: ok, 40 rows (BTC Bitcoin)" in result.stderr

    # The dashboard (cached by this process) follows a re-import that corrects a close, done by another process.
    before = client.get("/api/dashboard?id=btc").get_json()["data"][0]
    assert before["price"] == folder.btc[-1].close
    again = cli(env, "--source", "csv", "--path", str(folder.path))
    assert again.returncode == 1 and summary(again.stdout) == (table, total)
    assert stored(url) == {("BTC", "Bitcoin"): rows_of(folder.btc), ("ETH", "Ethereum"): rows_of(folder.eth_loaded)}
    corrected = list(folder.btc)
    corrected[-1] = replace(corrected[-1], close=corrected[-1].high)
    folder.write_btc(corrected)
    single = cli(env, "--source", "csv", "--path", str(folder.path / "coin_Bitcoin.csv"))
    assert single.returncode == 0, single.stderr
    assert summary(single.stdout) == ({"coin_Bitcoin.csv": ("ok", 40, "BTC Bitcoin")},
                                      "1 instruments: 1 ok, 0 failed, 0 skipped; 40 rows stored")
    assert stored(url) == {("BTC", "Bitcoin"): rows_of(corrected), ("ETH", "Ethereum"): rows_of(folder.eth_loaded)}
    after = client.get("/api/dashboard?id=btc").get_json()["data"][0]
    reference = corrected[-2].close
    assert after["price"] == corrected[-1].close
    assert after["24h"] == pytest.approx((corrected[-1].close - reference) / reference * 100, rel=1e-12)


def test_skipped_rows_alone_do_not_fail_the_run(tmp_path, folder):
    url = f"sqlite:///{tmp_path / 'rows.db'}"
    result = cli(env_for(base_settings(database_url=url)), "--source", "csv", "--path",
                 str(folder.path / "coin_Ethereum.csv"))
    assert result.returncode == 0, result.stderr
    table, total = summary(result.stdout)
    assert table["coin_Ethereum.csv"][:2] == ("ok", 34) and "7 bad rows skipped" in table["coin_Ethereum.csv"][2]
    assert stored(url) == {("ETH", "Ethereum"): rows_of(folder.eth_loaded)}


def test_a_symbol_keeps_its_coin(tmp_path, folder):
    """A second file with the same symbol but another name fails instead of mixing two coins' prices."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "coin_Bitcoin.csv").write_text(render("Bitcoin", "BTC", folder.btc))
    (other / "coin_BitcoinGold.csv").write_text(render("Bitcoin Gold", "btc", folder.eth))
    url = f"sqlite:///{tmp_path / 'conflict.db'}"
    result = cli(env_for(base_settings(database_url=url)), "--source", "csv", "--path", str(other))
    assert result.returncode == 1
    table, _ = summary(result.stdout)
    assert table["coin_Bitcoin.csv"] == ("ok", 40, "BTC Bitcoin")
    assert table["coin_BitcoinGold.csv"] == (
        "failed", 0, "CoinConflict: coin_BitcoinGold.csv: symbol BTC is already the coin 'Bitcoin', this file is "
                     "'Bitcoin Gold'")
    assert stored(url) == {("BTC", "Bitcoin"): rows_of(folder.btc)}


def test_usage_errors_stop_before_the_database(tmp_path, folder):
    untouched = tmp_path / "untouched.db"
    env = env_for(base_settings(database_url=f"sqlite:///{untouched}"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        "--source csv needs --path FILE_OR_DIR": ["--source", "csv"],
        f"--path: {tmp_path / 'nope'}: no such file or folder": ["--source", "csv", "--path", str(tmp_path / "nope")],
        f"--path: {empty}: no .csv files in this folder": ["--source", "csv", "--path", str(empty)],
        "--source csv loads daily bars; --interval must be 1day": ["--source", "csv", "--path", str(folder.path),
                                                                   "--interval", "1min"],
        "--path needs --source csv": ["--path", str(folder.path)],
    }
    processes = {message: subprocess.Popen([sys.executable, SCRIPT, *args], cwd=ROOT, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for message, args in cases.items()}
    for message, process in processes.items():
        out, err = process.communicate(timeout=60)
        assert (process.returncode, out) == (2, ""), (message, err)
        assert err.splitlines()[-1] == f"get_raw_data.py: error: {message}"
        assert "Traceback" not in err
    assert not untouched.exists()
