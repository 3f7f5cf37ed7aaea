"""Each rule of docs/signal.md pinned with a small hand-made bar sequence.

The base scenario (swing_length 1, atr_period 1 so that ATR = the bar's own true range):
    k0..k3 build a swing high at 102 (k1) and a swing low at 98 (k2),
    k4 sweeps 102 (high 102.5) and closes back at 100 -> short setup, MSS level 98,
    k5 is a 2.5-point down bar closing at 97.5 < 98 -> displacement + MSS -> short signal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from ict_trader.bars import Bar
from ict_trader.calendar import NyseCalendar
from ict_trader.signals import Direction, IctDetector, Signal, SignalParams, detect_signals
from ict_trader.signals.detector import BarOrderError, BarOutsideSessionError
from ict_trader.signals.params import ParamError, parse_param_assignments

CALENDAR = NyseCalendar(date(2024, 1, 1), date(2024, 12, 31))
PARAMS = SignalParams(
    atr_period=1,
    swing_length=1,
    displacement_atr=0.5,
    require_fvg=False,
    mss_window=20,
    open_delay_minutes=0,
    close_buffer_minutes=0,
)
OHLC = tuple[float, float, float, float]
BASE: list[OHLC] = [
    (100, 101, 99, 100),
    (100, 102, 99.5, 101),
    (101, 101.5, 98, 99),
    (99, 100, 98.5, 99.5),
    (99.5, 102.5, 99.4, 100),  # k4: the sweep
]
DISPLACE: OHLC = (100, 100.2, 97.4, 97.5)  # body 2.5 >= 0.5 x TR(k4)=3.1; closes below 98
NEUTRAL: OHLC = (99.8, 100, 99.6, 99.8)


def session_bars(day: date, rows: list[OHLC], start_minute: int = 0) -> list[Bar]:
    session = CALENDAR.session_on(day)
    assert session is not None
    return [
        Bar(session.open + timedelta(minutes=start_minute + i), o, h, lo, c, 1000.0)
        for i, (o, h, lo, c) in enumerate(rows)
    ]


def signals(rows: list[OHLC], params: SignalParams = PARAMS, **kwargs: int) -> list[Signal]:
    return detect_signals(session_bars(date(2024, 7, 29), rows, **kwargs), CALENDAR, params)


def test_short_signal_fields() -> None:
    (signal,) = signals([*BASE, DISPLACE])
    assert signal.time == datetime(2024, 7, 29, 13, 35, tzinfo=UTC)
    assert signal.direction is Direction.SHORT
    assert (signal.close, signal.extreme, signal.mss_level) == (97.5, 102.5, 98.0)
    assert signal.atr == pytest.approx(2.8)  # ATR after the signal bar: its own true range


def test_long_signal_is_the_mirror() -> None:
    mirrored = [(200 - o, 200 - lo, 200 - h, 200 - c) for o, h, lo, c in [*BASE, DISPLACE]]
    (signal,) = signals(mirrored)
    assert signal.direction is Direction.LONG
    assert (signal.close, signal.extreme, signal.mss_level) == (102.5, 97.5, 102.0)


def test_swing_tie_on_the_left_is_not_a_swing() -> None:
    """k0 high = k1 high: k1 is not strictly above its left bar, so 102 is no level to sweep."""
    rows = [(100, 102, 99, 100), *BASE[1:], DISPLACE]
    assert signals(rows) == []


def test_swing_tie_on_the_right_is_a_swing() -> None:
    """k2 high = k1 high: 'at least as high' on the right, so 102 stays a swing high."""
    rows = [BASE[0], BASE[1], (101, 102, 98, 99), BASE[3], BASE[4], DISPLACE]
    assert len(signals(rows)) == 1


def test_swing_low_ties_mirror() -> None:
    # k0, k1 and k2 all have low 98: neither k1 nor k2 is strictly below its left bar.
    left_tie = [(100, 101, 98, 100), (100, 102, 98, 101), *BASE[2:], DISPLACE]
    assert signals(left_tie) == []  # no swing low -> the sweep has no MSS level -> no setup
    right_tie = [*BASE[:3], (99, 100, 98, 99.5), BASE[4], DISPLACE]  # k3 low = k2 low
    (signal,) = signals(right_tie)
    assert signal.mss_level == 98.0


def test_failure_drops_the_setup() -> None:
    failing = (100, 103, 99.9, 102.6)  # closes above the sweep bar's high 102.5
    assert signals([*BASE, failing, DISPLACE]) == []
    holding = (100, 103, 99.9, 102.5)  # closing exactly at the sweep high is not a failure
    assert len(signals([*BASE, holding, DISPLACE])) == 1


def test_expiry_window_edge() -> None:
    """Sweep at k4; MSS at k7: k - s = 3 is allowed with mss_window 3, expired with 2."""
    rows = [*BASE, NEUTRAL, NEUTRAL, (99.8, 100, 97.4, 97.5)]
    assert len(signals(rows, replace(PARAMS, mss_window=3))) == 1
    assert signals(rows, replace(PARAMS, mss_window=2)) == []


def test_displacement_flag_persists_until_the_mss() -> None:
    displaced_no_break = (101, 101, 98.4, 98.5)  # body 2.5, but closes above 98
    follow_through = (98.5, 98.6, 97.8, 97.9)  # small bar, closes below 98
    (signal,) = signals([*BASE, displaced_no_break, follow_through])
    assert signal.time == datetime(2024, 7, 29, 13, 36, tzinfo=UTC)
    assert signal.extreme == 102.5
    # Without the displacement bar the same close below 98 is no signal (body 0.6 < 0.5 x 3.1).
    assert signals([*BASE, follow_through]) == []


def test_fair_value_gap_requirement() -> None:
    with_fvg = replace(PARAMS, require_fvg=True)
    assert signals([*BASE, DISPLACE], with_fvg) == []  # k3 low 98.5 is not above k5 high 100.2
    gapping = (98.4, 98.4, 96.0, 96.2)  # k3 low 98.5 > this high 98.4: a gap is left
    (signal,) = signals([*BASE, gapping], with_fvg)
    assert signal.close == 96.2


def test_a_bar_sweeping_both_sides_starts_no_setup() -> None:
    both = (100, 102.5, 97.9, 100)  # takes 102 and 98, closes inside both
    assert signals([*BASE[:4], both, DISPLACE]) == []


def test_new_sweep_replaces_the_pending_setup() -> None:
    """A long sweep after the short sweep replaces it: the later down bar is no short signal."""
    long_sweep = (100, 100.5, 97.9, 99.5)  # takes sell-side 98, closes above it
    rows = [*BASE, long_sweep, DISPLACE]
    assert signals(rows) == []


def test_signal_bar_keeps_no_new_setup() -> None:
    """The signal bar clears the pending setup even if it sweeps too; nothing fires after."""
    (signal,) = signals([*BASE, DISPLACE, (97.5, 97.6, 95.0, 95.1)])
    assert signal.time == datetime(2024, 7, 29, 13, 35, tzinfo=UTC)


def test_open_delay_edge_and_clearing() -> None:
    """k5 closes at 09:36: emitted with a 6-minute delay; with 7 it is suppressed but clears."""
    rows = [*BASE, DISPLACE, (97.5, 97.6, 97.0, 97.1)]
    assert len(signals(rows, replace(PARAMS, open_delay_minutes=6))) == 1
    assert signals(rows, replace(PARAMS, open_delay_minutes=7)) == []


def test_close_buffer_edge() -> None:
    """Bars at the very end of 2024-07-29: the signal bar closes at 16:00."""
    rows = [*BASE, DISPLACE]
    assert len(signals(rows, PARAMS, start_minute=384)) == 1
    assert signals(rows, replace(PARAMS, close_buffer_minutes=1), start_minute=384) == []


def test_early_close_day_window_ends_at_noon() -> None:
    """2024-11-29 closes at 13:00: with the default 60-minute buffer the window ends at 12:00."""
    params = replace(PARAMS, close_buffer_minutes=60)
    day = date(2024, 11, 29)
    at_noon = session_bars(day, [*BASE, DISPLACE], start_minute=144)  # closes 12:00
    assert len(detect_signals(at_noon, CALENDAR, params)) == 1
    after = session_bars(day, [*BASE, DISPLACE], start_minute=145)
    assert detect_signals(after, CALENDAR, params) == []


def test_atr_seeding_wilder_and_carry_over() -> None:
    detector = IctDetector(CALENDAR, replace(PARAMS, atr_period=3))
    day1 = session_bars(date(2024, 7, 29), [(10, 11, 9, 10), (10, 10.5, 9.5, 10), (12, 12, 11, 11)])
    detector.update(day1[0])
    assert detector.atr is None
    detector.update(day1[1])
    assert detector.atr is None
    detector.update(day1[2])  # TRs 2, 1, 2 (gap up from 10 to a 12 high) -> seeded mean 5/3
    assert detector.atr == pytest.approx(5 / 3)
    day2 = session_bars(date(2024, 7, 30), [(20, 20.5, 19.5, 20)])
    detector.update(day2[0])  # first bar of a session: TR = high - low = 1, no overnight gap
    assert detector.atr == pytest.approx((5 / 3 * 2 + 1) / 3)


def test_no_displacement_before_atr_is_seeded() -> None:
    """With atr_period 6 the ATR is undefined before k5's update, so k5 cannot displace."""
    assert signals([*BASE, DISPLACE], replace(PARAMS, atr_period=6)) == []
    assert len(signals([*BASE, DISPLACE], replace(PARAMS, atr_period=5))) == 1


def _previous_high_scenario(first_day: date) -> list[Signal]:
    earlier = session_bars(first_day, [(104, 105, 103, 104)])
    rows = [
        (104, 104.5, 103, 104),
        (104, 104.2, 102, 103),
        (103, 104, 102.5, 103.5),  # k1 low 102 becomes a swing low at k2
        (103.5, 105.5, 103.4, 104),  # takes the previous session's high 105, closes below
        (104, 104.1, 101.5, 101.6),  # displacement, closes below 102
    ]
    today = session_bars(date(2024, 7, 30), rows)
    return detect_signals([*earlier, *today], CALENDAR, PARAMS)


def test_previous_session_levels_need_the_previous_trading_day() -> None:
    assert len(_previous_high_scenario(date(2024, 7, 29))) == 1
    assert _previous_high_scenario(date(2024, 7, 26)) == []  # 07-29 missing: a gap, no levels


def test_swing_points_reset_each_session() -> None:
    """Yesterday's swing low is no MSS level today: the same sweep finds no swing low."""
    yesterday = session_bars(date(2024, 7, 29), BASE[:4])
    today = session_bars(date(2024, 7, 30), [(99.5, 102.5, 99.4, 100), DISPLACE])
    assert detect_signals([*yesterday, *today], CALENDAR, PARAMS) == []


def test_bars_outside_regular_hours_or_out_of_order_are_refused() -> None:
    detector = IctDetector(CALENDAR, PARAMS)
    premarket = Bar(datetime(2024, 7, 29, 13, 29, tzinfo=UTC), 1, 1, 1, 1, 1)
    with pytest.raises(BarOutsideSessionError, match="outside NYSE regular trading hours"):
        detector.update(premarket)
    bars = session_bars(date(2024, 7, 29), BASE[:2])
    detector.update(bars[1])
    with pytest.raises(BarOrderError):
        detector.update(bars[0])


def test_parameter_errors_name_the_key() -> None:
    with pytest.raises(ParamError, match="'swing_length'"):
        SignalParams(swing_length=0)
    with pytest.raises(ParamError, match="'mss_window'"):
        SignalParams().with_overrides({"mss_window": "soon"})
    with pytest.raises(ParamError, match="'require_fvg'"):
        SignalParams().with_overrides({"require_fvg": "maybe"})
    with pytest.raises(ParamError, match="unknown signal parameter 'atr'"):
        SignalParams().with_overrides({"atr": "3"})
    with pytest.raises(ParamError, match="NAME=VALUE"):
        parse_param_assignments(["swing_length"])
    assert SignalParams().with_overrides({"require_fvg": "off", "atr_period": "7"}) == SignalParams(
        require_fvg=False, atr_period=7
    )
