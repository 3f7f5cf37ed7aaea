"""A chart axis of market minutes: nights, weekends, holidays and gaps in the data take no room.

On a wall-clock axis an equity curve draws a flat line across every night and, for a file that
holds separate stretches of sessions (months from different years), across months or years, with
the trading squeezed into slivers. Plotly's date-axis "rangebreaks" would need one break per
missing weekday, and with a few hundred of them it stops drawing altogether. So the report plots
each moment at its position in market time — minutes of regular hours since the first session's
open — and labels the axis with dates.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta

from ict_trader.calendar import NEW_YORK, Session

_SHORT_RUN = 3  # sessions: up to this many, ticks are hours; beyond, they are dates


class MarketAxis:
    """Positions (in market minutes) of moments within `sessions`, oldest session first."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.sessions = list(sessions)
        self._opens = [s.open for s in self.sessions]
        self._starts: list[float] = []
        total = 0.0
        for session in self.sessions:
            self._starts.append(total)
            total += _minutes(session.close - session.open)
        self.length = total

    def position(self, moment: datetime) -> float:
        """Minutes of regular hours between the first open and `moment`; a moment outside
        every session sits at the end of the session before it (where nothing changed)."""
        index = bisect_right(self._opens, moment) - 1
        if index < 0:
            return 0.0
        session = self.sessions[index]
        inside = min(_minutes(moment - session.open), _minutes(session.close - session.open))
        return self._starts[index] + inside

    def ticks(self, most: int = 12) -> tuple[list[float], list[str]]:
        """At most `most` labelled ticks: hours for a short run, session dates otherwise (with
        the year on the first and wherever it changes)."""
        if not self.sessions:
            return [], []
        if len(self.sessions) <= _SHORT_RUN:
            return self._hour_ticks(most)
        step = max(1, math.ceil(len(self.sessions) / most))
        values: list[float] = []
        labels: list[str] = []
        year = None
        for index in range(0, len(self.sessions), step):
            day = self.sessions[index].day
            values.append(self._starts[index])
            labels.append(f"{day:%b %d}" if day.year == year else f"{day:%b %d}<br>{day:%Y}")
            year = day.year
        return values, labels

    def gaps(self) -> list[float]:
        """Where the data skips at least one trading day: the start of the session after it."""
        return [
            self._starts[index]
            for index in range(1, len(self.sessions))
            if self.sessions[index].previous_day != self.sessions[index - 1].day
        ]

    def _hour_ticks(self, most: int) -> tuple[list[float], list[str]]:
        values: list[float] = []
        labels: list[str] = []
        for index, session in enumerate(self.sessions):
            opened = session.open.astimezone(NEW_YORK)
            values.append(self._starts[index])
            labels.append(f"{opened:%H:%M}<br>{opened:%b %d}")
            minute = 60 - opened.minute  # the first full hour after the open
            while minute < _minutes(session.close - session.open):
                values.append(self._starts[index] + minute)
                hour = opened.hour + (opened.minute + minute) // 60
                labels.append(f"{hour:02d}:00")
                minute += 60
        step = max(1, math.ceil(len(values) / most))
        return values[::step], labels[::step]


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60
