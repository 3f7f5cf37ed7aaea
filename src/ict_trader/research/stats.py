"""Honest statistics for a configuration chosen among many: the deflated Sharpe ratio.

Bailey and López de Prado, "The Deflated Sharpe Ratio" (2014). Trying N configurations and
keeping the best inflates its Sharpe ratio: even with no skill, the best of N has an expected
Sharpe of about

    SR0 = sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))

where V is the variance of the N Sharpe ratios, g the Euler-Mascheroni constant and Z^-1 the
inverse of the standard normal distribution. The deflated Sharpe ratio is the probability
that the true Sharpe ratio exceeds SR0, given T returns with skewness s and kurtosis k:

    DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - s * SR + (k - 1) / 4 * SR^2))

All Sharpe ratios here are per period (per session), not annualized.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def sharpe(returns: Sequence[float]) -> float | None:
    """Mean over sample standard deviation; None with fewer than 2 returns or no variation."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(variance) if variance > 0 else None


def skew_kurtosis(returns: Sequence[float]) -> tuple[float, float]:
    """Sample skewness and (non-excess) kurtosis, population moments: a normal gives (0, 3)."""
    n = len(returns)
    mean = sum(returns) / n
    m2 = sum((r - mean) ** 2 for r in returns) / n
    if m2 == 0:
        return 0.0, 3.0
    m3 = sum((r - mean) ** 3 for r in returns) / n
    m4 = sum((r - mean) ** 4 for r in returns) / n
    return m3 / m2**1.5, m4 / m2**2


def expected_max_sharpe(trials: int, variance: float) -> float:
    """SR0: the Sharpe ratio the best of `trials` unskilled ones is expected to reach."""
    if trials < 2 or variance <= 0:
        return 0.0
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / trials)
        + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    )


def deflated_sharpe(
    sharpe_ratio: float,
    *,
    trials: int,
    trial_variance: float,
    observations: int,
    skewness: float,
    kurtosis: float,
) -> float | None:
    """The probability that the true Sharpe ratio beats the best of `trials` by luck."""
    if observations < 2:
        return None
    threshold = expected_max_sharpe(trials, trial_variance)
    spread = 1 - skewness * sharpe_ratio + (kurtosis - 1) / 4 * sharpe_ratio**2
    if spread <= 0:
        return None
    z = (sharpe_ratio - threshold) * math.sqrt(observations - 1) / math.sqrt(spread)
    return _NORMAL.cdf(z)
