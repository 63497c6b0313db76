"""Bars as pandas DataFrames, and back: the shape notebooks and pandas users work in.

    frame = lib.to_frame(bars)       # DatetimeIndex "timestamp" (UTC), columns open high low close volume
    bars = lib.from_frame(frame)     # the same bars, exactly

The index holds each bar's timestamp as a timezone-aware UTC `DatetimeIndex` named `timestamp` (nanosecond
resolution on every pandas version, so frames from here always have the same dtype). Columns are float64:
`open, high, low, close, volume`, then `adjusted_close` and `market_cap` when any bar has one (NaN where a
bar has none). Values are the bars' floats unchanged, so `from_frame(to_frame(bars)) == bars`.

pandas is imported when a frame is made, not with `lib`: `import lib` stays fast for scripts that only fetch.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Iterable

from lib.bars import Bar

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("open", "high", "low", "close", "volume")
OPTIONAL_COLUMNS = ("adjusted_close", "market_cap")
INDEX_NAME = "timestamp"
INDEX_DTYPE = "datetime64[ns, UTC]"


def to_frame(bars: Iterable[Bar]) -> pd.DataFrame:
    """A DataFrame of `bars`, in the order given (the clients give them oldest first)."""
    import pandas as pd

    bars = list(bars)
    columns = list(COLUMNS) + [name for name in OPTIONAL_COLUMNS
                               if any(getattr(bar, name) is not None for bar in bars)]
    index = pd.DatetimeIndex([bar.timestamp for bar in bars], dtype=INDEX_DTYPE, name=INDEX_NAME)
    data = {name: pd.array([_or_nan(getattr(bar, name)) for bar in bars], dtype="float64") for name in columns}
    return pd.DataFrame(data, index=index, columns=columns)


def empty_frame() -> pd.DataFrame:
    """What `to_frame([])` gives: no rows, the five OHLCV columns, the UTC timestamp index."""
    return to_frame([])


def from_frame(frame: pd.DataFrame) -> list[Bar]:
    """The bars of a frame shaped like `to_frame`'s, in its row order.

    The timestamps come from a DatetimeIndex or a `timestamp` column (after `reset_index()`); naive ones are
    taken to be UTC, others are converted to UTC. `open, high, low, close, volume` are required;
    `adjusted_close` and `market_cap` are read when present, NaN meaning none. ValueError names a missing
    column or the row of a value a bar cannot hold.
    """
    import pandas as pd

    if isinstance(frame.index, pd.MultiIndex):
        raise ValueError("from_frame takes one series; select one first, e.g. frame.loc['IBM']")
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"from_frame needs the columns {', '.join(COLUMNS)}; missing {', '.join(missing)}")
    stamps = _timestamps(frame)
    absent = [math.nan] * len(frame)
    columns = [frame[name].astype("float64").tolist() if name in frame.columns else absent
               for name in (*COLUMNS, *OPTIONAL_COLUMNS)]
    bars = []
    for row, (stamp, open_, high, low, close, volume, adjusted, cap) in enumerate(zip(stamps, *columns)):
        try:
            bars.append(Bar(stamp, open_, high, low, close, volume, _or_none(adjusted), _or_none(cap)))
        except ValueError as exc:
            raise ValueError(f"row {row} ({stamp.isoformat()}): {exc}") from None
    return bars


def _timestamps(frame: pd.DataFrame) -> list[dt.datetime]:
    import pandas as pd

    if isinstance(frame.index, pd.DatetimeIndex):
        index = frame.index
    elif INDEX_NAME in frame.columns:
        index = pd.DatetimeIndex(frame[INDEX_NAME])
    else:
        raise ValueError("from_frame needs a DatetimeIndex or a 'timestamp' column")
    if index.hasnans:
        raise ValueError("from_frame: a timestamp is missing (NaT)")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return [stamp.replace(tzinfo=dt.timezone.utc) for stamp in index.to_pydatetime()]


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value
