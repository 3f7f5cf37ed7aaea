"""Exit rules, one file each; the engine asks them and keeps only the trade lifecycle.

`exit_plan` builds, from the `[exits]` settings, the rules in the order the engine asks them:
the resting orders placed once the entry fills (target, then the optional stop, in one OCO
group when both rest), and the market exits by time (the session end before the time limit:
the first one due names the exit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ict_trader.core.exits.rule import TICK, Held, PriceRule, TimeRule
from ict_trader.core.exits.session_end import SessionEnd
from ict_trader.core.exits.stop import AtrStop, StopMode, SweepStop, stop_rule
from ict_trader.core.exits.target import AtrTarget
from ict_trader.core.exits.time_limit import TimeLimit

if TYPE_CHECKING:  # strategy imports StopMode from here
    from ict_trader.core.strategy import ExitRules

__all__ = [
    "TICK",
    "AtrStop",
    "AtrTarget",
    "ExitPlan",
    "Held",
    "PriceRule",
    "SessionEnd",
    "StopMode",
    "SweepStop",
    "TimeLimit",
    "TimeRule",
    "exit_plan",
    "stop_rule",
]


@dataclass(frozen=True, slots=True)
class ExitPlan:
    resting: tuple[PriceRule, ...]  # priced at the entry fill, in this order
    timed: tuple[TimeRule, ...]  # asked in this order; the first due wins


def exit_plan(rules: ExitRules) -> ExitPlan:
    stop = stop_rule(rules.stop, rules.stop_atr_multiple)
    target = AtrTarget(rules.target_atr_multiple)
    return ExitPlan(
        resting=(target,) if stop is None else (target, stop),
        timed=(
            SessionEnd(timedelta(minutes=rules.flatten_before_close_minutes)),
            TimeLimit(timedelta(minutes=rules.max_hold_minutes)),
        ),
    )
