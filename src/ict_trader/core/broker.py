"""The broker protocol the shells drive; the engine itself never sees a broker.

Brokers report what happened as engine events, queued until the shell drains them with
`events()`: a simulated broker produces them synchronously, a live one from its streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from ict_trader.core.events import AccountUpdated, Event
from ict_trader.core.orders import OrderRequest, OrderStatus


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """The broker's current view of one order."""

    request: OrderRequest
    broker_order_id: str
    status: OrderStatus
    filled_qty: int
    filled_avg_price: Decimal | None
    submitted_at: datetime | None


class Broker(Protocol):
    def submit(self, order: OrderRequest) -> None:
        """Send an order; acceptance, rejection and fills arrive later as events."""

    def cancel(self, client_order_id: str) -> None:
        """Ask to cancel; a cancel of a finished order is a harmless no-op."""

    def events(self) -> list[Event]:
        """Events that happened since the last call, oldest first."""

    def account(self, now: datetime) -> AccountUpdated:
        """Equity, cash and buying power as of `now`."""

    def position(self, symbol: str) -> int:
        """Net shares held (negative when short)."""

    def order(self, client_order_id: str) -> BrokerOrder | None:
        """Look an order up by our client order id."""

    def open_orders(self) -> list[BrokerOrder]:
        """Orders that can still fill."""
