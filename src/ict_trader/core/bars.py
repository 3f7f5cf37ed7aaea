"""The one bar type every part of ict-trader passes around (files, streams, replay, engine)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Bar(NamedTuple):
    """A 1-minute OHLCV bar stamped with its *open* time (timezone-aware UTC).

    A NamedTuple rather than a dataclass: a year of bars is ~100k objects and the detector reads
    five fields of each, so cheap construction and attribute access matter on the hot path.
    """

    time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    # The instrument's symbol. Empty for bars of a file that does not say (one symbol per file):
    # the engine then reads them as its only symbol's; with several symbols every bar names its own.
    symbol: str = ""
