"""Write the bundled sample files: `python -m tests.fakes.make_fixtures [OUT_DIR]`.

- `alphavantage/TIME_SERIES_DAILY_<SYMBOL>.json`: TIME_SERIES_DAILY bodies exactly as the upstream sends
  them with `outputsize=full`: 262 weekday bars (about one year) ending on the fixed anchor date below.
- `cryptowatch/OHLC_<exchange>_<pair>.json`: Cryptowatch OHLC bodies (`/markets/:exchange/:pair/ohlc
  ?periods=60`) of 1440 one-minute candles (24 hours) ending at the fixed anchor minute below.
- `csv/<Name>.csv`: the sample coins' historical CSV files (see tests.fakes.coin_csv).

The series are seeded, so running this twice writes identical files. The product re-dates the bars when
it loads them: the daily ones to end on the last weekday before today, the minute ones on the current
minute.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from tests.fakes import coin_csv
from tests.fakes.alphavantage import render_daily
from tests.fakes.cryptowatch import render_ohlc
from tests.fakes.series import daily_bars, minute_bars

ANCHOR = dt.date(2026, 11, 20)  # a Friday: the last daily bar's date
COUNT = 262
SYMBOLS = {"IBM": 220.0, "AAPL": 230.0}  # symbol -> start price (the seed is the symbol)
MINUTE_ANCHOR = dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.timezone.utc)  # the last minute candle's start
MINUTES = 1440
MARKETS = {"kraken:btcusd": 61000.0, "kraken:ethusd": 3100.0, "binance:solusdt": 140.0,
           "binance:ethusdt": 3100.0}  # market -> start price (the seed is the market)
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "fixtures"


def write_fixtures(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    written = []
    (out_dir / "alphavantage").mkdir(parents=True, exist_ok=True)
    for symbol, start_price in SYMBOLS.items():
        bars = daily_bars(symbol, end=ANCHOR, count=COUNT, start_price=start_price)
        path = out_dir / "alphavantage" / f"TIME_SERIES_DAILY_{symbol}.json"
        path.write_text(json.dumps(render_daily(symbol, bars, outputsize="full"), indent=1) + "\n",
                        encoding="utf-8")
        written.append(path)
    (out_dir / "cryptowatch").mkdir(parents=True, exist_ok=True)
    for market, start_price in MARKETS.items():
        bars = minute_bars(market, end=MINUTE_ANCHOR, count=MINUTES, start_price=start_price, price_decimals=2)
        exchange, pair = market.split(":")
        path = out_dir / "cryptowatch" / f"OHLC_{exchange}_{pair}.json"
        path.write_text(_one_row_per_line(render_ohlc(bars)), encoding="utf-8")
        written.append(path)
    return written


def _one_row_per_line(body: dict) -> str:
    """Compact JSON with each candle on its own line, so a diff of the file shows candles."""
    rows = next(iter(body["result"].values()))
    text = json.dumps(body, separators=(",", ":"))
    inline = json.dumps(rows, separators=(",", ":"))
    return text.replace(inline, "[\n" + ",\n".join(json.dumps(row, separators=(",", ":")) for row in rows) + "\n]") \
        + "\n"


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else DEFAULT_OUT
    for path in write_fixtures(out_dir) + coin_csv.write_fixtures(out_dir / "csv"):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
