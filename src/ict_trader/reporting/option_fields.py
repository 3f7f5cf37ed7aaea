"""An option trade's contract and premiums as JSON fields, for `status`, the dashboard's API and
the backtest JSON alike.

A trade's `symbol` is the OCC symbol and its prices are premiums per share; a reader of the JSON
should not have to parse the one or multiply the other. So every view adds the same `option`
object: the contract spelled out, the quote and greeks it was bought at, the premium paid and
received in dollars (per contract and in total, x 100), and `modelled`, true when the premiums
came from the pricing model. A share trade has no such object (the views that list both write
`null`), so share-only output stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ict_trader.core.events import TradeView
from ict_trader.core.instruments import instrument_of
from ict_trader.notify.option_words import MODEL_PRICED, contract_name

CENT = Decimal("0.01")


def money_text(value: Decimal) -> str:
    """Dollars as the dashboard and `status` write them: a decimal string to the cent."""
    return str(value.quantize(CENT))


def option_fields(
    trade: TradeView,
    qty: int | None = None,
    number: Callable[[Decimal], Any] = money_text,
) -> dict[str, Any] | None:
    """The `option` object of `trade` (None for a share trade).

    `qty`: the contracts the premiums are counted on (default: every contract the trade
    bought; `status` passes those still held). `number`: how a price or a sum of dollars is
    written (decimal strings to the cent by default; the backtest JSON passes `float`).
    """
    option = trade.option
    instrument = instrument_of(trade.symbol)
    if option is None or not instrument.is_option:
        return None
    assert instrument.expiry is not None and instrument.right is not None
    assert instrument.strike is not None
    count = trade.qty if qty is None else qty
    each = instrument.multiplier

    def paid(price: Decimal | None, contracts: int) -> Any:
        return None if price is None else number(price * contracts * each)

    return {
        "contract": contract_name(trade.symbol),
        "occ_symbol": trade.symbol,
        "underlying": instrument.root,
        "expiry": instrument.expiry.isoformat(),
        "right": instrument.right.value,
        "strike": format(instrument.strike, "f"),
        "multiplier": each,
        "contracts": count,
        "source": option.source.value,
        "modelled": option.source.modelled,
        "label": MODEL_PRICED if option.source.modelled else None,
        "bid": str(option.bid),
        "ask": str(option.ask),
        "delta": option.delta,
        "iv": option.iv,
        "underlying_entry": str(option.underlying_entry),
        "underlying_target": None
        if option.underlying_target is None
        else str(option.underlying_target),
        "premium_paid_per_contract": paid(trade.entry_price, 1),
        "premium_paid": paid(trade.entry_price, count),
        "premium_received_per_contract": paid(trade.exit_price, 1),
        "premium_received": paid(trade.exit_price, count),
    }
