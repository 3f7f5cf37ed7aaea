"""What the engine asks of an exit rule.

Two kinds, by when they act:
- a *price rule* names, once the entry has filled, the price of an order that rests at the
  broker until it fills (the target's limit, the stop's trigger);
- a *time rule* is asked, on every bar and tick while a trade is open, whether the trade is due
  to be closed at market now, and, before an entry, whether it may still open at all.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from ict_trader.core.calendar import Session
from ict_trader.core.events import ExitReason
from ict_trader.core.orders import Leg
from ict_trader.core.signal import Signal

TICK = Decimal("0.01")  # the price increment of US stocks at $1 and above


class Held(Protocol):
    """What a time rule needs of an open trade."""

    @property
    def entry_time(self) -> datetime | None: ...  # the first entry fill; None before it


class PriceRule(Protocol):
    @property
    def leg(self) -> Leg: ...  # the resting order's leg: TARGET (limit) or STOP (stop)

    def price(self, signal: Signal, entry: Decimal) -> Decimal | None:
        """The resting order's price for a trade of `signal` entered at `entry` (None: none)."""
        ...


class TimeRule(Protocol):
    def due(self, trade: Held, now: datetime, session: Session | None) -> ExitReason | None:
        """Why `trade` must be closed at market at `now`, or None while it may stay open."""
        ...

    def due_at(self, trade: Held, session: Session | None) -> datetime | None:
        """The first moment `due` answers for (None: never, as things stand): a time rule is
        due from a moment on, so the engine asks again only once that moment has come, not
        on every bar (it asks anew when the entry fills or the session changes)."""
        ...

    def entry_blocked(self, now: datetime, session: Session) -> str | None:
        """Why no entry may open at `now` in `session`, or None."""
        ...
