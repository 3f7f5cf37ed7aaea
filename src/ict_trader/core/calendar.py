"""NYSE trading sessions (regular hours, holidays, early closes) from `exchange_calendars`.

Every session rule in ict-trader (signal windows, flattening before the close, "is the previous
trading day in the data") needs the same three facts about a day: when it opens, when it closes and
which trading day came before it. This module turns the exchange calendar into a small immutable
lookup so the hot paths never touch pandas.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
_EXCHANGE = "XNYS"
# exchange_calendars builds about 20 years back and one year ahead by default; we ask for the
# range the data needs, padded so "previous session" of the first day is known too.
_PAD = timedelta(days=10)


@dataclass(frozen=True, slots=True)
class Session:
    """One NYSE regular-hours session; `open`/`close` are timezone-aware UTC."""

    day: date
    open: datetime
    close: datetime
    previous_day: date | None

    @property
    def is_early_close(self) -> bool:
        """True on half days (13:00 New York close)."""
        return self.close - self.open < timedelta(hours=6, minutes=30)

    def contains(self, moment: datetime) -> bool:
        """Whether a bar stamped `moment` (its open time) belongs to this session."""
        return self.open <= moment < self.close


class NyseCalendar:
    """Sessions of the NYSE between two dates, looked up by New York date or by a UTC moment."""

    def __init__(self, start: date, end: date) -> None:
        if end < start:
            raise ValueError(f"calendar end {end} is before start {start}")
        self.start = start
        self.end = end
        self._sessions = dict(_build_sessions(start, end))  # a copy: `override` changes it

    @classmethod
    def covering(cls, first: datetime, last: datetime) -> NyseCalendar:
        """A calendar wide enough for data from `first` to `last` (both UTC moments)."""
        return cls(
            (first.astimezone(NEW_YORK) - _PAD).date(),
            (last.astimezone(NEW_YORK) + _PAD).date(),
        )

    def session_on(self, day: date) -> Session | None:
        """The session of New York date `day`, or None on weekends and holidays."""
        self._check_range(day)
        return self._sessions.get(day)

    def session_at(self, moment: datetime) -> Session | None:
        """The session a bar stamped `moment` belongs to, or None outside regular hours."""
        session = self.session_on(moment.astimezone(NEW_YORK).date())
        if session is None or not session.contains(moment):
            return None
        return session

    def override(self, day: date, open_: datetime, close: datetime) -> None:
        """Replace a day's hours with the broker's: an unscheduled closure or early close that
        this installation of exchange_calendars does not know yet."""
        self._check_range(day)
        current = self._sessions.get(day)
        previous = (
            current.previous_day
            if current
            else max((d for d in self._sessions if d < day), default=None)
        )
        self._sessions[day] = Session(day, open_.astimezone(UTC), close.astimezone(UTC), previous)

    def extend_to(self, last: date) -> None:
        """Cover sessions up to `last` too: a bot that runs for weeks outlives the range it
        started with. Days already known (and any broker override of them) are kept."""
        if last <= self.end:
            return
        for day, session in _build_sessions(self.start, last).items():
            self._sessions.setdefault(day, session)
        self.end = last

    def sessions(self) -> list[Session]:
        """All sessions of the calendar's range, oldest first."""
        return list(self._sessions.values())

    def _check_range(self, day: date) -> None:
        if not self.start <= day <= self.end:
            raise ValueError(
                f"{day} is outside the loaded NYSE calendar ({self.start} .. {self.end})"
            )


@lru_cache(maxsize=8)
def _build_sessions(start: date, end: date) -> dict[date, Session]:
    # Start earlier than asked so the first requested session knows its previous trading day.
    padded_start = start - _PAD
    with warnings.catch_warnings():
        # exchange_calendars still uses pandas APIs that pandas 3 deprecates; not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        calendar = xcals.get_calendar(
            _EXCHANGE, start=padded_start.isoformat(), end=end.isoformat()
        )
    schedule = calendar.schedule
    days: list[date] = [ts.date() for ts in schedule.index]
    opens = _to_utc_datetimes(schedule["open"])
    closes = _to_utc_datetimes(schedule["close"])
    sessions: dict[date, Session] = {}
    previous: date | None = None
    for day, open_, close in zip(days, opens, closes, strict=True):
        if day >= start:
            sessions[day] = Session(day=day, open=open_, close=close, previous_day=previous)
        previous = day
    return sessions


def _to_utc_datetimes(column: pd.Series) -> list[datetime]:
    return [ts.to_pydatetime().astimezone(UTC) for ts in column]
