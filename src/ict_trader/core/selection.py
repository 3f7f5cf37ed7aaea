"""Instrument selection: what an entry on a signal trades.

Today it is the signal's own symbol — the one the detector watches. This is the seam where
another choice (an option on that symbol, say) plugs in without touching the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ict_trader.core.instruments import Instrument, equity
from ict_trader.core.signal import Signal


class Selection(Protocol):
    def instrument(self, signal: Signal) -> Instrument:
        """What an entry on `signal` trades."""
        ...


@dataclass(frozen=True, slots=True)
class SignalSymbol:
    """Shares of the symbol the signal was found on."""

    def instrument(self, signal: Signal) -> Instrument:
        return equity(signal.symbol)
