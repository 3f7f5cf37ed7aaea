"""The session end: flatten N minutes before the close (the early close on half days), and
open nothing from then on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ict_trader.core.calendar import Session
from ict_trader.core.events import ExitReason
from ict_trader.core.exits.rule import Held


@dataclass(frozen=True, slots=True)
class SessionEnd:
    before_close: timedelta  # exits.flatten_before_close_minutes

    def flatten_at(self, session: Session) -> datetime:
        return session.close - self.before_close

    def due(self, trade: Held, now: datetime, session: Session | None) -> ExitReason | None:
        due_at = self.due_at(trade, session)
        return ExitReason.SESSION_END if due_at is not None and now >= due_at else None

    def due_at(self, trade: Held, session: Session | None) -> datetime | None:
        return None if session is None else self.flatten_at(session)

    def entry_blocked(self, now: datetime, session: Session) -> str | None:
        if now >= self.flatten_at(session):
            return "too close to the session end"
        return None
