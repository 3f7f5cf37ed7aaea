"""The exits only an option trade has: its flatten time, its premium target and the entry
timeout's clock.

A same-day contract must never be held into Alpaca's cut-off (no new orders on it from 15:30
ET, liquidation from 15:45), so an option trade is flattened at `flatten_at` (15:20 by default)
and no option entry opens whose time limit would run past that moment: the time limit, not
the flatten, should be what closes a trade that goes nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from ict_trader.core.calendar import Session
from ict_trader.core.exits.rule import TICK
from ict_trader.core.exits.session_end import SessionEnd
from ict_trader.core.orders import Leg
from ict_trader.core.signal import Signal


@dataclass(frozen=True, slots=True)
class OptionFlatten(SessionEnd):
    """The session end at the option rules' span before the close, with a stricter entry
    rule: the whole time limit must fit before the flatten."""

    max_hold: timedelta  # exits.max_hold_minutes: an entry must fit before the flatten

    def entry_blocked(self, now: datetime, session: Session) -> str | None:
        flatten = self.flatten_at(session)
        if now + self.max_hold > flatten:
            return (
                f"the {int(self.max_hold.total_seconds() // 60)}-minute time limit would pass "
                f"the option flatten time ({self.before_close} before the close)"
            )
        return None


@dataclass(frozen=True, slots=True)
class PremiumTarget:
    """A resting limit sell at the entry premium + `percent` %: options take no stop or OCO at
    Alpaca, but a plain day limit rests like the shares' target."""

    percent: Decimal

    @property
    def leg(self) -> Leg:
        return Leg.TARGET

    def price(self, signal: Signal, entry: Decimal) -> Decimal:
        """Rounded up to the cent: never nearer than the rule says, and 2 decimals as Alpaca
        requires of option prices."""
        return (entry * (1 + self.percent / 100)).quantize(TICK, rounding=ROUND_CEILING)
