"""The one bar type every part of ict-trader passes around (files, streams, replay, engine)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
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


_last_priced: tuple[float, Decimal] = (0.0, Decimal("0.0"))


def price_of(value: float) -> Decimal:
    """A bar price as the exact decimal it was written as (a float's repr round-trips).

    The same bar close is converted several times a minute while a position is open (by the
    simulated broker for the equity, by the engine for its marks), so the last conversion is
    kept: for the very same float object, the same Decimal (one tuple, read at once, so
    threads never see half of a pair)."""
    global _last_priced  # noqa: PLW0603 - a one-entry cache of this function's own
    last = _last_priced
    if last[0] is value:
        return last[1]
    priced = Decimal(repr(value))
    _last_priced = (value, priced)
    return priced
