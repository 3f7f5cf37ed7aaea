"""A simulated broker for backtests and replays, with deliberately pessimistic fills.

- Market orders fill at the *next* bar's open, worsened by `slippage_bps`.
- A resting limit (target) fills at its price when a bar touches it, or at the open when the
  bar gaps through it.
- A stop fills at its price (or the gapped open), worsened by slippage; when a stop and a target
  of the same OCO group are both touched in one bar, the stop fills first (we cannot know the
  order of high and low inside a bar, so we assume the worse one).
- DAY orders expire at the end of their session; client order ids are never accepted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from ict_trader.core.bars import Bar
from ict_trader.core.broker import BrokerOrder
from ict_trader.core.events import (
    AccountUpdated,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from ict_trader.core.instruments import instrument_of
from ict_trader.core.ledger import FillRecord, Ledger
from ict_trader.core.orders import OrderRequest, OrderStatus, OrderType, Side

_BPS = Decimal("0.0001")
_PRICE_STEP = Decimal("0.0001")
_ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SimulatedBrokerConfig:
    starting_equity: Decimal = Decimal(100_000)
    slippage_bps: Decimal = Decimal(0)
    commission_per_share: Decimal = Decimal(0)
    buying_power_multiple: Decimal = Decimal(2)  # Reg T margin


class _SimOrder:
    __slots__ = ("broker_id", "fill_price", "request", "status", "submitted_at")

    def __init__(self, request: OrderRequest, broker_id: str, submitted_at: datetime | None):
        self.request = request
        self.broker_id = broker_id
        self.status = OrderStatus.ACCEPTED
        self.fill_price: Decimal | None = None
        self.submitted_at = submitted_at


class SimulatedBroker:
    """Implements `Broker`; the shell calls `open_bar` and `close_bar` around each bar."""

    def __init__(self, config: SimulatedBrokerConfig | None = None) -> None:
        self.config = config or SimulatedBrokerConfig()
        self._slip = self.config.slippage_bps * _BPS
        self._orders: dict[str, _SimOrder] = {}
        self._queued_market: list[_SimOrder] = []
        self._resting: list[_SimOrder] = []
        self._events: list[Event] = []
        self._cash = self.config.starting_equity
        self._positions: dict[str, int] = {}
        self._mark: dict[str, float] = {}  # last traded price per symbol, as in the bar
        # True while nothing can happen without a new order: no working orders, no position.
        # The shell skips the broker entirely on such bars.
        self.idle = True
        self._now: datetime | None = None
        self._sequence = 0

    def restore(self, ledger: Ledger) -> None:
        """Rebuild cash, positions and working orders from a previous run's ledger.

        The simulated broker has no memory of its own across processes; the store's orders and
        fills are exactly what it did, so replaying them reproduces its state.
        """
        fills_by_order: dict[str, list[FillRecord]] = {}
        for fill in ledger.fills:
            fills_by_order.setdefault(fill.client_order_id, []).append(fill)
        for record in ledger.orders:
            request = record.request
            self._sequence += 1
            broker_id = record.broker_order_id or f"sim-{self._sequence:06d}"
            sim = _SimOrder(request, broker_id, request.created_at)
            sim.status = record.status
            self._orders[request.client_order_id] = sim
            for fill in fills_by_order.get(request.client_order_id, []):
                signed = fill.qty if request.side is Side.BUY else -fill.qty
                self._positions[request.symbol] = self._positions.get(request.symbol, 0) + signed
                multiplier = instrument_of(request.symbol).multiplier
                self._cash -= signed * fill.price * multiplier + fill.commission
                sim.fill_price = fill.price
            if record.status.is_final:
                continue
            if request.type is OrderType.MARKET:
                self._queued_market.append(sim)
            else:
                self._resting.append(sim)
        self._refresh_idle()

    def resume_at(self, moment: datetime) -> None:
        """Set the clock of a restored broker before its first bar: what happens then (a kill
        switch applied at start-up cancelling the resting targets) happens at `moment`, not
        when the orders were placed, and the exits that follow are stamped with it too."""
        self._now = moment

    # ------------------------------------------------------------------ Broker protocol

    def submit(self, order: OrderRequest) -> None:
        now = order.created_at or self._now
        assert now is not None
        if order.client_order_id in self._orders:
            # Alpaca answers 422 "client_order_id must be unique"; so do we.
            self._events.append(
                OrderRejected(now, order.client_order_id, "client_order_id must be unique")
            )
            return
        problem = _invalid(order)
        self._sequence += 1
        sim = _SimOrder(order, f"sim-{self._sequence:06d}", now)
        self._orders[order.client_order_id] = sim
        if problem:
            sim.status = OrderStatus.REJECTED
            self._events.append(OrderRejected(now, order.client_order_id, problem))
            return
        self._events.append(OrderAccepted(now, order.client_order_id, sim.broker_id))
        if order.type is OrderType.MARKET:
            self._queued_market.append(sim)
        else:
            self._resting.append(sim)
        self.idle = False

    def cancel(self, client_order_id: str) -> None:
        sim = self._orders.get(client_order_id)
        if sim is None or sim.status.is_final:
            return
        self._finish(sim, OrderStatus.CANCELED, "canceled")

    def events(self) -> list[Event]:
        drained, self._events = self._events, []
        return drained

    def account(self, now: datetime) -> AccountUpdated:
        equity = self.equity()
        return AccountUpdated(
            now, equity, self._cash, max(equity * self.config.buying_power_multiple, Decimal(0))
        )

    def position(self, symbol: str) -> int:
        return self._positions.get(symbol, 0)

    def positions(self) -> dict[str, int]:
        return {symbol: qty for symbol, qty in self._positions.items() if qty}

    def order(self, client_order_id: str) -> BrokerOrder | None:
        sim = self._orders.get(client_order_id)
        return None if sim is None else self._view(sim)

    def open_orders(self) -> list[BrokerOrder]:
        return [self._view(sim) for sim in self._orders.values() if not sim.status.is_final]

    # ------------------------------------------------------------------ bar driving

    def equity(self) -> Decimal:
        marked = sum(
            (qty * Decimal(repr(self._mark.get(symbol, 0.0))) * instrument_of(symbol).multiplier)
            for symbol, qty in self._positions.items()
        )
        return self._cash + marked

    def open_bar(self, bar: Bar, symbol: str) -> bool:
        """The bar has opened: expire earlier sessions' DAY orders, fill queued market orders.

        Returns whether anything happened (events to drain), so idle bars cost almost nothing.
        """
        self._now = bar.time
        self._mark[symbol] = bar.open
        if not self._queued_market and not self._resting:
            return False
        day = bar.time.date()
        for sim in [*self._queued_market, *self._resting]:
            # Regular-hours bars share their New York and UTC dates, so an order created on an
            # earlier date belongs to an earlier session: as a DAY order it has expired.
            if sim.submitted_at is not None and sim.submitted_at.date() < day:
                self._finish(sim, OrderStatus.EXPIRED, "expired at the session close")
        if self._queued_market:
            open_price = Decimal(repr(bar.open))
            queued = self._queued_market
            # Only this symbol's orders fill at this bar's open; others wait for their own bar.
            # An order never fills at a price from before it existed.
            due = [sim for sim in queued if sim.request.symbol == symbol and _placed_by(sim, bar)]
            self._queued_market = [sim for sim in queued if sim not in due]
            for sim in due:
                if not sim.status.is_final:
                    self._fill(sim, self._slipped(open_price, sim.request.side), bar.time)
        return bool(self._events)

    def close_bar(self, bar: Bar, symbol: str) -> bool:
        """The bar has closed: fill resting orders its range touched, then mark to the close."""
        self._mark[symbol] = bar.close
        self._now = bar.time
        if self._resting:
            open_price = Decimal(repr(bar.open))
            high = Decimal(repr(bar.high))
            low = Decimal(repr(bar.low))
            # Stops first: pessimistic when a stop and a target are touched in the same bar.
            ordered = sorted(self._resting, key=lambda sim: sim.request.type is not OrderType.STOP)
            for sim in ordered:
                if sim.status.is_final or sim.request.symbol != symbol:
                    continue
                if sim.submitted_at is not None and sim.submitted_at > bar.time:
                    continue  # placed after this bar opened (another symbol's close)
                price = _touched(sim.request, open_price, high, low)
                if price is not None:
                    if sim.request.type is OrderType.STOP:
                        price = self._slipped(price, sim.request.side)
                    self._fill(sim, price, bar.time)
        # Closed: what the engine asks for now (a time exit cancelling its target) happens at
        # the close, and the exit order that follows the cancel is stamped with it.
        self._now = bar.time + _ONE_MINUTE
        return bool(self._events)

    # ------------------------------------------------------------------ internals

    def _slipped(self, price: Decimal, side: Side) -> Decimal:
        if not self._slip:
            return price
        factor = 1 + self._slip if side is Side.BUY else 1 - self._slip
        return (price * factor).quantize(_PRICE_STEP, rounding=ROUND_HALF_EVEN)

    def _fill(self, sim: _SimOrder, price: Decimal, when: datetime) -> None:
        request = sim.request
        qty = request.qty
        signed = qty if request.side is Side.BUY else -qty
        commission = self.config.commission_per_share * qty
        self._positions[request.symbol] = self._positions.get(request.symbol, 0) + signed
        multiplier = instrument_of(request.symbol).multiplier
        self._cash -= signed * price * multiplier + commission
        sim.status = OrderStatus.FILLED
        sim.fill_price = price
        if sim in self._resting:
            self._resting.remove(sim)
        self._events.append(
            OrderFilled(
                time=when,
                client_order_id=request.client_order_id,
                broker_order_id=sim.broker_id,
                execution_id=f"{sim.broker_id}-1",
                qty=qty,
                price=price,
                cumulative_qty=qty,
                order_complete=True,
                commission=commission,
            )
        )
        if request.oco_group is not None:
            for other in list(self._resting):
                if other.request.oco_group == request.oco_group and not other.status.is_final:
                    self._finish(other, OrderStatus.CANCELED, "canceled: OCO sibling filled")
        self._refresh_idle()

    def _refresh_idle(self) -> None:
        self.idle = not (self._queued_market or self._resting or any(self._positions.values()))

    def _finish(self, sim: _SimOrder, status: OrderStatus, reason: str) -> None:
        sim.status = status
        if sim in self._resting:
            self._resting.remove(sim)
        if sim in self._queued_market:
            self._queued_market.remove(sim)
        now = self._now or sim.submitted_at
        assert now is not None
        self._events.append(OrderCanceled(now, sim.request.client_order_id, reason))
        self._refresh_idle()

    def _view(self, sim: _SimOrder) -> BrokerOrder:
        filled = sim.status is OrderStatus.FILLED
        return BrokerOrder(
            request=sim.request,
            broker_order_id=sim.broker_id,
            status=sim.status,
            filled_qty=sim.request.qty if filled else 0,
            filled_avg_price=sim.fill_price,
            submitted_at=sim.submitted_at,
        )


def _invalid(order: OrderRequest) -> str | None:
    if order.qty <= 0:
        return f"qty must be positive, got {order.qty}"
    if order.type is OrderType.LIMIT and (order.limit_price is None or order.limit_price <= 0):
        return "limit orders need a positive limit_price"
    if order.type is OrderType.STOP and (order.stop_price is None or order.stop_price <= 0):
        return "stop orders need a positive stop_price"
    return None


def _touched(order: OrderRequest, open_: Decimal, high: Decimal, low: Decimal) -> Decimal | None:
    """The fill price of a resting order over a bar, or None if the bar did not reach it."""
    if order.type is OrderType.LIMIT:
        limit = order.limit_price
        assert limit is not None
        if order.side is Side.SELL:
            return max(open_, limit) if high >= limit else None
        return min(open_, limit) if low <= limit else None
    stop = order.stop_price
    assert stop is not None
    if order.side is Side.SELL:
        return min(open_, stop) if low <= stop else None
    return max(open_, stop) if high >= stop else None


def _placed_by(sim: _SimOrder, bar: Bar) -> bool:
    """Whether the order existed when `bar` opened (one placed at another symbol's close of the
    same minute did not)."""
    return sim.submitted_at is None or sim.submitted_at <= bar.time
