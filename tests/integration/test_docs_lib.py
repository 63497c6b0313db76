"""docs/lib.md's examples, executed: every ```python block, in order, in one namespace, as a notebook would.

The environment points the service's variables at local fakes (AlphaVantage with IBM and AAPL, Kraken with
BTC/USD minutes), so the page's calls run unchanged; the blocks' own asserts check their figures, and this
test checks what the page's prose promises about them.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

import lib
from tests.fakes.alphavantage import FakeAlphaVantage
from tests.fakes.exchanges import FakeKraken
from tests.fakes.series import daily_bars, floor_time, minute_bars
from tests.fakes.server import FakeServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "lib.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[str]:
    return BLOCK.findall(PAGE.read_text(encoding="utf-8"))


@pytest.fixture
def upstreams(monkeypatch, tmp_path):
    today = dt.date.today()
    now = floor_time(dt.datetime.now(dt.timezone.utc), 60) + dt.timedelta(seconds=30)
    av, kraken = FakeAlphaVantage(api_key=None), FakeKraken()  # the page's placeholder key is accepted
    av.add_daily("IBM", daily_bars("IBM", end=today, count=150, start_price=180.0))
    av.add_daily("AAPL", daily_bars("AAPL", end=today, count=150, start_price=190.0))
    av.add_intraday("IBM", "5min", minute_bars("IBM-5m", end=now, count=100, start_price=180.0,
                                               interval_seconds=300, volume_decimals=0))
    kraken.add_ohlc("XXBTZUSD", minute_bars("kraken-btc", end=now, count=300, start_price=60000, price_decimals=1))
    with FakeServer(av) as av_server, FakeServer(kraken) as kraken_server:
        for variable, value in {"ALPHAVANTAGE_API_KEY": "DOCS-KEY", "ALPHAVANTAGE_BASE_URL": av_server.url,
                                "ALPHAVANTAGE_MIN_INTERVAL": "0", "EXCHANGE_BASE_URLS": f"kraken={kraken_server.url}",
                                "EXCHANGE_MIN_INTERVAL": "0", "HOME": str(tmp_path),
                                "XDG_CACHE_HOME": str(tmp_path / "cache")}.items():
            monkeypatch.setenv(variable, value)
        monkeypatch.delenv("LIB_CACHE_DIR", raising=False)
        monkeypatch.setattr(lib.series, "utc_now", lambda: now)  # the moment the fakes' data was made for
        yield av, kraken, now, tmp_path


def test_the_page_has_the_examples_it_promises():
    code = "\n".join(blocks())
    for call in ('lib.history("IBM"', 'lib.history(["IBM", "AAPL"]', 'interval="1week"', '"kraken:btcusd"',
                 ".plot(", ".describe()", "lib.HistoryError", "cache=True", "lib.to_frame", "lib.from_frame",
                 "alphavantage.daily_query", "client.fetch", "alphavantage.parse_daily", "source.candles"):
        assert call in code, call


def test_every_python_block_runs_against_the_fakes(upstreams, capsys):
    av, kraken, now, home = upstreams
    namespace: dict = {"__name__": "docs_lib"}
    for number, block in enumerate(blocks(), 1):
        try:
            exec(compile(block, f"docs/lib.md block {number}", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"docs/lib.md block {number} failed: {type(exc).__name__}: {exc}\n{block}") from exc
    ibm, prices, weeks, btc = (namespace[name] for name in ("ibm", "prices", "weeks", "btc"))
    assert ibm.index.name == "timestamp" and list(ibm.columns) == ["open", "high", "low", "close", "volume"]
    assert list(prices.index.get_level_values("symbol").unique()) == ["IBM", "AAPL"]
    assert list(namespace["closes"].columns) == ["IBM", "AAPL"]
    assert lib.from_frame(namespace["aapl"]) == [bar for bar in av.daily["AAPL"] if bar.timestamp >= ibm.index[0]]
    assert len(weeks) > 25 and weeks.index[-1].date() == av.daily["IBM"][-1].date
    minutes = kraken.candles["XXBTZUSD"]
    page_now = namespace["now"]  # the page's own clock reading
    closed = [bar for bar in minutes if bar.timestamp + dt.timedelta(minutes=1) <= now]
    assert lib.from_frame(btc) == [bar for bar in closed if bar.timestamp >= page_now - dt.timedelta(hours=2)]
    assert len(btc) in (119, 120)
    assert "1 of 2 series failed: NOPE: NotFoundError" in capsys.readouterr().out
    # ExchangeSource.candles reads the real clock: the fake's newest candle is closed once a minute has turned.
    first = [bar for bar in minutes if bar.timestamp >= page_now - dt.timedelta(minutes=30)]
    assert namespace["info"].label == "kraken:btcusd" and namespace["candles"] in (first[:-1], first)
    # cache=True wrote the user's cache folder; running that block again asks the upstream nothing.
    assert (home / "cache" / "market-data-tracker" / "responses.sqlite").is_file()
    asked = len(av.calls())
    exec(compile(next(block for block in blocks() if "cache=True" in block), "cache block", "exec"), namespace)
    assert len(av.calls()) == asked and namespace["again"].equals(namespace["first"])
