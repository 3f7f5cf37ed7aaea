"""The `[options]` settings of a backtest or replay: where premiums come from and how the
modelled market behaves.

They live here rather than in `config.py` so the desk that applies them (`desk.py`) needs
nothing above the options package; `config.py` reads the TOML table into them and checks every
value (`ranges.OPTIONS`), naming the key. `describe()` is what a run records, so every result
can say whether its premiums are modelled or real.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from ict_trader.core.contracts import PremiumSource


class Pricing(StrEnum):
    MODEL = "model"  # Black-Scholes-Merton on the underlying's bars, with a modelled spread
    FILE = "file"  # a user's quote file of real bids and asks


@dataclass(frozen=True, slots=True)
class OptionsSettings:
    """`volatility` None means the underlying's realized volatility over the last
    `realized_window_minutes` returns; a number is an annualised volatility on the pricing
    model's trading-minute clock (docs/options.md). `slippage` is dollars per share added to
    a market buy's ask and taken off a market sell's bid; `commission_per_contract` is charged
    per contract filled (Alpaca charges no option commission, but regulatory fees exist:
    set them here, they default to 0)."""

    pricing: Pricing = Pricing.MODEL
    quotes: Path | None = None
    volatility: Decimal | None = None
    realized_window_minutes: int = 390
    spread_absolute: Decimal = Decimal("0.02")
    spread_relative: Decimal = Decimal("0.01")
    slippage: Decimal = Decimal(0)
    commission_per_contract: Decimal = Decimal(0)
    rate: Decimal = Decimal(0)
    dividend: Decimal = Decimal(0)
    strike_step: Decimal = Decimal(1)
    strike_count: int = 10
    staleness_minutes: int = 5

    @property
    def source(self) -> PremiumSource:
        return PremiumSource.FILE if self.pricing is Pricing.FILE else PremiumSource.MODEL

    def description(self) -> str:
        """One line saying where premiums come from, for reports and run records."""
        if self.pricing is Pricing.FILE:
            name = self.quotes.name if self.quotes is not None else "(none given)"
            return (
                f"quote file {name}: real bid/ask, a quote in force for "
                f"{self.staleness_minutes} minutes; deltas implied by the model"
            )
        volatility = (
            f"realized volatility of the underlying over {self.realized_window_minutes} minutes"
            if self.volatility is None
            else f"volatility {self.volatility}"
        )
        return (
            f"model-priced: Black-Scholes-Merton, {volatility}, spread the larger of "
            f"${self.spread_absolute} and {self.spread_relative * 100:g} % of the price, "
            f"${self.strike_step} strikes"
        )

    def describe(self) -> dict[str, Any]:
        """Plain values for run records: the source, the line above and every setting."""
        return {
            "premium_source": self.source.value,
            "pricing": self.description(),
            "settings": {
                "pricing": self.pricing.value,
                "quotes": str(self.quotes) if self.quotes is not None else None,
                "volatility": "realized" if self.volatility is None else str(self.volatility),
                "realized_window_minutes": self.realized_window_minutes,
                "spread_absolute": str(self.spread_absolute),
                "spread_relative": str(self.spread_relative),
                "slippage": str(self.slippage),
                "commission_per_contract": str(self.commission_per_contract),
                "rate": str(self.rate),
                "dividend": str(self.dividend),
                "strike_step": str(self.strike_step),
                "strike_count": self.strike_count,
                "staleness_minutes": self.staleness_minutes,
            },
        }
