"""The broker protocols the shells drive; the engine itself never sees a broker.

Brokers report what happened as engine events, queued until the shell drains them with
`events()`: a simulated broker produces them synchronously, a live one from its streams.
`Broker` is what every shell needs; `SimulatedMarket` adds what a simulation shell drives a
broker with (bars), `StreamingBroker` what the live shell needs of a broker whose order updates
arrive on a stream, with polling as the fallback. The shells are typed with these, so a broker
that does not do all of it is refused by the type checker, not found out in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from ict_trader.core.bars import Bar
from ict_trader.core.contracts import ContractQuote
from ict_trader.core.events import (
    AccountUpdated,
    ContractQuoted,
    ContractUnavailable,
    Event,
    RequestContract,
)
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
        """Net units of `symbol` held (negative when short)."""

    def positions(self) -> dict[str, int]:
        """Every position held, by symbol (whoever opened it)."""

    def order(self, client_order_id: str) -> BrokerOrder | None:
        """Look an order up by our client order id."""

    def open_orders(self) -> list[BrokerOrder]:
        """Orders that can still fill."""


class ContractDesk(Protocol):
    """Where a shell gets option contracts and their quotes: the pricing model or a quote
    file in a simulation, the broker's option chain live."""

    def quote_contract(self, request: RequestContract) -> ContractQuoted | ContractUnavailable:
        """The contract `request`'s strike rule picks among the day's chain, quoted at
        `request.time`; or why there is none."""

    def quote(self, symbol: str, at: datetime) -> ContractQuote | None:
        """`symbol`'s quote at `at` (None: no quote then)."""


class SimulatedDesk(ContractDesk, Protocol):
    """A desk a simulation feeds with the underlying's bars: the model prices contracts from
    the underlying's price and volatility, a quote file needs the price for its deltas."""

    def see_open(self, bar: Bar, symbol: str) -> None:
        """`symbol`'s minute `bar` opened: its price at `bar.time` is the open."""

    def see_close(self, bar: Bar, symbol: str) -> None:
        """`bar` closed: `symbol`'s price a minute after `bar.time` is the close."""


T = TypeVar("T")


class SimulatedMarket(Broker, Protocol):
    """A broker that trades against bars: the simulation shell shows it each bar's open and
    range before the engine sees the bar's close."""

    idle: bool  # nothing working and nothing held: a bar needs no broker stage

    def open_bar(self, bar: Bar, symbol: str) -> bool:
        """The bar opened (queued market orders fill); whether there are events to drain."""

    def close_bar(self, bar: Bar, symbol: str) -> bool:
        """The bar's range is known (resting orders fill); whether there are events to drain."""

    def use_quotes(self, desk: ContractDesk) -> None:
        """Fill option orders and mark option positions at `desk`'s quotes (bars carry none)."""

    def contracts_held(self) -> list[str]:
        """The option contracts held (empty without any: cheap, asked every minute)."""

    def equity(self) -> Decimal:
        """Cash plus the positions at their last marks: `account(now).equity`, without the
        event (a sweep asks it every minute in a position to see whether the engine needs it)."""

    def equity_estimate(self) -> float:
        """`equity()` in floats (shares only), for a cheap first test; see the broker's."""


class StreamingBroker(Broker, Protocol):
    """A live broker: updates arrive on a stream, and are polled for when the stream is late."""

    errors: list[str]  # failed broker calls, for the error-rate breaker

    def observe(self, order: Any, when: datetime | None = None) -> None:
        """An order update from the stream, as the broker's SDK delivered it."""

    def poll_working(self) -> None:
        """Ask for every order still working (the stream's fallback)."""

    def working(self) -> list[str]:
        """Client ids of the orders still working (deferred ones included)."""

    def flush(self) -> None:
        """Send what was held back waiting for a sibling order."""

    def retry_deferred(self) -> None:
        """Send again what the broker refused for now (e.g. a wash-trade conflict)."""

    def clock_now(self) -> datetime:
        """The broker's current time."""

    def read(self, call: Callable[[], T]) -> T:
        """Run a read with the broker's retries and backoff."""
