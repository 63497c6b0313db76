"""Historical coin CSV files, as the CoinMarketCap export writes them, for tests and the sample data.

    python -m tests.fakes.coin_csv [OUT_DIR]      # (re)write data/fixtures/csv/coin_*.csv

`coin_bars` is a deterministic random walk over calendar days (coins trade every day) with a market cap;
`render` writes bars in the file format (header `SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap`,
timestamps at 23:59:59 of each date). Tests add their own broken lines to what `render` writes.
"""
from __future__ import annotations

import datetime as dt
import math
import random
import sys
from pathlib import Path
from typing import Sequence

from lib.bars import Bar, day_start

HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
ANCHOR = dt.date(2026, 11, 20)  # the sample's newest date; the demo re-dates it to yesterday on loading
DAYS = 400  # a little over a year
# name, symbol, start price, circulating supply, daily volatility, days of history (None: DAYS)
SAMPLE_COINS = [
    ("Bitcoin", "BTC", 26000.0, 19.4e6, 0.030, None),
    ("Ethereum", "ETH", 1650.0, 120.2e6, 0.035, None),
    ("Tether", "USDT", 1.0, 83.0e9, 0.0008, None),
    ("BNB", "BNB", 215.0, 153.9e6, 0.030, None),
    ("XRP", "XRP", 0.52, 53.0e9, 0.045, None),
    ("Cardano", "ADA", 0.26, 35.0e9, 0.045, None),
    ("Dogecoin", "DOGE", 0.062, 140.0e9, 0.050, None),
    ("Solana", "SOL", 21.0, 410.0e6, 0.055, None),
    ("Bitcoin Cash", "BCH", 215.0, 19.5e6, 0.040, None),
    ("Wrapped Bitcoin", "WBTC", 60000.0, 0.15e6, 0.030, 21),  # a recent listing: no 1-month change yet
]
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "data" / "fixtures" / "csv"


def coin_bars(seed: str, *, end: dt.date, days: int, start_price: float, supply: float | None = None,
              sigma: float = 0.04) -> list[Bar]:
    """`days` daily bars, one per calendar day up to `end`, oldest first; market cap = close x supply
    (None without a supply). Prices keep 8 significant digits, as the export does."""
    rng = random.Random(f"coin:{seed}")
    price = start_price
    base_volume = rng.uniform(0.02, 0.08) * (supply or 1e6) * start_price
    bars = []
    for offset in range(days - 1, -1, -1):
        open_ = price
        close = open_ * math.exp(rng.gauss(0.0, sigma))
        high = max(open_, close) * (1 + abs(rng.gauss(0.0, sigma / 2)))
        low = min(open_, close) * (1 - min(0.5, abs(rng.gauss(0.0, sigma / 2))))
        open_, high, low, close = (float(f"{value:.8g}") for value in (open_, high, low, close))
        volume = round(base_volume * math.exp(rng.gauss(0.0, 0.4)), 2)
        cap = round(close * supply, 2) if supply else None
        bars.append(Bar(day_start(end - dt.timedelta(days=offset)), open_, high, low, close, volume, None, cap))
        price = close
    return bars


def row(number: int, name: str, symbol: str, bar: Bar) -> str:
    cap = "" if bar.market_cap is None else repr(bar.market_cap)
    return (f"{number},{name},{symbol},{bar.date.isoformat()} 23:59:59,{bar.high!r},{bar.low!r},{bar.open!r},"
            f"{bar.close!r},{bar.volume!r},{cap}")


def render(name: str, symbol: str, bars: Sequence[Bar], *, bom: bool = False) -> str:
    """A whole file: the header, then one row per bar, newline-terminated."""
    lines = [HEADER] + [row(number, name, symbol, bar) for number, bar in enumerate(bars, 1)]
    return ("\ufeff" if bom else "") + "\n".join(lines) + "\n"


def sample_coins(end: dt.date = ANCHOR) -> dict[tuple[str, str], list[Bar]]:
    """{(name, symbol): bars} of the bundled sample."""
    return {(name, symbol): coin_bars(symbol, end=end, days=days or DAYS, start_price=price, supply=supply,
                                      sigma=sigma)
            for name, symbol, price, supply, sigma, days in SAMPLE_COINS}


def write_fixtures(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (name, symbol), bars in sample_coins().items():
        path = out_dir / f"coin_{name.replace(' ', '')}.csv"
        path.write_text(render(name, symbol, bars), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    for path in write_fixtures(Path(argv[0]) if argv else DEFAULT_OUT):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
