"""Write the bundled AlphaVantage sample files: `python -m tests.fakes.make_fixtures [OUT_DIR]`
(and the sample coins' CSV files into the folder `csv` beside OUT_DIR, see tests.fakes.coin_csv).

Each file is a TIME_SERIES_DAILY body exactly as the upstream sends it with `outputsize=full`:
262 weekday bars (about one year) ending on the fixed anchor date below. The series are seeded, so
running this twice writes identical files. The product re-dates the bars to end on the last weekday
before today when it loads them.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from tests.fakes import coin_csv
from tests.fakes.alphavantage import render_daily
from tests.fakes.series import daily_bars

ANCHOR = dt.date(2026, 11, 20)  # a Friday: the last bar's date
COUNT = 262
SYMBOLS = {"IBM": 220.0, "AAPL": 230.0}  # symbol -> start price (the seed is the symbol)
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "fixtures" / "alphavantage"


def write_fixtures(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for symbol, start_price in SYMBOLS.items():
        bars = daily_bars(symbol, end=ANCHOR, count=COUNT, start_price=start_price)
        path = out_dir / f"TIME_SERIES_DAILY_{symbol}.json"
        path.write_text(json.dumps(render_daily(symbol, bars, outputsize="full"), indent=1) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    for path in write_fixtures(Path(argv[0]) if argv else DEFAULT_OUT):
        print(path)
    for path in coin_csv.write_fixtures(Path(argv[0]).parent / "csv" if argv else coin_csv.DEFAULT_OUT):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
