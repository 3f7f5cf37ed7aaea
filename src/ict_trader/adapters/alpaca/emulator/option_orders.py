"""What POST /v2/orders accepts for an option contract, and how it refuses the rest.

The rules (sources in /work/shared research notes, summarised in docs/options.md "The emulator's
options"): a single-leg option order is `simple` (or no class), `market` or `limit`,
`time_in_force` `day`, a whole number of contracts, no `notional`, no extended hours, a limit
price of at most two decimals; `position_intent` (`buy_to_open`, `buy_to_close`,
`sell_to_open`, `sell_to_close`) is accepted and echoed, and inferred from the position when
absent (a buy opens unless a short position is open, a sell closes a long position). Buying to
open needs options trading level 2 ("Level 2 - Buy a call, Buy a put"). Alpaca lets no account
sell a single option uncovered: selling a call to open needs the shares to cover it (Alpaca's
answer when they are missing is quoted in Alpaca-API#271), selling a put to open the cash to
secure it; covered calls and cash-secured puts (level 1) are beyond the emulator and refused as
not emulated. On a contract's expiry day new
orders are rejected from the cut-off (15:30 ET for broad-based ETFs, 15:15 otherwise).

Statuses and messages: where a refusal's wording is on record it is used verbatim — "limit price
must be limited to 2 decimal places" (IgorGanapolsky/trading#705), "order_time_in_force provided
not supported for options trading" (#1915), the covered-call message (Alpaca-API#271); the rest
follow the same pattern and are the emulator's guesses, as are the statuses: 422 42210000 for
an order Alpaca's rules refuse, 403 40310000 for what the account may not do. Alpaca's spec
describes stop and stop-limit orders and GTC as accepted for options (`OrderType`,
`TimeInForce`), which its options pages and users' reports contradict; the emulator follows the
pages (`market`/`limit`, `day`).

`mleg` (multi-leg) orders are valid at Alpaca but not emulated: 422 40010001 says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ict_trader.adapters.alpaca.emulator.errors import ApiError
from ict_trader.adapters.alpaca.emulator.validation import body_decimal
from ict_trader.core.instruments import OPTION_MULTIPLIER, Instrument, OptionRight

INTENTS = frozenset({"buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"})
_CENT = Decimal("0.01")
LONG_LEVEL = 2  # buy a call, buy a put


@dataclass(frozen=True)
class OptionOrder:
    """A valid single-leg option order's terms."""

    side: str
    type: str
    qty: int
    limit_price: Decimal | None
    time_in_force: str
    position_intent: str


def refused(message: str) -> ApiError:
    """An order Alpaca's option rules refuse (422 42210000)."""
    return ApiError(422, 42210000, message)


def forbidden(message: str, **extra: Any) -> ApiError:
    """An order this account may not place (403 40310000)."""
    return ApiError(403, 40310000, message, **extra)


def check(
    payload: dict[str, Any],
    contract: Instrument,
    *,
    position: int,
    shares_available: int,
    cash_available: Decimal,
    level: int,
    cutoff: datetime,
    now: datetime,
) -> OptionOrder:
    """The order's terms, or the ApiError Alpaca would answer. `position` is the account's
    signed position in `contract`, `shares_available` the underlying's shares not held by open
    orders (to cover a call), `cash_available` the options buying power (to secure a put),
    `cutoff` the moment new orders for the contract stop."""
    order_class = str(payload.get("order_class") or "simple")
    if order_class == "mleg":
        raise ApiError(422, 40010001, "mleg (multi-leg) orders are not emulated")
    if order_class != "simple":
        raise refused(f"order_class {order_class} provided not supported for options trading")
    kind = str(payload.get("type", ""))
    if kind in {"stop", "stop_limit", "trailing_stop"}:
        raise refused(f"order_type {kind} provided not supported for options trading")
    if kind not in {"market", "limit"}:
        raise ApiError(422, 40010001, f"invalid order type {kind!r}")
    tif = str(payload.get("time_in_force", "day"))  # DELETE /v2/positions sends none
    if tif != "day":
        raise refused("order_time_in_force provided not supported for options trading")
    if payload.get("extended_hours"):
        raise refused("extended hours orders are not supported for options trading")
    if payload.get("notional") is not None:
        raise refused("notional orders are not supported for options trading")
    qty = body_decimal(payload.get("qty"), "qty")
    if qty is None:
        raise ApiError(422, 40010001, "qty is required")
    if qty <= 0:
        raise ApiError(422, 40010001, "qty must be > 0")
    if qty != qty.to_integral_value():
        raise refused("fractional orders are not supported for options trading")
    limit = body_decimal(payload.get("limit_price"), "limit_price")
    if kind == "market" and (limit is not None or payload.get("stop_price") is not None):
        raise ApiError(422, 40010001, "market orders require no stop or limit price")
    if kind == "limit":
        if limit is None or limit <= 0:
            raise ApiError(422, 40010001, "limit price must be > 0")
        if limit != limit.quantize(_CENT):
            raise refused("limit price must be limited to 2 decimal places")
    side = str(payload.get("side", ""))
    if side not in {"buy", "sell"}:
        raise ApiError(422, 40010001, f"invalid side {side!r}")
    intent = _intent(payload.get("position_intent"), side, position)
    contracts = int(qty)
    if intent == "buy_to_open" and level < LONG_LEVEL:
        raise forbidden(
            f"options trading level {level} does not permit buying options "
            f"(level {LONG_LEVEL} required)"
        )
    if intent == "sell_to_open":
        _selling_to_open(contract, contracts, level, shares_available, cash_available)
    if (intent == "sell_to_close" and position <= 0) or (
        intent == "buy_to_close" and position >= 0
    ):
        raise forbidden(
            f"insufficient qty available for order (requested: {contracts}, available: 0)",
            available="0",
            existing_qty=str(abs(position)),
            held_for_orders="0",
            symbol=contract.symbol,
        )
    if now >= cutoff:
        raise refused(
            f"options orders for {contract.symbol} are not accepted after "
            "the expiration day's cut-off"
        )
    return OptionOrder(side, kind, contracts, limit, tif, intent)


def _intent(raw: Any, side: str, position: int) -> str:
    """The order's position intent: as sent (it must agree with `side`), or inferred."""
    if raw is None or raw == "":
        if side == "buy":
            return "buy_to_close" if position < 0 else "buy_to_open"
        return "sell_to_close" if position > 0 else "sell_to_open"
    intent = str(raw)
    if intent not in INTENTS:
        raise ApiError(422, 40010001, f"invalid position_intent {intent!r}")
    if not intent.startswith(side):
        raise refused(f"position_intent {intent} does not match side {side}")
    return intent


def _selling_to_open(
    contract: Instrument, contracts: int, level: int, shares: int, cash: Decimal
) -> None:
    """Selling to open always ends in a refusal. Alpaca allows no uncovered single-leg short at
    any level: level 1 permits a covered call (the shares on hand) or a cash-secured put (the
    strike's worth in options buying power). A call short of its shares gets Alpaca's answer
    (Alpaca-API#271), a put short of its cash the same answer's pattern; a covered one is
    beyond the emulator (a bot that buys calls and puts never sells to open)."""
    if level < 1:
        raise forbidden(f"options trading level {level} does not permit selling options")
    assert contract.strike is not None
    required = contracts * OPTION_MULTIPLIER
    if contract.right is OptionRight.CALL and shares < required:
        raise forbidden(
            "insufficient underlying qty available for covered call "
            f"(required: {required}, available: {max(shares, 0)})"
        )
    secured = contract.strike * required
    if contract.right is OptionRight.PUT and cash < secured:
        raise forbidden(
            "insufficient options buying power for cash-secured put "
            f"(required: {secured}, available: {max(cash, Decimal(0))})"
        )
    raise ApiError(
        422, 40010001, "selling options to open (covered calls, cash-secured puts) is not emulated"
    )
