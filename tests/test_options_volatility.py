"""The underlying's realized volatility from 1-minute bars: a hand computation, the rolling
window, and the real QQQ sample."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader.core.bars import Bar
from ict_trader.marketdata.barfile import load_bars
from ict_trader.options.volatility import RealizedVolatility, realized_volatility
from tests.conftest import SAMPLE_CSV


def _bar(stamp: str, close: float) -> Bar:
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return Bar(moment, close, close, close, close, 1000.0)


def test_a_hand_computation() -> None:
    bars = [
        _bar("2024-07-29T13:30", 100.0),
        _bar("2024-07-29T13:31", 101.0),
        _bar("2024-07-29T13:33", 100.5),  # two minutes after the previous bar
        _bar("2024-07-29T13:34", 100.5),
        _bar("2024-07-30T13:30", 90.0),  # the next morning: the night's gap is left out
        _bar("2024-07-30T13:31", 90.9),
    ]
    squares = math.log(101 / 100) ** 2 + math.log(100.5 / 101) ** 2 + 0.0 + math.log(90.9 / 90) ** 2
    minutes = 1 + 2 + 1 + 1
    expected = math.sqrt(squares / minutes * 252 * 390)
    assert realized_volatility(bars) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(2.0920, abs=1e-4)  # 1 % a minute: a wild day
    # the last three returns only
    tracker = RealizedVolatility(window=3)
    for bar in bars:
        tracker.update(bar)
    last_three = math.log(100.5 / 101) ** 2 + 0.0 + math.log(90.9 / 90) ** 2
    assert tracker.value == pytest.approx(math.sqrt(last_three / 4 * 98_280), rel=1e-12)
    assert tracker.returns == 3


def test_nothing_to_measure_is_none_and_bad_bars_are_refused() -> None:
    assert realized_volatility([]) is None
    assert realized_volatility([_bar("2024-07-29T13:30", 100.0)]) is None
    one_a_day = [_bar("2024-07-29T19:59", 100.0), _bar("2024-07-30T13:30", 101.0)]
    assert realized_volatility(one_a_day) is None
    with pytest.raises(ValueError, match="not after"):
        realized_volatility([_bar("2024-07-29T13:31", 100.0), _bar("2024-07-29T13:30", 100.0)])
    with pytest.raises(ValueError, match="positive"):
        realized_volatility([_bar("2024-07-29T13:31", 0.0)])
    with pytest.raises(ValueError, match="window"):
        RealizedVolatility(window=0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-0.01, 0.01), min_size=1, max_size=60),
    st.integers(1, 30),
)
def test_a_constant_size_move_is_its_own_volatility(moves: list[float], window: int) -> None:
    """Returns of one size s every minute: sigma = s x sqrt(98,280), whatever their signs."""
    size = 0.002
    start = datetime(2024, 7, 29, 13, 30, tzinfo=UTC)
    closes = [100.0]
    for move in moves:
        closes.append(closes[-1] * math.exp(math.copysign(size, move)))
    bars = [_bar_at(start + timedelta(minutes=i), c) for i, c in enumerate(closes)]
    tracker = RealizedVolatility(window=window)
    for bar in bars:
        tracker.update(bar)
    assert tracker.value == pytest.approx(size * math.sqrt(98_280), rel=1e-9)
    assert realized_volatility(bars) == pytest.approx(size * math.sqrt(98_280), rel=1e-9)


def _bar_at(moment: datetime, close: float) -> Bar:
    return Bar(moment, close, close, close, close, 1000.0)


def test_the_real_sample_has_a_plausible_volatility() -> None:
    bars = load_bars(SAMPLE_CSV).bars
    sigma = realized_volatility(bars)
    assert sigma is not None
    assert 0.05 < sigma < 0.8  # QQQ: some 15-35 % a year
