"""Each exit rule on its own: prices at the entry, rounding to the tick, and time checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ict_trader.core.calendar import NyseCalendar, Session
from ict_trader.core.events import ExitReason
from ict_trader.core.exits import (
    AtrStop,
    AtrTarget,
    SessionEnd,
    StopMode,
    SweepStop,
    TimeLimit,
    exit_plan,
    stop_rule,
)
from ict_trader.core.orders import Leg
from ict_trader.core.strategy import ExitRules
from ict_trader.signals import Direction, Signal

CALENDAR = NyseCalendar(date(2024, 11, 25), date(2024, 12, 6))


def a_signal(direction: Direction, *, atr: float = 0.4, extreme: float = 102.5) -> Signal:
    return Signal(
        time=datetime(2024, 11, 26, 14, 35, tzinfo=UTC),
        direction=direction,
        close=100.0,
        atr=atr,
        extreme=extreme,
        mss_level=100.2,
    )


def session_of(day: date) -> Session:
    session = CALENDAR.session_on(day)
    assert session is not None
    return session


@dataclass
class Held:
    entry_time: datetime | None


# ------------------------------------------------------------------ target


def test_the_target_is_n_atr_from_the_entry_in_the_trade_s_favour() -> None:
    target = AtrTarget(Decimal(5))
    assert target.leg is Leg.TARGET
    assert target.price(a_signal(Direction.LONG), Decimal("100.00")) == Decimal("102.00")
    assert target.price(a_signal(Direction.SHORT), Decimal("100.00")) == Decimal("98.00")


def test_the_target_rounds_to_the_tick_away_from_the_entry() -> None:
    target = AtrTarget(Decimal(5))
    signal_atr = 0.123  # 5 x 0.123 = 0.615
    long_ = target.price(a_signal(Direction.LONG, atr=signal_atr), Decimal("100.001"))
    short = target.price(a_signal(Direction.SHORT, atr=signal_atr), Decimal("100.001"))
    assert long_ == Decimal("100.62")  # 100.616 up, never nearer than 5 ATR
    assert short == Decimal("99.38")  # 99.386 down
    assert long_.as_tuple().exponent == -2 and short.as_tuple().exponent == -2


def test_the_target_uses_the_atr_as_written_not_its_binary_float() -> None:
    # 0.1 as a float is 0.1000000000000000055...; as written it is exactly 0.1, so a target of
    # 3 x 0.1 above 100.00 is exactly 100.30 and does not round up to 100.31.
    target = AtrTarget(Decimal(3))
    assert target.price(a_signal(Direction.LONG, atr=0.1), Decimal("100.00")) == Decimal("100.30")


# ------------------------------------------------------------------ stop


def test_stop_modes_build_their_rule() -> None:
    assert stop_rule(StopMode.NONE, Decimal(2)) is None
    assert stop_rule(StopMode.SWEEP, Decimal(2)) == SweepStop()
    assert stop_rule(StopMode.ATR, Decimal(2)) == AtrStop(Decimal(2))


def test_the_atr_stop_is_n_atr_against_the_trade_rounded_away_from_the_entry() -> None:
    stop = AtrStop(Decimal(2))
    assert stop.leg is Leg.STOP
    assert stop.price(a_signal(Direction.SHORT), Decimal("97.60")) == Decimal("98.40")
    assert stop.price(a_signal(Direction.LONG), Decimal("97.60")) == Decimal("96.80")
    # 2 x 0.123 = 0.246: a long's stop rounds down, a short's up (never tighter than the rule)
    assert stop.price(a_signal(Direction.LONG, atr=0.123), Decimal("100")) == Decimal("99.75")
    assert stop.price(a_signal(Direction.SHORT, atr=0.123), Decimal("100")) == Decimal("100.25")


def test_the_sweep_stop_rests_at_the_signal_s_extreme_whatever_the_entry() -> None:
    stop = SweepStop()
    assert stop.leg is Leg.STOP
    short = a_signal(Direction.SHORT, extreme=102.505)
    long_ = a_signal(Direction.LONG, extreme=97.495)
    assert stop.price(short, Decimal("100")) == Decimal("102.51")
    assert stop.price(short, Decimal("90")) == Decimal("102.51")
    assert stop.price(long_, Decimal("100")) == Decimal("97.49")


# ------------------------------------------------------------------ time limit


def test_the_time_limit_is_due_from_the_first_entry_fill() -> None:
    rule = TimeLimit(timedelta(minutes=60))
    entered = datetime(2024, 11, 26, 14, 36, tzinfo=UTC)
    session = session_of(date(2024, 11, 26))
    assert rule.due(Held(None), entered + timedelta(hours=5), session) is None  # not filled
    assert rule.due(Held(entered), entered + timedelta(minutes=59), session) is None
    assert rule.due(Held(entered), entered + timedelta(minutes=60), session) is ExitReason.TIME
    assert rule.due(Held(entered), entered + timedelta(minutes=60), None) is ExitReason.TIME
    assert rule.entry_blocked(entered, session) is None


# ------------------------------------------------------------------ session end


@pytest.mark.parametrize(
    ("day", "flatten_at"),
    [
        (date(2024, 11, 26), datetime(2024, 11, 26, 20, 55, tzinfo=UTC)),  # 15:55 New York
        (date(2024, 11, 29), datetime(2024, 11, 29, 17, 55, tzinfo=UTC)),  # half day: 12:55
    ],
)
def test_the_session_end_flattens_before_the_close_early_closes_included(
    day: date, flatten_at: datetime
) -> None:
    session = session_of(day)
    rule = SessionEnd(timedelta(minutes=5))
    assert session.is_early_close is (day == date(2024, 11, 29))
    assert rule.flatten_at(session) == flatten_at
    held = Held(flatten_at - timedelta(minutes=10))
    before = flatten_at - timedelta(minutes=1)
    assert rule.due(held, before, session) is None
    assert rule.due(held, flatten_at, session) is ExitReason.SESSION_END
    assert rule.due(Held(None), flatten_at, session) is ExitReason.SESSION_END  # entry working
    assert rule.due(held, flatten_at, None) is None  # no session known: nothing to flatten for
    assert rule.entry_blocked(before, session) is None
    assert rule.entry_blocked(flatten_at, session) == "too close to the session end"


# ------------------------------------------------------------------ the plan from the settings


def test_the_plan_asks_the_rules_in_today_s_order() -> None:
    plan = exit_plan(ExitRules())
    assert plan.resting == (AtrTarget(Decimal(5)),)
    assert plan.timed == (SessionEnd(timedelta(minutes=5)), TimeLimit(timedelta(minutes=60)))
    plan = exit_plan(
        ExitRules(
            target_atr_multiple=Decimal(3),
            max_hold_minutes=45,
            flatten_before_close_minutes=10,
            stop=StopMode.ATR,
            stop_atr_multiple=Decimal("1.5"),
        )
    )
    assert plan.resting == (AtrTarget(Decimal(3)), AtrStop(Decimal("1.5")))
    assert plan.timed == (SessionEnd(timedelta(minutes=10)), TimeLimit(timedelta(minutes=45)))
    assert exit_plan(ExitRules(stop=StopMode.SWEEP)).resting[1] == SweepStop()


def test_the_session_end_wins_when_both_are_due() -> None:
    session = session_of(date(2024, 11, 29))
    plan = exit_plan(ExitRules(max_hold_minutes=60))
    flatten_at = datetime(2024, 11, 29, 17, 55, tzinfo=UTC)
    held = Held(flatten_at - timedelta(minutes=90))  # held past its limit too
    due = [rule.due(held, flatten_at, session) for rule in plan.timed]
    assert due == [ExitReason.SESSION_END, ExitReason.TIME]  # the engine takes the first
