"""What /api/metrics must answer, computed from scratch from the bars a test stored.

The service computes in SQL; `lib.stats` holds the definitions (and is itself checked against pandas in
tests/unit/test_stats.py): over the bars with as_of − window <= start <= as_of, the population standard
deviation of the close and of the simple returns between consecutive bars (in percent); rank 1 is the
highest figure, equal figures in exchange then symbol order, instruments without the figure last
(exchange, symbol), unranked.
"""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import pandas as pd
import pytest

import lib
from lib import stats

FIGURES = ("mean", "stdev", "volatility", "last_price")


def window(bars: Sequence[lib.Bar], as_of: dt.datetime, hours: int) -> pd.DataFrame:
    """The bars in the window, oldest first: columns ts (naive UTC) and close."""
    frame = pd.DataFrame({"ts": [bar.timestamp.replace(tzinfo=None) for bar in bars],
                          "close": [bar.close for bar in bars]}, columns=["ts", "close"])
    end = as_of.replace(tzinfo=None)
    start = end - dt.timedelta(hours=hours)
    return frame[(frame.ts >= start) & (frame.ts <= end)].sort_values("ts").reset_index(drop=True)


def figures(bars: Sequence[lib.Bar], as_of: dt.datetime, hours: int) -> dict:
    selected = window(bars, as_of, hours)
    closes = [float(close) for close in selected.close]
    if not closes:
        return {"points": 0, "mean": None, "stdev": None, "volatility": None, "last_price": None, "last_time": None}
    return {"points": len(closes), "mean": stats.mean(closes), "stdev": stats.pstdev(closes),
            "volatility": stats.volatility(closes), "last_price": closes[-1],
            "last_time": selected.ts.iloc[-1].isoformat(timespec="seconds") + "Z"}


def ranking(instruments: dict[tuple[str, str], Sequence[lib.Bar]], as_of: dt.datetime, hours: int,
            rank_by: str) -> list[tuple[tuple[str, str], dict, int | None]]:
    """[((exchange, symbol), figures, rank)] in the order the service must list them. Stocks have exchange ''."""
    computed = {key: figures(bars, as_of, hours) for key, bars in instruments.items()}
    ranked = sorted((key for key in computed if computed[key][rank_by] is not None),
                    key=lambda key: (-computed[key][rank_by], key))
    unranked = sorted(key for key in computed if computed[key][rank_by] is None)
    return [(key, computed[key], number) for number, key in enumerate(ranked, 1)] + \
        [(key, computed[key], None) for key in unranked]


def assert_figures(entry: dict, want: dict) -> None:
    """An API entry's figures equal the reference: counts and times exactly, floats to 1e-9 relative."""
    assert entry["points"] == want["points"]
    assert entry["last_time"] == want["last_time"]
    for name in FIGURES:
        if want[name] is None:
            assert entry[name] is None, name
        else:
            assert entry[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
