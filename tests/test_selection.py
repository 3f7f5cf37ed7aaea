"""Instrument selection: today an entry trades shares of the signal's own symbol."""

from __future__ import annotations

from datetime import UTC, datetime

from ict_trader.core.instruments import Instrument, InstrumentKind
from ict_trader.core.selection import Selection, SignalSymbol
from ict_trader.signals import Direction, Signal


def test_an_entry_trades_shares_of_the_signal_s_own_symbol() -> None:
    selection: Selection = SignalSymbol()
    moment = datetime(2024, 11, 26, 14, 35, tzinfo=UTC)
    for symbol in ("QQQ", "IWM"):
        signal = Signal(moment, Direction.SHORT, 100, 0.4, 101, 99, symbol)
        chosen = selection.instrument(signal)
        assert chosen == Instrument(symbol)
        assert (chosen.kind, chosen.multiplier) == (InstrumentKind.EQUITY, 1)
