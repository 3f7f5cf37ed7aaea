"""Confidence intervals for the audit's expectation figures.

A first live week has a handful of signals and trades; a bare rate ("2 of 3 targets hit") says
almost nothing, so every rate the audit shows comes with its 95 % interval:

- rates (target-hit, win rate): the Wilson score interval, as the backtest's figures
  (`metrics.wilson_interval`, re-exported here);
- counts per week (signals): the exact Poisson interval of Garwood (1936) on the count, divided by
  the weeks observed. It is computed from the Poisson distribution itself (bisection on its
  cumulative probabilities), not from a normal approximation, which is useless at 0 to 5 events.
"""

from __future__ import annotations

import math

from ict_trader.reporting.metrics import wilson_interval

__all__ = ["poisson_interval", "rate_interval", "wilson_interval"]

ALPHA = 0.05  # two-sided: 95 % intervals, as the backtest's


def _poisson_cdf(count: int, mean: float) -> float:
    """P(X <= count) for X ~ Poisson(mean), summed in log space (no overflow for big counts)."""
    if mean <= 0:
        return 1.0
    log_term = -mean  # log P(X = 0)
    total = math.exp(log_term)
    for k in range(1, count + 1):
        log_term += math.log(mean) - math.log(k)
        total += math.exp(log_term)
    return min(total, 1.0)


def _solve(target: float, count: int, low: float, high: float) -> float:
    """The mean at which P(X <= count) equals `target` (it falls as the mean grows)."""
    for _ in range(200):
        middle = (low + high) / 2
        if _poisson_cdf(count, middle) > target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def poisson_interval(count: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Garwood's exact two-sided interval for the mean of a Poisson count.

    Lower: the mean with P(X >= count) = alpha/2 (0 for a count of 0); upper: the mean with
    P(X <= count) = alpha/2. E.g. 0 → (0, 3.69), 1 → (0.025, 5.57), 10 → (4.80, 18.39).
    """
    if count < 0:
        raise ValueError(f"a count cannot be negative: {count}")
    ceiling = count + 20 * math.sqrt(count + 1) + 20
    upper = _solve(alpha / 2, count, 0.0, ceiling)
    lower = 0.0 if count == 0 else _solve(1 - alpha / 2, count - 1, 0.0, ceiling)
    return (lower, upper)


def rate_interval(count: int, weeks: float) -> tuple[float, float] | None:
    """The 95 % interval of a rate per week from `count` events in `weeks` (None: no time)."""
    if weeks <= 0:
        return None
    low, high = poisson_interval(count)
    return (low / weeks, high / weeks)
