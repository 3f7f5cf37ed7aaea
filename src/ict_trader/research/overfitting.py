"""The probability of backtest overfitting (PBO), by combinatorially symmetric cross-validation.

Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting", Journal of
Computational Finance 20(4), 2017 (SSRN 2326253, 2015). The deflated Sharpe ratio asks whether
one chosen configuration beats luck; PBO asks whether the *way it was chosen* — keep the best
of N — carries information at all. Cross-validation on the configurations' own returns:

1. Put the T x N matrix of per-session returns (T sessions, N configurations) into S blocks
   of equal length, in time order (the oldest T mod S sessions are left out).
2. For each of the C(S, S/2) ways to pick half of the blocks (16 blocks: 12,870 splits), the
   chosen half is "in sample", the other half "out of sample"; each half is as long.
3. Take the configuration with the best statistic in sample (Sharpe ratio, or mean return),
   and its relative rank w among the N out of sample: rank / (N + 1), rank 1 the worst and
   tied values sharing their average rank. Its logit is ln(w / (1 - w)): positive when the
   in-sample best is above the out-of-sample median, negative below it.
4. PBO is the share of splits whose logit is <= 0: how often picking the best in sample
   gave a configuration no better than the median one out of sample.

PBO near 0: the configuration that looks best on some sessions stays among the better ones
on others — the choice carries information. Near 0.5 or above: the best in sample is no
better than a random pick out of sample; its figures are mostly luck. With pure noise and an
even N the expected PBO is exactly 0.5 (the out-of-sample rank of the in-sample best is then
uniform on 1..N).

Configurations whose returns are identical session for session are one strategy and count
once (they would otherwise tie with each other in every split); ties in sample go to the
lower configuration number, as in the sweep's own selection.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Statistic = Literal["sharpe", "mean"]
DEFAULT_BLOCKS = 16
_CHUNK = 2048  # splits computed at once: bounds memory at _CHUNK x N floats per array

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Overfitting:
    """The outcome of CSCV for one set of configurations."""

    probability: float  # PBO: the share of splits whose logit is <= 0
    statistic: Statistic
    blocks: int  # S
    block_sessions: int  # sessions in each block
    sessions: int  # sessions used: blocks x block_sessions (the oldest remainder is left out)
    splits: int  # C(S, S/2)
    configurations: int  # N given
    distinct: int  # N after identical return series are counted once
    overfit_splits: int  # splits whose logit is <= 0
    median_logit: float


def probability_of_overfitting(
    returns: Sequence[Sequence[float]] | FloatArray,
    *,
    blocks: int = DEFAULT_BLOCKS,
    statistic: Statistic = "sharpe",
) -> Overfitting | None:
    """PBO of choosing the best of the configurations, from their per-session returns.

    `returns[i][t]` is configuration i's return in session t; every configuration covers the
    same sessions. None when there is nothing to measure: fewer than two distinct
    configurations, or fewer sessions than blocks.
    """
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even number of at least 2, got {blocks}")
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("returns must be one sequence of session returns per configuration")
    if not np.isfinite(matrix).all():
        raise ValueError("returns must be finite numbers")
    given = matrix.shape[0]
    distinct = _distinct(matrix)
    size = matrix.shape[1] // blocks
    if distinct.shape[0] < 2 or size < 1:
        return None
    kept = distinct[:, matrix.shape[1] - size * blocks :]  # the most recent blocks x size sessions
    logits = _logits(kept, blocks, size, statistic)
    overfit = int(np.count_nonzero(logits <= 0))
    return Overfitting(
        probability=overfit / logits.size,
        statistic=statistic,
        blocks=blocks,
        block_sessions=size,
        sessions=size * blocks,
        splits=logits.size,
        configurations=given,
        distinct=distinct.shape[0],
        overfit_splits=overfit,
        median_logit=float(np.median(logits)),
    )


def _distinct(matrix: FloatArray) -> FloatArray:
    """The rows of `matrix` without exact repeats, in the order of their first appearance."""
    seen: dict[bytes, int] = {}
    for index, row in enumerate(matrix):
        seen.setdefault(row.tobytes(), index)
    return matrix[sorted(seen.values())]


def _logits(matrix: FloatArray, blocks: int, size: int, statistic: Statistic) -> FloatArray:
    """The logit of every split, in the order of itertools.combinations(range(blocks))."""
    count = matrix.shape[0]
    # blocks x size x N: each block's sessions, then each block's count, mean and sum of squared
    # deviations, from which any union of blocks gets its mean and variance without a pass
    # over the sessions again (Chan, Golub and LeVeque's pairwise update; no cancellation).
    cube = matrix.T.reshape(blocks, size, count)
    means = cube.mean(axis=1)
    squares = ((cube - means[:, None, :]) ** 2).sum(axis=1)
    halves = np.array(list(itertools.combinations(range(blocks), blocks // 2)), dtype=np.intp)
    # combinations() lists each half's complement at the mirrored position
    complement = halves[::-1]
    assert (
        np.sort(np.concatenate([halves, complement], axis=1), axis=1) == np.arange(blocks)
    ).all()
    scores = np.empty((len(halves), count))
    for start in range(0, len(halves), _CHUNK):
        chosen = halves[start : start + _CHUNK]
        scores[start : start + len(chosen)] = _scores(chosen, means, squares, size, statistic)
    in_sample, out_of_sample = scores, scores[::-1]
    best = np.argmax(in_sample, axis=1)  # the first maximum: the lower configuration number
    picked = out_of_sample[np.arange(len(best)), best][:, None]
    below = np.count_nonzero(out_of_sample < picked, axis=1)
    tied = np.count_nonzero(out_of_sample == picked, axis=1)
    rank = below + (tied + 1) / 2  # 1 = worst; ties share their average rank
    relative = rank / (count + 1)
    result: FloatArray = np.log(relative / (1 - relative))
    return result


def _scores(
    halves: npt.NDArray[np.intp],
    means: FloatArray,
    squares: FloatArray,
    size: int,
    statistic: Statistic,
) -> FloatArray:
    """Each configuration's statistic over each half (splits x N)."""
    parts = halves.shape[1]
    mean: FloatArray = means[halves].mean(axis=1)
    if statistic == "mean":
        return mean
    spread = squares[halves].sum(axis=1)
    for part in range(parts):
        spread += size * (means[halves[:, part]] - mean) ** 2
    observations = parts * size
    if observations < 2:
        return np.zeros_like(mean)
    deviation = np.sqrt(spread / (observations - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / deviation
    # no variation (a half without a trade): 0 for no return, else a return without risk
    flat = deviation == 0
    ratio[flat] = np.copysign(np.where(mean[flat] == 0, 0.0, math.inf), mean[flat])
    result: FloatArray = ratio
    return result
