"""The take-profit: a limit order at the entry fill ± N x the signal's ATR."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from ict_trader.core.exits.rule import TICK
from ict_trader.core.orders import Leg
from ict_trader.core.signal import Direction, Signal


@dataclass(frozen=True, slots=True)
class AtrTarget:
    multiple: Decimal  # exits.target_atr_multiple

    @property
    def leg(self) -> Leg:
        return Leg.TARGET

    def price(self, signal: Signal, entry: Decimal) -> Decimal:
        """Rounded to the tick away from the entry, so it is never nearer than the rule says."""
        offset = self.multiple * Decimal(repr(signal.atr))
        if signal.direction is Direction.LONG:
            return (entry + offset).quantize(TICK, rounding=ROUND_CEILING)
        return (entry - offset).quantize(TICK, rounding=ROUND_FLOOR)
