"""What happens to an option position that is still held when its expiry day's session closes.

Alpaca: "Options that expire in-the-money by $.01 are subject to automatic exercise" — a call
holder "will be delivered 100 shares of the underlying stock" per contract at the strike, "by
6:00 PM ET" (support: what-is-option-expiration); a long put is exercised only if the account
has the long shares to deliver, otherwise "a do not exercise will be placed on the put"
(support: what-happens-when-my-long-call-or-put-option-position-expires). Whatever is not
exercised expires worthless. The emulator settles at the close, against the underlying's last
regular-hours price (docs/options.md: the model's expiry is the 16:00 close too; QQQ's
options trade until 16:15, but Alpaca has liquidated expiring positions from 15:45 and refuses
new orders from 15:30 anyway).

Each settlement is a non-trade account activity as Alpaca documents them
(docs.alpaca.markets "non-trade activities for option events"): `OPEXP` (expiry) or `OPEXC`
(exercise) for the contracts, `qty` negative (they leave the account), `net_amount` "0", and for
an exercise an `OPTRD` for the shares that change hands at the strike, `net_amount` the cash
(negative for a purchase). `date` is the expiry day, written YYYY-MM-DD as in that page's and the
spec's own examples (the spec types it `date-time`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ict_trader.core.instruments import CENT, OPTION_MULTIPLIER, Instrument, OptionRight


@dataclass(frozen=True)
class Settlement:
    """How one expiring long position ends: exercised into shares, or expired."""

    exercised: bool
    shares: int  # signed shares of the underlying the account receives (+) or delivers (-)
    strike: Decimal

    @property
    def cash(self) -> Decimal:
        """The cash the exercise moves: the strike times the shares, paid or received."""
        return -self.shares * self.strike


def settle(
    contract: Instrument, contracts: int, close: Decimal, shares_available: int
) -> Settlement:
    """The settlement of `contracts` long contracts with the underlying closing at `close`;
    `shares_available` are the underlying's long shares not held by orders (a put delivers
    them)."""
    assert contract.strike is not None
    strike = contract.strike
    call = contract.right is OptionRight.CALL
    in_the_money = (close - strike if call else strike - close) >= CENT
    shares = contracts * OPTION_MULTIPLIER
    if contracts <= 0 or not in_the_money:
        return Settlement(False, 0, strike)
    if call:
        return Settlement(True, shares, strike)
    if shares_available >= shares:
        return Settlement(True, -shares, strike)
    return Settlement(False, 0, strike)  # no shares to deliver: do not exercise


def activities(
    contract: Instrument,
    contracts: int,
    settlement: Settlement,
    *,
    moment: datetime,
    day: date,
    ids: list[str],
) -> list[dict[str, Any]]:
    """The account activities of one settlement, with the ids given (two for an exercise)."""
    created = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    common = {"date": day.isoformat(), "created_at": created, "status": "executed"}
    common["currency"] = "USD"
    option_record = {
        "id": ids[0],
        "activity_type": "OPEXC" if settlement.exercised else "OPEXP",
        **common,
        "net_amount": "0",
        "description": "Option Exercise" if settlement.exercised else "Option Expiry",
        "symbol": contract.symbol,
        "qty": str(-contracts),
    }
    if not settlement.exercised:
        return [option_record]
    trade = {
        "id": ids[1],
        "activity_type": "OPTRD",
        **common,
        "net_amount": _amount(settlement.cash),
        "description": "Option Trade",
        "symbol": contract.root,
        "qty": str(settlement.shares),
        "price": _amount(settlement.strike),
    }
    return [option_record, trade]


def _amount(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
