"""What the store hands back on restart: enough to rebuild the engine and the simulated broker.

The ledger (orders by client order id, their fills, the trades they belong to) is the source
of truth for which positions ict-trader owns, so restarts rebuild state from it rather than
from memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ict_trader.core.events import TradeView
from ict_trader.core.orders import OrderRequest, OrderStatus
from ict_trader.core.signal import Signal


@dataclass(frozen=True, slots=True)
class OrderRecord:
    request: OrderRequest
    broker_order_id: str | None
    status: OrderStatus
    filled_qty: int


@dataclass(frozen=True, slots=True)
class FillRecord:
    execution_id: str
    client_order_id: str
    time: datetime
    qty: int
    price: Decimal
    commission: Decimal


@dataclass(frozen=True)
class Ledger:
    trades: list[TradeView] = field(default_factory=list)
    signals: dict[str, Signal] = field(default_factory=dict)
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)

    def unfinished_trades(self) -> list[TradeView]:
        return [t for t in self.trades if t.status in {"pending", "open", "exiting"}]

    def open_orders(self) -> list[OrderRecord]:
        return [o for o in self.orders if not o.status.is_final]
