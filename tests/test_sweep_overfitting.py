"""The probability of backtest overfitting (CSCV): a hand-checked example, the same figures as
a plain loop written from the paper's steps, and the properties the paper states — pure noise
gives 0.5 on average, a configuration better in every session gives 0."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader.research.overfitting import Statistic, probability_of_overfitting


def test_a_small_example_checked_by_hand() -> None:
    """Three configurations, four blocks of one session (the fifth, oldest session is left
    out: 5 mod 4). By the sum over each half (the same order as the mean):

    in sample  A  B  C  best   out of sample  A  B  C   rank of best   w      logit
    {1,2}      6  4  6  A      {3,4}          2  2  6   1.5 (tie A,B)  0.375  -0.511
    {1,3}      8  0  6  A      {2,4}          0  6  6   1              0.25   -1.099
    {1,4}      6  2  6  A      {2,3}          2  4  6   1              0.25   -1.099
    {2,3}      2  4  6  C      {1,4}          6  2  6   2.5 (tie A,C)  0.625  +0.511
    {2,4}      0  6  6  B      {1,3}          8  0  6   1              0.25   -1.099
    {3,4}      2  2  6  C      {1,2}          6  4  6   2.5            0.625  +0.511

    Four of six logits are <= 0: PBO = 2/3; the median logit is (-1.099 - 0.511) / 2."""
    returns = [
        [100, 6, 0, 2, 0],  # A: the left-out first session would make A the best everywhere
        [0, 0, 4, 0, 2],  # B
        [0, 3, 3, 3, 3],  # C
    ]
    result = probability_of_overfitting(returns, blocks=4, statistic="mean")
    assert result is not None
    assert result.probability == pytest.approx(4 / 6)
    assert (result.splits, result.overfit_splits, result.sessions, result.block_sessions) == (
        6,
        4,
        4,
        1,
    )
    assert result.median_logit == pytest.approx((math.log(1 / 3) + math.log(0.6)) / 2)


def _reference(returns: list[list[float]], blocks: int, statistic: Statistic) -> list[float]:
    """The paper's steps as plain loops: blocks, every half, the in-sample best's relative
    rank out of sample, its logit. Written apart from the module's vectorised update."""
    rows = [list(r) for r in dict.fromkeys(tuple(r) for r in returns)]  # identical rows once
    size = len(rows[0]) // blocks
    rows = [r[len(r) - size * blocks :] for r in rows]

    def score(row: list[float], half: tuple[int, ...]) -> float:
        values = [v for b in half for v in row[b * size : (b + 1) * size]]
        mean = sum(values) / len(values)
        if statistic == "mean":
            return mean
        if len(values) < 2:
            return 0.0
        deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        if deviation == 0:
            return 0.0 if mean == 0 else math.copysign(math.inf, mean)
        return mean / deviation

    logits = []
    for half in itertools.combinations(range(blocks), blocks // 2):
        other = tuple(b for b in range(blocks) if b not in half)
        inside = [score(r, half) for r in rows]
        outside = [score(r, other) for r in rows]
        best = inside.index(max(inside))
        rank = sum(v < outside[best] for v in outside) + (outside.count(outside[best]) + 1) / 2
        w = rank / (len(rows) + 1)
        logits.append(math.log(w / (1 - w)))
    return logits


@st.composite
def _small_matrices(draw: st.DrawFn) -> tuple[list[list[float]], int]:
    """Whole-number returns (many ties) in blocks of a power-of-two length, so that every
    mean and sum of squares is exact and both implementations see the same ties."""
    blocks = draw(st.sampled_from([2, 4, 8]))
    size = draw(st.sampled_from([1, 2, 4]))
    extra = draw(st.integers(0, blocks - 1))  # left out
    configurations = draw(st.integers(1, 6))
    value = st.integers(-3, 3).map(float)
    length = blocks * size + extra
    rows = draw(
        st.lists(
            st.lists(value, min_size=length, max_size=length),
            min_size=configurations,
            max_size=configurations,
        )
    )
    return rows, blocks


@settings(max_examples=300, deadline=None)
@given(case=_small_matrices(), statistic=st.sampled_from(["sharpe", "mean"]))
def test_the_same_figures_as_the_papers_steps_written_as_loops(
    case: tuple[list[list[float]], int], statistic: Statistic
) -> None:
    returns, blocks = case
    result = probability_of_overfitting(returns, blocks=blocks, statistic=statistic)
    if len({tuple(r) for r in returns}) < 2:
        assert result is None
        return
    logits = _reference(returns, blocks, statistic)
    assert result is not None
    assert result.splits == len(logits) == math.comb(blocks, blocks // 2)
    assert result.overfit_splits == sum(v <= 0 for v in logits)
    assert result.probability == sum(v <= 0 for v in logits) / len(logits)
    assert result.median_logit == pytest.approx(statistics.median(logits), abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), statistic=st.sampled_from(["sharpe", "mean"]))
def test_pure_noise_is_overfit_half_the_time_on_average(seed: int, statistic: Statistic) -> None:
    """With no skill anywhere the in-sample best lands at a uniform rank out of sample: with 10
    configurations, at or below the median 5 times in 10. One matrix's PBO varies a lot
    (s.d. about 0.23 here), so the mean of 100 is checked: s.d. about 0.023."""
    rng = np.random.default_rng(seed)
    values = [
        probability_of_overfitting(rng.normal(size=(10, 64)), blocks=8, statistic=statistic)
        for _ in range(100)
    ]
    assert all(v is not None for v in values)
    mean = sum(v.probability for v in values if v is not None) / len(values)
    assert mean == pytest.approx(0.5, abs=0.1)


finite = st.floats(-1, 1, allow_nan=False, allow_subnormal=False)


@settings(max_examples=100, deadline=None)
@given(
    noise=st.lists(st.lists(finite, min_size=32, max_size=32), min_size=1, max_size=8),
    margin=st.floats(0.001, 1),
    position=st.integers(0, 8),
)
def test_a_configuration_better_in_every_session_is_never_overfit(
    noise: list[list[float]], margin: float, position: int
) -> None:
    best = [max(column) + margin for column in zip(*noise, strict=True)]
    returns = [*noise]
    returns.insert(min(position, len(noise)), best)
    result = probability_of_overfitting(returns, blocks=8, statistic="mean")
    assert result is not None
    assert result.probability == 0
    assert result.median_logit > 0


def test_a_steady_configuration_among_noisy_ones_is_never_overfit_by_sharpe() -> None:
    rng = np.random.default_rng(7)
    returns = rng.normal(0, 1, size=(20, 256))
    returns[13] = 0.5 + rng.normal(0, 0.05, size=256)  # Sharpe about 10 per session
    result = probability_of_overfitting(returns)
    assert result is not None
    assert (result.probability, result.splits, result.blocks) == (0, 12870, 16)


@settings(max_examples=50, deadline=None)
@given(case=_small_matrices(), copy=st.integers(0, 5))
def test_a_repeated_configuration_counts_once(
    case: tuple[list[list[float]], int], copy: int
) -> None:
    returns, blocks = case
    doubled = [*returns, returns[copy % len(returns)]]
    once = probability_of_overfitting(returns, blocks=blocks)
    twice = probability_of_overfitting(doubled, blocks=blocks)
    assert twice == (None if once is None else replace(once, configurations=len(doubled)))


def test_what_cannot_be_measured() -> None:
    assert probability_of_overfitting([[0.1, 0.2, 0.3, 0.4]], blocks=2) is None  # one config
    assert probability_of_overfitting([[0.1, 0.2], [0.2, 0.1]], blocks=4) is None  # 2 < 4
    with pytest.raises(ValueError, match="even"):
        probability_of_overfitting([[0.1, 0.2], [0.2, 0.1]], blocks=3)
    with pytest.raises(ValueError, match="finite"):
        probability_of_overfitting([[0.1, math.nan], [0.2, 0.1]], blocks=2)
