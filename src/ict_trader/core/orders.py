"""Orders as the engine and every broker see them, and deterministic client order ids.

Client order ids are derived from (symbol, signal, profile, leg, attempt) so that a replayed or
restarted run computes the *same* id for the same intent; the broker refuses a reused id (Alpaca
never accepts one twice), which is what makes a duplicate order impossible rather than unlikely.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

MAX_CLIENT_ORDER_ID = 48  # Alpaca's limit


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Leg(StrEnum):
    """Why an order exists within a trade."""

    ENTRY = "entry"
    TARGET = "target"
    STOP = "stop"
    EXIT = "exit"  # market exit: time limit, session end, kill switch


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order the engine wants placed. Prices are Decimal cents-exact for the broker."""

    client_order_id: str
    symbol: str
    side: Side
    qty: int
    type: OrderType
    trade_id: str
    profile: str
    leg: Leg
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = "day"
    # Orders of one trade that cancel each other when one fills (target and stop).
    oco_group: str | None = None
    created_at: datetime | None = None
    # Options only: Alpaca takes `buy_to_open` / `sell_to_close` beside the side.
    position_intent: str | None = None


# The longest leg suffix an id reserves room for: "-target999", "-exit99999".
_LEG_RESERVE = len("-exit99999")


def trade_id(symbol: str, signal_time: datetime, direction: str, profile: str) -> str:
    """`ict-QQQ-202401041630s-conservative`: one trade of one profile on one symbol's signal.

    Unique across instruments because a symbol has at most one signal a minute and a profile at
    most one trade a signal. Profile names too long for Alpaca's 48 characters are shortened with
    a hash, once, so every leg of the trade shares the same stem.
    """
    stamp = f"{signal_time:%Y%m%d%H%M}{direction[:1]}"
    head = f"ict-{symbol}-{stamp}-"
    budget = MAX_CLIENT_ORDER_ID - len(head) - _LEG_RESERVE
    name = profile if len(profile) <= budget else _shorten(profile, budget)
    return head + name


def client_order_id(trade: str, leg: Leg, attempt: int = 1) -> str:
    """`<trade id>-entry`, `-target`, `-stop`, `-exit`; a re-sent exit is `-exit2`, `-exit3`…

    The attempt number only appears for a re-sent order (a broker never accepts an id twice,
    not even after a rejection), so the first attempt keeps the readable form.
    """
    tail = leg.value if attempt == 1 else f"{leg.value}{attempt}"
    result = f"{trade}-{tail}"
    assert len(result) <= MAX_CLIENT_ORDER_ID, result
    return result


def _shorten(name: str, budget: int) -> str:
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"{name[: max(budget - 7, 1)]}~{digest}"
