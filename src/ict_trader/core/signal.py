"""What a signal is, and what the engine asks of whatever finds them.

The engine trades signals; it does not care how they are found. `Detector` is the one thing it
needs of a detector (feed it a bar, get the bar's signal; the session of the last bar), so the
core depends on no detector: `signals/` (the ICT state machine) depends on the core, not the
other way round, and a replay of recorded signals (`SignalReplay`) is just another detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import Session


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"


@dataclass(frozen=True, slots=True)
class Signal:
    """A confirmed setup at the close of the bar stamped `time` (the bar's open, UTC).

    `atr` is the ATR after that bar's update (targets are multiples of it); `extreme` is the
    highest high (short) or lowest low (long) since the sweep, for an optional stop.
    `symbol` is the signal bar's (empty when the bars did not name one).
    """

    time: datetime
    direction: Direction
    close: float
    atr: float
    extreme: float
    mss_level: float
    symbol: str = ""


class Detector(Protocol):
    """Finds signals one bar at a time, never looking past the bar it is given."""

    @property
    def session(self) -> Session | None:
        """The session of the last bar seen."""
        ...

    def update(self, bar: Bar) -> Signal | None:
        """Advance by one closed bar; the signal it produced, if any."""
        ...


@runtime_checkable
class ForeseeingDetector(Detector, Protocol):
    """A detector that knows its signals ahead (a replay of signals detected earlier).

    The engine can then tell its shell which bars it does not need: while it is flat with
    nothing pending, only the next signal's bar matters (issue #13: no per-bar work while flat).
    """

    def next_signal_at(self, time: datetime) -> datetime | None:
        """The time of the first signal bar at or after `time`; None if there is none."""
        ...
