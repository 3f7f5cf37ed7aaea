"""The time limit: close at market once a trade has been held for max_hold_minutes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ict_trader.core.calendar import Session
from ict_trader.core.events import ExitReason
from ict_trader.core.exits.rule import Held


@dataclass(frozen=True, slots=True)
class TimeLimit:
    max_hold: timedelta  # counted from the first entry fill

    def due(self, trade: Held, now: datetime, session: Session | None) -> ExitReason | None:
        due_at = self.due_at(trade, session)
        return ExitReason.TIME if due_at is not None and now >= due_at else None

    def due_at(self, trade: Held, session: Session | None) -> datetime | None:
        return None if trade.entry_time is None else trade.entry_time + self.max_hold

    def entry_blocked(self, now: datetime, session: Session) -> str | None:
        return None
