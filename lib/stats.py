"""Pure statistics over price series, for library users and as the reference the service's SQL must match.

The service computes these figures in SQL where the data lives; these functions define what the
figures mean. Every function takes plain sequences of floats and returns `None` where the figure is
undefined (too few points, division by zero) instead of raising.
"""
from __future__ import annotations

import math
from typing import Sequence


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if len(values) else None


def pstdev(values: Sequence[float]) -> float | None:
    """Population standard deviation (divides by n, as STDDEV_POP does)."""
    if not len(values):  # len(), not truth: numpy arrays and pandas Series refuse bool()
        return None
    centre = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - centre) ** 2 for v in values) / len(values))


def simple_returns(prices: Sequence[float]) -> list[float]:
    """p[i] / p[i-1] - 1 for consecutive prices; pairs with a zero denominator are skipped."""
    return [cur / prev - 1 for prev, cur in zip(prices, prices[1:]) if prev]


def volatility(prices: Sequence[float]) -> float | None:
    """Population standard deviation of simple returns, in percent."""
    returns = simple_returns(prices)
    deviation = pstdev(returns)
    return None if deviation is None else deviation * 100


def percent_change(old: float | None, new: float | None) -> float | None:
    """(new - old) / old in percent; None when either side is missing or old is zero."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / old * 100
