"""Option contract quotes as the engine sees them, and what a trade keeps of its contract.

The engine never prices an option nor reads a chain: it asks its shell for a contract
(`RequestContract`) and is answered with one quote (`ContractQuoted`), whoever made it — the
pricing model or a quote file in a backtest, Alpaca's snapshots live. `source` travels with every
quote and every trade, so a figure derived from a modelled premium can always say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class PremiumSource(StrEnum):
    """Where a premium came from; anything `model` is shown as modelled."""

    MODEL = "model"  # ict-trader's Black-Scholes model (backtest, replay, the emulator)
    FILE = "file"  # a user's quote file (real prices)
    BROKER = "broker"  # the broker's quotes (Alpaca's free `indicative` feed is itself a model)

    @property
    def modelled(self) -> bool:
        return self is PremiumSource.MODEL


@dataclass(frozen=True, slots=True)
class ContractQuote:
    """One contract's bid and ask at `time`, with the greeks the source gave (None: none)."""

    symbol: str  # OCC
    time: datetime
    bid: Decimal
    ask: Decimal
    source: PremiumSource
    delta: float | None = None
    iv: float | None = None

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class OptionDetails:
    """What an option trade keeps of its contract for reports, the dashboard and a restart.

    `underlying_entry` is the underlying's price the trade was decided at (the signal bar's
    close) and `underlying_target` the level whose crossing closes it when the profile's target
    is judged on the underlying (None with a premium target).
    """

    source: PremiumSource
    bid: Decimal
    ask: Decimal
    delta: float | None
    iv: float | None
    underlying_entry: Decimal
    underlying_target: Decimal | None = None
