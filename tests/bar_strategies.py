"""Hypothesis strategies: short bar sequences over real NYSE sessions, built to make signals.

Prices move on a coarse 5-cent grid so equal highs and lows (the tie rules of the swing
definition) happen often; sessions include early closes, data gaps (a skipped trading day),
partially covered sessions and missing minutes; parameters are small so that a few dozen bars
can hold a sweep, a displacement and a structure shift.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

from hypothesis import strategies as st

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar, Session
from ict_trader.signals import SignalParams

TICK = 0.05
START_DAYS = [
    date(2024, 1, 2),  # first session of the year
    date(2024, 3, 8),  # DST change follows on the weekend
    date(2024, 7, 2),  # then the 07-03 early close and the 07-04 holiday
    date(2024, 11, 27),  # then Thanksgiving and the 11-29 early close
    date(2024, 12, 23),  # then the 12-24 early close and Christmas
]


@cache
def calendar() -> NyseCalendar:
    return NyseCalendar(date(2024, 1, 1), date(2024, 12, 31))


def _sessions_from(first: date, count: int, skip_one: bool) -> list[Session]:
    sessions = [s for s in calendar().sessions() if s.day >= first]
    chosen = sessions[: count + 1]
    if skip_one and len(chosen) > 2:
        del chosen[1]  # a trading day missing from the data
    return chosen[:count]


def _price(units: int) -> float:
    return round(units * TICK, 2)


@st.composite
def bar_sequences(draw: st.DrawFn) -> list[Bar]:
    first = draw(st.sampled_from(START_DAYS))
    count = draw(st.integers(1, 3))
    sessions = _sessions_from(first, count, draw(st.booleans()))
    level = 2000  # 100.00 in ticks
    bars: list[Bar] = []
    for session in sessions:
        minutes = int((session.close - session.open).total_seconds() // 60)
        length = draw(st.integers(3, 70))
        at_end = draw(st.booleans())
        start = minutes - length if at_end else draw(st.integers(0, 3))
        start = max(start, 0)
        level += draw(st.integers(-8, 8))  # overnight gap
        minute = start
        while minute < min(start + length, minutes):
            open_ = level
            close = max(open_ + draw(st.integers(-6, 6)), 10)
            high = max(open_, close) + draw(st.integers(0, 2))
            low = max(min(open_, close) - draw(st.integers(0, 2)), 1)
            bars.append(
                Bar(
                    session.open + timedelta(minutes=minute),
                    _price(open_),
                    _price(high),
                    _price(low),
                    _price(close),
                    1000.0,
                )
            )
            level = close
            minute += 1 + (1 if draw(st.integers(0, 19)) == 0 else 0)  # now and then a gap
    return bars


@st.composite
def small_params(draw: st.DrawFn) -> SignalParams:
    return SignalParams(
        atr_period=draw(st.integers(1, 5)),
        swing_length=draw(st.integers(1, 3)),
        displacement_atr=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5])),
        require_fvg=draw(st.booleans()),
        mss_window=draw(st.integers(1, 20)),
        open_delay_minutes=draw(st.integers(0, 10)),
        close_buffer_minutes=draw(st.sampled_from([0, 1, 30, 60])),
    )
