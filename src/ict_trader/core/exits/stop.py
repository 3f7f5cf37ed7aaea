"""The optional protective stop: none, N x ATR from the entry fill, or the sweep's extreme.

It rests beside the target in one OCO group, so whichever fills cancels the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from ict_trader.core.exits.rule import TICK
from ict_trader.core.orders import Leg
from ict_trader.core.signal import Direction, Signal


class StopMode(StrEnum):
    NONE = "none"
    SWEEP = "sweep"  # the signal's extreme (the sweep's high for a short, low for a long)
    ATR = "atr"  # entry fill -/+ stop_atr_multiple x ATR


@dataclass(frozen=True, slots=True)
class AtrStop:
    multiple: Decimal  # exits.stop_atr_multiple

    @property
    def leg(self) -> Leg:
        return Leg.STOP

    def price(self, signal: Signal, entry: Decimal) -> Decimal:
        sign = 1 if signal.direction is Direction.LONG else -1
        return _beyond(entry - sign * self.multiple * Decimal(repr(signal.atr)), signal.direction)


@dataclass(frozen=True, slots=True)
class SweepStop:
    @property
    def leg(self) -> Leg:
        return Leg.STOP

    def price(self, signal: Signal, entry: Decimal) -> Decimal:
        return _beyond(Decimal(repr(signal.extreme)), signal.direction)


def stop_rule(mode: StopMode, atr_multiple: Decimal) -> AtrStop | SweepStop | None:
    """The stop `exits.stop` asks for; None for no stop."""
    if mode is StopMode.NONE:
        return None
    if mode is StopMode.SWEEP:
        return SweepStop()
    return AtrStop(atr_multiple)


def _beyond(raw: Decimal, direction: Direction) -> Decimal:
    """Rounded to the tick away from the entry, so the stop is never tighter than the rule."""
    rounding = ROUND_FLOOR if direction is Direction.LONG else ROUND_CEILING
    return raw.quantize(TICK, rounding=rounding)
