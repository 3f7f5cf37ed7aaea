"""The words for an option trade's contract and premiums, shared by every view of a trade.

A notification, the dashboard, `status` and the backtest reports all name a contract the same
way (`QQQ 2024-07-29 97 put (QQQ240729P00097000)`: the OCC symbol alone is hard to read, the
readable name alone cannot be pasted into Alpaca), count contracts rather than shares, turn a
premium per share into dollars per contract and in total (times the multiplier) and mark every
figure that comes from a modelled premium with one label. One wording, so a user learns it once
and a modelled P&L is never shown without saying so. Shares keep the words they always had:
nothing here changes a share trade's text.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ict_trader.core.contracts import OptionDetails
from ict_trader.core.events import TradeView
from ict_trader.core.instruments import instrument_of

MODEL_PRICED = "model-priced"  # the label of any figure derived from a modelled premium
CENT = Decimal("0.01")


def is_option(symbol: str) -> bool:
    return instrument_of(symbol).is_option


def underlying(symbol: str) -> str:
    """The symbol an option is on (a share's own ticker)."""
    return instrument_of(symbol).root


def contract_name(symbol: str) -> str:
    """`QQQ 2024-07-29 97 put` for an OCC symbol; a share's ticker as it is."""
    instrument = instrument_of(symbol)
    if not instrument.is_option:
        return symbol
    assert instrument.expiry is not None and instrument.strike is not None
    assert instrument.right is not None
    strike = format(instrument.strike, "f")  # 97, 97.5 (never 1E+2)
    return f"{instrument.root} {instrument.expiry.isoformat()} {strike} {instrument.right.value}"


def contract_label(symbol: str) -> str:
    """The readable name with the OCC symbol, for text: `QQQ 2024-07-29 97 put (QQQ2407…)`."""
    name = contract_name(symbol)
    return symbol if name == symbol else f"{name} ({symbol})"


def contracts_text(qty: int) -> str:
    return f"{qty} contract" if qty == 1 else f"{qty} contracts"


def premium_dollars(price: Decimal, qty: int, symbol: str) -> Decimal:
    """What `qty` contracts cost or fetched at `price` per share: price x qty x multiplier."""
    return price * qty * instrument_of(symbol).multiplier


def dollars(value: Decimal) -> str:
    return f"${value.quantize(CENT):,}"


def premium_text(price: Decimal, qty: int, symbol: str) -> str:
    """`$52.00 a contract, $520.00 for 10` from a premium of 0.52 per share."""
    each = premium_dollars(price, 1, symbol)
    return f"{dollars(each)} a contract, {dollars(premium_dollars(price, qty, symbol))} for {qty}"


def greeks_text(option: OptionDetails) -> str:
    """The greeks the quote gave at entry: `delta -0.42, IV 20.0%` (`?` where it gave none)."""
    delta = "?" if option.delta is None else f"{option.delta:+.2f}"
    iv = "?" if option.iv is None else f"{option.iv:.1%}"
    return f"delta {delta}, IV {iv}"


def modelled(trade: TradeView) -> bool:
    """Whether the trade's premiums came from the pricing model (shown as model-priced)."""
    return trade.option is not None and trade.option.source.modelled


def any_modelled(trades: Iterable[TradeView]) -> bool:
    return any(modelled(trade) for trade in trades)
