"""A simulated broker for backtests and replays, with deliberately pessimistic fills.

- Market orders fill at the *next* bar's open, worsened by `slippage_bps`.
- A resting limit (target) fills at its price when a bar touches it, or at the open when the
  bar gaps through it.
- A stop fills at its price (or the gapped open), worsened by slippage; when a stop and a target
  of the same OCO group are both touched in one bar, the stop fills first (we cannot know the
  order of high and low inside a bar, so we assume the worse one).
- DAY orders expire at the end of their session; client order ids are never accepted twice.

Option contracts (OCC symbols) trade at quotes, not at bars: the desk the shell gives
(`use_quotes`: the pricing model or a quote file) quotes them at each minute's open, when their
underlying's bar opens. A market buy fills at the ask and a market sell at the bid, each worsened
by `OptionFills.slippage` dollars; a limit buy fills at the ask once the ask is at or below its
limit, a limit sell at its limit once the bid reaches it; with no quote in force an order waits.
Cash moves by price x contracts x 100, equity marks held contracts at the mid of the quote at
each minute's close, and a contract still held on a later session's first bar settles at its
intrinsic value against the underlying's last close (it should not happen: the engine flattens
at 15:20). Option orders and positions are kept apart from the shares', so a share-only
backtest never looks at them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from ict_trader.core.bars import Bar, price_of
from ict_trader.core.broker import BrokerOrder, ContractDesk
from ict_trader.core.events import (
    AccountUpdated,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from ict_trader.core.instruments import OptionRight, instrument_of
from ict_trader.core.ledger import FillRecord, Ledger
from ict_trader.core.orders import OrderRequest, OrderStatus, OrderType, Side

_BPS = Decimal("0.0001")
_PRICE_STEP = Decimal("0.0001")
_ONE_MINUTE = timedelta(minutes=1)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SimulatedBrokerConfig:
    starting_equity: Decimal = Decimal(100_000)
    slippage_bps: Decimal = Decimal(0)
    commission_per_share: Decimal = Decimal(0)
    buying_power_multiple: Decimal = Decimal(2)  # Reg T margin


@dataclass(frozen=True, slots=True)
class OptionFills:
    """How option orders fill beyond the quote: `slippage` dollars per share off a market
    order's price, `commission_per_contract` per contract. Alpaca charges no commission on
    options; the regulatory fees it passes on (a few cents a contract) are 0 unless set."""

    slippage: Decimal = _ZERO
    commission_per_contract: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class Settlement:
    """A contract settled at expiry (no order: the position is closed by the exchange)."""

    time: datetime
    symbol: str
    qty: int
    price: Decimal  # the intrinsic value per share


class _SimOrder:
    __slots__ = ("broker_id", "fill_price", "level", "request", "status", "submitted_at", "up")

    def __init__(self, request: OrderRequest, broker_id: str, submitted_at: datetime | None):
        self.request = request
        self.broker_id = broker_id
        self.status = OrderStatus.ACCEPTED
        self.fill_price: Decimal | None = None
        self.submitted_at = submitted_at
        # A resting order's price as a float and the side of it a bar must reach (a sell limit
        # and a buy stop from below, by the high; the others by the low): a cheap first test
        # of every bar a trade is open. It never misses a touch the exact Decimal test finds:
        # a bar's float is below a price's float exactly when its decimal is below the price.
        price = request.limit_price if request.type is OrderType.LIMIT else request.stop_price
        self.level = float(price) if price is not None else 0.0
        sells = request.side is Side.SELL
        self.up = sells if request.type is OrderType.LIMIT else not sells


class SimulatedBroker:
    """Implements `Broker`; the shell calls `open_bar` and `close_bar` around each bar."""

    def __init__(
        self, config: SimulatedBrokerConfig | None = None, options: OptionFills | None = None
    ) -> None:
        self.config = config or SimulatedBrokerConfig()
        self.options = options or OptionFills()
        self._slip = self.config.slippage_bps * _BPS
        self._orders: dict[str, _SimOrder] = {}
        self._queued_market: list[_SimOrder] = []
        self._resting: list[_SimOrder] = []
        self._events: list[Event] = []
        self._cash = self.config.starting_equity
        self._cash_seen: Decimal | None = None  # the cash `_cash_float` was taken from
        self._cash_float = 0.0
        self._positions: dict[str, int] = {}
        self._mark: dict[str, float] = {}  # last traded price per symbol, as in the bar
        # True while nothing can happen without a new order: no working orders, no position.
        # The shell skips the broker entirely on such bars.
        self.idle = True
        self._now: datetime | None = None
        self._expired_before: date | None = None  # DAY orders from before this day are gone
        self._sequence = 0
        # Options: their working orders, the contracts held, their marks (quote mids), the desk
        # that quotes them; `_option_work` is False while there is nothing of them to look at.
        self._desk: ContractDesk | None = None
        self._option_orders: list[_SimOrder] = []
        self._contracts: set[str] = set()
        self._option_marks: dict[str, Decimal] = {}
        self._option_work = False
        self._option_day: dict[str, date] = {}  # per underlying: the session last opened
        self.settlements: list[Settlement] = []

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
                if multiplier != 1:
                    self._option_marks[request.symbol] = fill.price
            if record.status.is_final:
                continue
            if instrument_of(request.symbol).is_option:
                self._option_orders.append(sim)
            elif request.type is OrderType.MARKET:
                self._queued_market.append(sim)
            else:
                self._resting.append(sim)
        self._contracts = {
            symbol
            for symbol, qty in self._positions.items()
            if qty and instrument_of(symbol).is_option
        }
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
        if instrument_of(order.symbol).is_option:
            self._option_orders.append(sim)
            self._option_work = True
        elif order.type is OrderType.MARKET:
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
            now, equity, self._cash, max(equity * self.config.buying_power_multiple, _ZERO)
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

    def use_quotes(self, desk: ContractDesk) -> None:
        self._desk = desk

    def contracts_held(self) -> list[str]:
        return sorted(self._contracts) if self._contracts else []

    def equity(self) -> Decimal:
        if self._contracts:
            return self._cash + self._marked_with_options()
        # sum() without its generator (this runs for every bar a position is open): the same
        # additions from the same start, 0
        marked: Decimal | int = 0
        mark = self._mark
        for symbol, qty in self._positions.items():
            marked += qty * price_of(mark.get(symbol, 0.0)) * instrument_of(symbol).multiplier
        return self._cash + marked

    def equity_estimate(self) -> float:
        """`equity()` in floats: within a part in 10^13 of it (far less than the margin a
        caller leaves), at a fraction of its cost; for a cheap first test every minute."""
        cash = self._cash
        if cash is not self._cash_seen:  # a Decimal never changes: a new one is new cash
            self._cash_seen = cash
            self._cash_float = float(cash)
        marked = self._cash_float
        mark = self._mark
        for symbol, qty in self._positions.items():
            if qty:
                marked += qty * mark.get(symbol, 0.0) * instrument_of(symbol).multiplier
        return marked

    def _marked_with_options(self) -> Decimal:
        marks = self._option_marks
        total = _ZERO
        for symbol, qty in self._positions.items():
            instrument = instrument_of(symbol)
            if instrument.is_option:
                total += qty * marks.get(symbol, _ZERO) * instrument.multiplier
            else:
                total += qty * Decimal(repr(self._mark.get(symbol, 0.0))) * instrument.multiplier
        return total

    def open_bar(self, bar: Bar, symbol: str) -> bool:
        """The bar has opened: expire earlier sessions' DAY orders, fill queued market orders.

        Returns whether anything happened (events to drain), so idle bars cost almost nothing.
        """
        self._now = bar.time
        options = self._option_work and self._open_options(bar, symbol)
        self._mark[symbol] = bar.open
        if not self._queued_market and not self._resting:
            return options
        day = bar.time.date()
        if day != self._expired_before:  # only a new day can expire an order
            self._expired_before = day
            for sim in [*self._queued_market, *self._resting]:
                # Regular-hours bars share their New York and UTC dates, so an order created on
                # an earlier date belongs to an earlier session: as a DAY order it has expired.
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
        if self._contracts:
            self._mark_options(bar, symbol)
        self._mark[symbol] = bar.close
        self._now = bar.time
        if self._resting and self._may_touch(bar, symbol):
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

    # ------------------------------------------------------------------ options

    def _open_options(self, bar: Bar, symbol: str) -> bool:
        """`symbol`'s minute opened: settle its contracts that expired, expire earlier
        sessions' option orders, and fill its contracts' orders at the quote now."""
        day = bar.time.date()
        if self._option_day.get(symbol) != day:
            self._option_day[symbol] = day
            self._settle_expired(bar, symbol)
            for sim in list(self._option_orders):
                if sim.submitted_at is not None and sim.submitted_at.date() < day:
                    self._finish(sim, OrderStatus.EXPIRED, "expired at the session close")
        desk = self._desk
        if desk is not None:
            for sim in list(self._option_orders):
                request = sim.request
                if sim.status.is_final or not _placed_by(sim, bar):
                    continue
                if instrument_of(request.symbol).root != symbol:
                    continue
                quote = desk.quote(request.symbol, bar.time)
                if quote is None:
                    continue  # no quote in force: the order waits, as at an exchange
                price = self._option_price(request, quote.bid, quote.ask)
                if price is not None:
                    commission = self.options.commission_per_contract * request.qty
                    self._fill(sim, price, bar.time, commission)
        return bool(self._events)

    def _option_price(self, order: OrderRequest, bid: Decimal, ask: Decimal) -> Decimal | None:
        """The fill price of an option order against a quote, or None if it does not fill."""
        buy = order.side is Side.BUY
        if order.type is OrderType.MARKET:
            slip = self.options.slippage
            return ask + slip if buy else max(bid - slip, _ZERO)
        limit = order.limit_price
        assert limit is not None
        if buy:
            return ask if ask <= limit else None
        return limit if bid >= limit else None

    def _mark_options(self, bar: Bar, symbol: str) -> None:
        """Held contracts on `symbol` at the mid of their quote at the bar's close."""
        desk = self._desk
        if desk is None:
            return
        close = bar.time + _ONE_MINUTE
        for contract in self._contracts:
            if instrument_of(contract).root == symbol:
                quote = desk.quote(contract, close)
                if quote is not None:
                    self._option_marks[contract] = quote.mid

    def _settle_expired(self, bar: Bar, symbol: str) -> None:
        """Contracts on `symbol` that expired before `bar`'s session settle at their intrinsic
        value against the underlying's last price (its previous close)."""
        last = self._mark.get(symbol)
        for contract in sorted(self._contracts):
            instrument = instrument_of(contract)
            expiry = instrument.expiry
            if instrument.root != symbol or expiry is None or expiry >= bar.time.date():
                continue
            if last is None or instrument.strike is None:
                continue
            spot = Decimal(repr(last))
            intrinsic = spot - instrument.strike
            if instrument.right is not OptionRight.CALL:
                intrinsic = -intrinsic
            price = max(intrinsic, _ZERO)
            qty = self._positions.pop(contract)
            self._cash += qty * price * instrument.multiplier
            self._contracts.discard(contract)
            self._option_marks.pop(contract, None)
            self.settlements.append(Settlement(bar.time, contract, qty, price))
        self._refresh_idle()

    # ------------------------------------------------------------------ internals

    def _may_touch(self, bar: Bar, symbol: str) -> bool:
        """Whether `bar` may reach a resting order of `symbol` (False: it surely reaches none)."""
        high, low = bar.high, bar.low
        for sim in self._resting:  # a loop, not any() over a generator: every bar in a trade
            if sim.request.symbol == symbol and (high >= sim.level if sim.up else low <= sim.level):
                return True
        return False

    def _slipped(self, price: Decimal, side: Side) -> Decimal:
        if not self._slip:
            return price
        factor = 1 + self._slip if side is Side.BUY else 1 - self._slip
        return (price * factor).quantize(_PRICE_STEP, rounding=ROUND_HALF_EVEN)

    def _fill(
        self, sim: _SimOrder, price: Decimal, when: datetime, commission: Decimal | None = None
    ) -> None:
        """Fill `sim` whole at `price`; `commission` given for an option (per contract),
        else the shares' per-share one."""
        request = sim.request
        qty = request.qty
        signed = qty if request.side is Side.BUY else -qty
        if commission is None:
            commission = self.config.commission_per_share * qty
        held = self._positions.get(request.symbol, 0) + signed
        self._positions[request.symbol] = held
        multiplier = instrument_of(request.symbol).multiplier
        self._cash -= signed * price * multiplier + commission
        sim.status = OrderStatus.FILLED
        sim.fill_price = price
        if sim in self._resting:
            self._resting.remove(sim)
        elif sim in self._option_orders:
            self._option_orders.remove(sim)
            self._option_marks[request.symbol] = price
            if held:
                self._contracts.add(request.symbol)
            else:
                self._contracts.discard(request.symbol)
                del self._positions[request.symbol]
                self._option_marks.pop(request.symbol, None)
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
        self._option_work = bool(self._option_orders or self._contracts)
        self.idle = not (
            self._queued_market
            or self._resting
            or self._option_work
            or any(self._positions.values())
        )

    def _finish(self, sim: _SimOrder, status: OrderStatus, reason: str) -> None:
        sim.status = status
        if sim in self._resting:
            self._resting.remove(sim)
        if sim in self._queued_market:
            self._queued_market.remove(sim)
        if sim in self._option_orders:
            self._option_orders.remove(sim)
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
    if instrument_of(order.symbol).is_option:
        # Alpaca: option orders are market or limit, with at most 2 decimals.
        if order.type is OrderType.STOP:
            return "option orders are market or limit orders only"
        limit = order.limit_price
        if limit is not None and limit != limit.quantize(Decimal("0.01")):
            return f"option limit prices take at most 2 decimals, got {limit}"
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
