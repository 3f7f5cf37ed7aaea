"""Instrument selection: today an entry trades the signal's own symbol."""

from __future__ import annotations

from datetime import UTC, datetime

from ict_trader.core.selection import Selection, SignalSymbol
from ict_trader.signals import Direction, Signal


def test_an_entry_trades_the_signal_s_own_symbol() -> None:
    selection: Selection = SignalSymbol("QQQ")
    signal = Signal(datetime(2024, 11, 26, 14, 35, tzinfo=UTC), Direction.SHORT, 100, 0.4, 101, 99)
    assert selection.instrument(signal) == "QQQ"
