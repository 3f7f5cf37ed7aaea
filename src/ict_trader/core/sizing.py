"""Sizing: how many shares an entry of a profile buys (or sells short).

Today's rule is the equity allocation: floor(equity x the profile's allocation / the signal
bar's close), then cut to the risk limits' size caps and the buying power (`risk.fit_entry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from ict_trader.core.risk import Exposure, RiskLimits, fit_entry
from ict_trader.core.strategy import StrategyProfile


def allocated_shares(
    equity: Decimal, allocation: Decimal, price: Decimal, multiplier: int = 1
) -> int:
    """floor(equity x allocation / (price x multiplier)): never round a position up past its
    allocation."""
    if price <= 0:
        return 0
    unit = price * multiplier if multiplier != 1 else price
    return int((equity * allocation / unit).to_integral_value(rounding=ROUND_DOWN))


@dataclass(frozen=True, slots=True)
class Size:
    """An entry's size: `qty` of the `wanted` shares, `cuts` saying why fewer; or `refused`."""

    wanted: int
    qty: int
    cuts: tuple[str, ...] = ()
    refused: str | None = None  # why no entry at all (then qty is 0)


@dataclass(frozen=True, slots=True)
class EquityAllocation:
    limits: RiskLimits

    def size(
        self,
        profile: StrategyProfile,
        price: Decimal,
        *,
        equity: Decimal,
        buying_power: Decimal | None,
        open_total: Exposure,
        open_in_symbol: Exposure,
        multiplier: int = 1,
        unit: str = "shares",
    ) -> Size:
        """Size an entry at `price` beside the open trades' exposure, in all and in its symbol."""
        wanted = allocated_shares(equity, profile.allocation, price, multiplier)
        if wanted == 0:
            return Size(
                0,
                0,
                refused=f"0 {unit}: equity {equity:.2f} x {profile.allocation} "
                f"is less than one {unit.rstrip('s')} at {price}"
                + (f" x {multiplier}" if multiplier != 1 else ""),
            )
        qty, cuts = fit_entry(
            wanted,
            price,
            equity=equity,
            buying_power=buying_power,
            open_shares=open_total.units,
            open_notional=open_total.notional,
            limits=self.limits,
            symbol_open=open_in_symbol,
            multiplier=multiplier,
        )
        if qty == 0:
            reason = f"size limits leave 0 of {wanted} {unit}: {', '.join(cuts)}"
            return Size(wanted, 0, tuple(cuts), refused=reason)
        return Size(wanted, qty, tuple(cuts))
