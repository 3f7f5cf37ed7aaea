"""The Alpaca broker: the engine's orders through the official alpaca-py SDK.

What this adapter guarantees, whatever the network does:
- **No duplicate orders.** Submissions go through a client with the SDK's automatic retries
  turned off (it would otherwise repeat a POST after a 429/504 that may have created the order).
  A timeout, 5xx, 429 or 504 on submit is an *unknown outcome*, resolved by looking the order up
  by its client order id; only if Alpaca says it does not exist is it sent again, with the same
  id, so Alpaca itself refuses any second copy.
- **Fills counted once.** Order snapshots from the trade-updates stream, from submit answers and
  from polling all go through one observer that tracks each order's cumulative filled quantity
  and value and emits only the difference, so duplicated stream messages, cumulative quantities
  and the stream/poll overlap cannot double-count.
- **Reads are retried** (bounded, with backoff) on 429/5xx/timeouts; other 4xx are order errors.
- **No exit lost to the wash-trade rule.** Alpaca refuses an order opposite to an open order on
  the same symbol (403 "potential wash trade detected"). Two profiles entering on one signal
  meet it: the first entry's fill triggers its target while the second entry is still open. An
  exit refused so while an opposite order of ours is working is deferred, not rejected, and
  sent again (same client id: the refused one never existed) once no opposite order of ours is
  working. An entry refused so is a rejection (sent later it would trade a stale signal), and so
  is any refusal caused by an order that is not ours: that is for a person to see.
- Every REST call has a timeout (the SDK sets none).
- **Option orders as Alpaca takes them**: whole contracts, `position_intent` beside the side
  (without it a buy can be read as closing a short), `day` only, limit prices on the cent grid,
  each order on its own — Alpaca has no bracket, OCO or stop order for options, so one is
  refused here, in words, instead of by Alpaca. Fills come through the same observer as
  shares': nothing here reads a symbol beyond passing it on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

import requests
from alpaca.common.enums import BaseURL
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    PositionIntent,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Calendar, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)

from ict_trader.core.broker import BrokerOrder
from ict_trader.core.calendar import NEW_YORK
from ict_trader.core.events import (
    AccountUpdated,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from ict_trader.core.instruments import CENT, instrument_of
from ict_trader.core.orders import Leg, OrderRequest, OrderStatus, OrderType, Side

log = logging.getLogger(__name__)
T = TypeVar("T")

REQUEST_TIMEOUT_SECONDS = 10.0
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_STATUS_MAP = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "replaced": OrderStatus.CANCELED,
}
# Final without a fill of its own: `replaced` is what Alpaca reports for an OCO's take-profit
# when the stop leg fills (alpaca-py issue #198), besides a user's replace.
_DONE_UNFILLED = {"canceled", "expired", "replaced"}
# Alpaca's answer to a second order with a client id it already holds (code 40010001).
_DUPLICATE_ID = "client_order_id must be unique"
_WASH_TRADE = "wash trade"


class TimeoutSession(requests.Session):
    """A requests session that never waits forever (alpaca-py passes no timeout)."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", REQUEST_TIMEOUT_SECONDS)
        return super().request(*args, **kwargs)


@dataclass
class _Tracked:
    """What has been reported to the engine for one order."""

    request: OrderRequest
    broker_order_id: str | None = None
    filled_qty: int = 0
    filled_value: Decimal = Decimal(0)
    status: str = "new"
    accepted: bool = False
    final: bool = False


class AlpacaBroker:
    """Implements the engine's `Broker` protocol on Alpaca (paper unless told otherwise)."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        paper: bool = True,
        url_override: str | None = None,
        read_attempts: int = 6,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.trading = TradingClient(api_key, secret_key, paper=paper, url_override=url_override)
        default_url = BaseURL.TRADING_PAPER if paper else BaseURL.TRADING_LIVE
        self.base_url = (url_override or default_url.value).rstrip("/")  # for messages
        # A second client for order submission: with the SDK's retries off, a failed POST is
        # never silently repeated (see the module docstring).
        self.submitter = TradingClient(api_key, secret_key, paper=paper, url_override=url_override)
        self.submitter._retry = 0
        self.submitter._retry_codes = []
        self.trading._retry = 0  # reads are retried by `_read` with our own backoff instead
        for client in (self.trading, self.submitter):
            client._session = TimeoutSession()
        self.read_attempts = read_attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
        self._orders: dict[str, _Tracked] = {}
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._lock = threading.RLock()
        self.errors: list[str] = []  # order/broker errors, for the error-rate breaker
        self._oco_waiting: dict[str, OrderRequest] = {}  # group -> first half of an OCO pair
        self._legs_pending: dict[str, str] = {}  # OCO parent client id -> our stop's client id
        self._aliases: dict[str, str] = {}  # Alpaca's leg client id -> our client id
        self._leg_ids: dict[str, str] = {}  # our stop's client id -> Alpaca's leg order id
        self._resent: set[str] = set()  # client ids sent again after an unknown outcome
        # refused as a potential wash trade while an opposite order of ours works: client id
        # -> (order, the Alpaca request, the OCO's stop leg), sent again by `retry_deferred`
        self._deferred: dict[str, tuple[OrderRequest, Any, OrderRequest | None]] = {}

    # ------------------------------------------------------------------ Broker protocol

    def submit(self, order: OrderRequest) -> None:
        """Send one order. A target and a stop of the same OCO group travel together as one
        Alpaca OCO order (two separate exits would each hold the shares and the second would be
        refused): the first of the pair waits for the second, or for `flush`. An option order
        always goes alone (Alpaca has no OCO for options), and a stop on an option is refused
        here: Alpaca would refuse it anyway, later and less clearly."""
        if instrument_of(order.symbol).is_option:
            if order.type is OrderType.STOP:
                with self._lock:
                    if order.client_order_id in self._orders:
                        return
                    self._orders[order.client_order_id] = _Tracked(order)
                self._reject(order, "not sent: Alpaca takes no stop orders on options")
                return
            self._send(order, _to_alpaca(order))
            return
        if order.oco_group is not None:
            waiting = self._oco_waiting.pop(order.oco_group, None)
            if waiting is None:
                self._oco_waiting[order.oco_group] = order
                return
            target, stop = (waiting, order) if waiting.type is OrderType.LIMIT else (order, waiting)
            self._send(target, _to_alpaca_oco(target, stop), stop_leg=stop)
            return
        self._send(order, _to_alpaca(order))

    def flush(self) -> None:
        """Send any half of an OCO pair still waiting for its sibling, on its own."""
        for group in list(self._oco_waiting):
            order = self._oco_waiting.pop(group)
            self._send(order, _to_alpaca(order))

    def _send(
        self, order: OrderRequest, request: Any, stop_leg: OrderRequest | None = None
    ) -> None:
        tracked = _Tracked(order)
        with self._lock:
            if order.client_order_id in self._orders:
                return  # already sent: never twice
            self._orders[order.client_order_id] = tracked
            if stop_leg is not None:
                self._orders[stop_leg.client_order_id] = _Tracked(stop_leg)
                self._legs_pending[order.client_order_id] = stop_leg.client_order_id
        for attempt in range(1, self.read_attempts + 1):
            try:
                answer = self.submitter.submit_order(request)
            except APIError as exc:
                if exc.status_code in _TRANSIENT_STATUS:
                    if self._resolve_unknown(order, f"HTTP {exc.status_code}"):
                        return
                    self._resent.add(order.client_order_id)
                    self._backoff(attempt)
                    continue
                if exc.status_code == 422 and _DUPLICATE_ID in _api_message(exc):
                    self._claimed(order)
                    return
                wash_trade = _WASH_TRADE in _api_message(exc)
                if (
                    wash_trade
                    and order.leg is not Leg.ENTRY
                    and self._defer(order, request, stop_leg)
                ):
                    return
                self._reject(order, _api_message(exc))
                return
            except requests.RequestException as exc:
                if self._resolve_unknown(order, type(exc).__name__):
                    return
                self._resent.add(order.client_order_id)
                self._backoff(attempt)
                continue
            assert isinstance(answer, Order)
            self.observe(answer)
            if stop_leg is not None:
                self._learn_legs(order.client_order_id)
            return
        self._reject(order, f"no answer from Alpaca after {self.read_attempts} attempts")

    def _defer(self, order: OrderRequest, request: Any, stop_leg: OrderRequest | None) -> bool:
        """Keep an order Alpaca refused as a potential wash trade, to send once our opposite
        orders are done; False (a real rejection) when no opposite order of ours is working."""
        with self._lock:
            if not self._opposite_working(order):
                return False
            self._orders.pop(order.client_order_id, None)  # never created: may be sent again
            if stop_leg is not None:
                self._orders.pop(stop_leg.client_order_id, None)
                self._legs_pending.pop(order.client_order_id, None)
            self._deferred[order.client_order_id] = (order, request, stop_leg)
        log.info(
            "%s deferred: Alpaca refuses it as a potential wash trade while an opposite order"
            " of ours works; it goes out once that order is done",
            order.client_order_id,
        )
        return True

    def _opposite_working(self, order: OrderRequest) -> bool:
        return any(
            not tracked.final
            and tracked.request.symbol == order.symbol
            and tracked.request.side is not order.side
            for tracked in self._orders.values()
        )

    def retry_deferred(self) -> None:
        """Send again each deferred order whose opposite orders of ours are all done."""
        for client_order_id in list(self._deferred):
            with self._lock:
                entry = self._deferred.get(client_order_id)
                if entry is None or self._opposite_working(entry[0]):
                    continue
                del self._deferred[client_order_id]
            order, request, stop_leg = entry
            self._send(order, request, stop_leg=stop_leg)

    def _claimed(self, order: OrderRequest) -> None:
        """Alpaca says the client id is taken: the order exists (an earlier attempt whose answer
        was lost, still being created when looked up). It is never a rejection: keep asking
        for it; until found it stays working, and polling keeps looking it up."""
        log.warning("%s already exists at Alpaca; looking it up", order.client_order_id)
        for attempt in range(1, self.read_attempts + 1):
            found = self.lookup(order.client_order_id)
            if found is not None:
                self.observe(found)
                self._learn_legs(order.client_order_id)
                return
            self._backoff(attempt)

    def _learn_legs(self, parent_client_id: str) -> None:
        """An OCO's stop leg is named by Alpaca: learn its ids from the parent read with
        `nested=true` when the answer carried no `legs` (Alpaca lists legs only when asked)."""
        if parent_client_id not in self._legs_pending:
            return
        parent = self._orders.get(parent_client_id)
        broker_id = parent.broker_order_id if parent else None
        if broker_id is None:
            found = self.lookup(parent_client_id)
            if found is None:
                return
            broker_id = str(found.id)
        nested = self.read(
            lambda: self.trading.get_order_by_id(broker_id, GetOrderByIdRequest(nested=True))
        )
        assert isinstance(nested, Order)
        self.observe(nested)

    def cancel(self, client_order_id: str) -> None:
        with self._lock:
            deferred = self._deferred_holding(client_order_id)
            if deferred is not None:  # never reached Alpaca: canceled here, with its stop leg
                order, _, stop_leg = self._deferred.pop(deferred)
                assert order.created_at is not None
                for request in (order, stop_leg):
                    if request is not None:
                        reason = "canceled before it could be sent"
                        self._events.put(
                            OrderCanceled(order.created_at, request.client_order_id, reason)
                        )
                return
        tracked = self._orders.get(client_order_id)
        if tracked is None or tracked.final:
            return
        broker_id = tracked.broker_order_id
        if broker_id is None:
            found = self.lookup(client_order_id)
            if found is None:
                return
            broker_id = str(found.id)
        try:
            self.read(lambda: self.trading.cancel_order_by_id(broker_id))
        except APIError as exc:
            if exc.status_code != 422:  # 422: not cancelable any more, i.e. already final
                self.errors.append(f"cancel {client_order_id}: {_api_message(exc)}")
                raise
        # The cancel (or the fill that beat it) is confirmed by the order's state.
        self.poll_order(client_order_id)

    def events(self) -> list[Event]:
        drained: list[Event] = []
        while True:
            try:
                drained.append(self._events.get_nowait())
            except queue.Empty:
                return drained

    def account(self, now: datetime) -> AccountUpdated:
        account = self.read(self.trading.get_account)
        assert isinstance(account, TradeAccount)
        return AccountUpdated(
            now,
            Decimal(account.equity or "0"),
            Decimal(account.cash or "0"),
            Decimal(account.buying_power or "0"),
            # Any of Alpaca's reasons to refuse orders: blocked by Alpaca, suspended by the
            # user, or an account that is not ACTIVE (e.g. ACCOUNT_UPDATED while under review).
            trading_blocked=bool(
                account.trading_blocked
                or account.account_blocked
                or account.trade_suspended_by_user
                or (account.status is not None and str(account.status.value) != "ACTIVE")
            ),
            options_buying_power=(
                Decimal(account.options_buying_power)
                if account.options_buying_power is not None
                else None
            ),
        )

    def clock(self) -> Clock:
        """The broker's clock (is the market open, next open and close), read with retries."""
        clock = self.read(self.trading.get_clock)
        assert isinstance(clock, Clock)
        return clock

    def clock_now(self) -> datetime:
        """The broker's current time (the emulator's is simulated, Alpaca's is real)."""
        return self.clock().timestamp.astimezone(UTC)

    def session_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """The broker's regular-hours open and close of New York date `day` (UTC), or None
        when it says the market is closed that day."""
        answer = self.read(
            lambda: self.trading.get_calendar(GetCalendarRequest(start=day, end=day))
        )
        assert isinstance(answer, list)
        for entry in answer:
            assert isinstance(entry, Calendar)
            if entry.date == day:  # alpaca-py parses "HH:MM" as naive New York wall time
                return (
                    entry.open.replace(tzinfo=NEW_YORK).astimezone(UTC),
                    entry.close.replace(tzinfo=NEW_YORK).astimezone(UTC),
                )
        return None

    def position(self, symbol: str) -> int:
        try:
            position = self.read(lambda: self.trading.get_open_position(symbol))
        except APIError as exc:
            if exc.status_code == 404:
                return 0
            raise
        assert isinstance(position, Position)
        return int(Decimal(position.qty))

    def positions(self) -> dict[str, int]:
        """Every open position at the broker, by symbol (one call, whatever the symbols)."""
        answer = self.read(self.trading.get_all_positions)
        assert isinstance(answer, list)
        held: dict[str, int] = {}
        for position in answer:
            assert isinstance(position, Position)
            held[position.symbol] = int(Decimal(position.qty))
        return held

    def order(self, client_order_id: str) -> BrokerOrder | None:
        found = self.lookup(client_order_id)
        if found is None:
            return None
        tracked = self._orders.get(client_order_id)
        request = tracked.request if tracked else _from_alpaca(found)
        return _broker_order(request, found)

    def open_orders(self) -> list[BrokerOrder]:
        answer = self.read(
            lambda: self.trading.get_orders(
                GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
            )
        )
        assert isinstance(answer, list)
        out = []
        for order in answer:
            assert isinstance(order, Order)
            tracked = self._orders.get(order.client_order_id)
            out.append(_broker_order(tracked.request if tracked else _from_alpaca(order), order))
        return out

    # ------------------------------------------------------------------ updates

    def observe(self, order: Order, when: datetime | None = None) -> None:
        """Turn an order snapshot (stream, submit answer or poll) into engine events, once."""
        with self._lock:
            if order.legs and order.client_order_id in self._legs_pending:
                # Alpaca names an OCO's stop leg itself; remember which of ours it is. Only
                # nested answers carry `legs` (stream updates and plain reads do not).
                stop_leg = self._legs_pending.pop(order.client_order_id)
                self._aliases[order.legs[0].client_order_id] = stop_leg
                self._leg_ids[stop_leg] = str(order.legs[0].id)
            for leg in order.legs or []:
                self._observe_one(leg, when)
            self._observe_one(order, when)

    def _observe_one(self, order: Order, when: datetime | None) -> None:
        with self._lock:
            ours = self._aliases.get(order.client_order_id, order.client_order_id)
            tracked = self._orders.get(ours)
            if tracked is None:
                return  # not ict-trader's order: reported by reconciliation, never touched
            moment = when or order.updated_at
            if not tracked.accepted and order.status.value not in {"rejected", "pending_new"}:
                tracked.accepted = True
                tracked.broker_order_id = str(order.id)
                self._events.put(OrderAccepted(moment, ours, str(order.id)))
            tracked.broker_order_id = str(order.id)
            filled = int(Decimal(str(order.filled_qty or 0)))
            if filled > tracked.filled_qty:
                average = Decimal(str(order.filled_avg_price))
                value = average * filled
                delta_qty = filled - tracked.filled_qty
                delta_price = (value - tracked.filled_value) / delta_qty
                tracked.filled_qty, tracked.filled_value = filled, value
                complete = filled >= tracked.request.qty
                self._events.put(
                    OrderFilled(
                        time=order.filled_at if complete and order.filled_at else moment,
                        client_order_id=ours,
                        broker_order_id=str(order.id),
                        execution_id=f"{order.id}:{filled}",
                        qty=delta_qty,
                        price=delta_price.quantize(Decimal("0.0001")),
                        cumulative_qty=filled,
                        order_complete=complete,
                    )
                )
                if complete:
                    tracked.final = True
            status = order.status.value
            if tracked.final or status == tracked.status:
                tracked.status = status
                return
            tracked.status = status
            if status in _DONE_UNFILLED:
                tracked.final = True
                self._events.put(OrderCanceled(moment, ours, status))
            elif status == "rejected":
                tracked.final = True
                self._events.put(OrderRejected(moment, ours, "rejected by Alpaca"))

    def poll_order(self, client_order_id: str) -> None:
        """Fallback for a stream that missed something: read the order and observe it."""
        found = self.lookup(client_order_id)
        if found is not None:
            self.observe(found)

    def poll_working(self) -> None:
        """Poll every order ict-trader still considers working (an OCO's stop leg through its
        parent until Alpaca's id for it is known)."""
        for parent in list(self._legs_pending):
            self._learn_legs(parent)
        for client_order_id, tracked in list(self._orders.items()):
            if not tracked.final and client_order_id not in self._legs_waiting():
                self.poll_order(client_order_id)

    def _legs_waiting(self) -> set[str]:
        """Our stop legs whose Alpaca ids are not known yet (a lookup by our id would 404)."""
        return set(self._legs_pending.values())

    def working(self) -> list[str]:
        deferred = [
            request.client_order_id
            for order, _, stop_leg in self._deferred.values()
            for request in (order, stop_leg)
            if request is not None
        ]
        return [cid for cid, tracked in self._orders.items() if not tracked.final] + deferred

    def _deferred_holding(self, client_order_id: str) -> str | None:
        """The deferred order that is, or carries as its OCO stop leg, `client_order_id`."""
        for key, (_, _, stop_leg) in self._deferred.items():
            if client_order_id == key or (stop_leg and stop_leg.client_order_id == client_order_id):
                return key
        return None

    def adopt(self, order: OrderRequest, broker_order: Order | None) -> None:
        """Resume tracking an order from the ledger after a restart (no new submission)."""
        with self._lock:
            tracked = self._orders.setdefault(order.client_order_id, _Tracked(order))
            tracked.accepted = True
        if broker_order is not None:
            self.observe(broker_order)

    def adopt_orders(self, orders: list[OrderRequest]) -> list[OrderRequest]:
        """After a restart, track the ledger's working orders again by client order id; an
        OCO's stop leg, which Alpaca knows only by its own ids, is found through its parent
        (the take-profit of the same group) read with `nested=true`. Submits nothing.

        Returns the orders Alpaca has never heard of (the process died between recording the
        intent and the POST): they are not tracked; the caller decides whether to send them."""
        stops = {o.oco_group: o for o in orders if o.leg is Leg.STOP and o.oco_group}
        unplaced: list[OrderRequest] = []
        for order in orders:
            if order.leg is Leg.STOP and order.oco_group:
                continue
            found = self.lookup(order.client_order_id)
            if found is None:
                unplaced.append(order)
                continue
            self.adopt(order, found)
        placed_targets = {o.client_order_id for o in orders} - {o.client_order_id for o in unplaced}
        for group, stop in stops.items():
            if _oco_parent_id(stop) not in placed_targets and _oco_parent_id(stop) in {
                o.client_order_id for o in unplaced
            }:
                unplaced.append(stop)  # the OCO never reached Alpaca: neither did its stop
                continue
            self.adopt(stop, None)
            parent = _oco_parent_id(stop)
            if parent not in self._orders:  # the target is final in the ledger: track it too
                # A placeholder that reports nothing: its fills are in the ledger already.
                self._orders[parent] = _Tracked(
                    replace(stop, client_order_id=parent),
                    filled_qty=stop.qty,
                    accepted=True,
                    final=True,
                )
                log.debug("OCO group %s: parent %s tracked for its leg", group, parent)
            self._legs_pending[parent] = stop.client_order_id
            self._learn_legs(parent)
        return unplaced

    # ------------------------------------------------------------------ internals

    def _resolve_unknown(self, order: OrderRequest, why: str) -> bool:
        """After an ambiguous submit failure: True if the order exists (then it is tracked)."""
        log.warning(
            "submit of %s had an unknown outcome (%s); looking it up", order.client_order_id, why
        )
        found = self.lookup(order.client_order_id)
        if found is None:
            return False
        self.observe(found)
        return True

    def lookup(self, client_order_id: str) -> Order | None:
        leg_id = self._leg_ids.get(client_order_id)
        if leg_id is not None:  # an OCO stop leg: Alpaca knows it by its own ids only
            found_leg = self.read(lambda: self.trading.get_order_by_id(leg_id))
            assert isinstance(found_leg, Order)
            return found_leg
        try:
            found = self.read(lambda: self.trading.get_order_by_client_id(client_order_id))
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise
        assert isinstance(found, Order)
        return found

    def read(self, call: Callable[[], T]) -> T:
        """A read with bounded retries and backoff on 429/5xx/timeouts; other errors raise."""
        for attempt in range(1, self.read_attempts + 1):
            try:
                return call()
            except APIError as exc:
                if exc.status_code not in _TRANSIENT_STATUS or attempt == self.read_attempts:
                    raise
            except requests.RequestException:
                if attempt == self.read_attempts:
                    raise
            self._backoff(attempt)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(self.backoff_seconds * 2 ** (attempt - 1), 8.0))

    def _reject(self, order: OrderRequest, reason: str) -> None:
        self.errors.append(f"{order.client_order_id}: {reason}")
        assert order.created_at is not None
        with self._lock:
            rejected = [order.client_order_id]
            leg = self._legs_pending.pop(order.client_order_id, None)
            if leg is not None:
                rejected.append(leg)  # an OCO pair is refused as a whole
            for client_order_id in rejected:
                self._orders[client_order_id].final = True
                self._events.put(OrderRejected(order.created_at, client_order_id, reason))


def _oco_parent_id(stop: OrderRequest) -> str:
    """The client id of the take-profit an OCO stop leg travelled with (same trade, `target`)."""
    suffix = f"-{Leg.STOP.value}"
    assert stop.client_order_id.endswith(suffix), stop.client_order_id
    return stop.client_order_id[: -len(suffix)] + f"-{Leg.TARGET.value}"


def _api_message(exc: APIError) -> str:
    """The error's message, whatever shape its body has (JSON with or without a code, or text)."""
    try:
        return str(exc.message)
    except (KeyError, ValueError):
        return str(exc)[:200]


def _to_alpaca(order: OrderRequest) -> MarketOrderRequest | LimitOrderRequest | StopOrderRequest:
    option = instrument_of(order.symbol).is_option
    common: dict[str, Any] = {
        "symbol": order.symbol,
        "qty": order.qty,
        "side": OrderSide.BUY if order.side is Side.BUY else OrderSide.SELL,
        # Alpaca takes only `day` on an option ("order_time_in_force provided not supported")
        "time_in_force": TimeInForce.DAY if option else TimeInForce(order.time_in_force),
        "client_order_id": order.client_order_id,
    }
    if order.position_intent is not None:
        common["position_intent"] = PositionIntent(order.position_intent)
    if order.type is OrderType.MARKET:
        return MarketOrderRequest(**common)
    if order.type is OrderType.LIMIT:
        assert order.limit_price is not None
        limit = _option_limit(order.limit_price, order.side) if option else order.limit_price
        return LimitOrderRequest(limit_price=float(limit), **common)
    assert order.stop_price is not None
    return StopOrderRequest(stop_price=float(order.stop_price), **common)


def _option_limit(price: Decimal, side: Side) -> Decimal:
    """An option limit on the cent grid (Alpaca refuses more than two decimals), rounded
    towards the market — a buy up, a sell down — so a marketable limit stays marketable."""
    return price.quantize(CENT, rounding=ROUND_CEILING if side is Side.BUY else ROUND_FLOOR)


def _to_alpaca_oco(target: OrderRequest, stop: OrderRequest) -> LimitOrderRequest:
    """One OCO exit: the take-profit limit is the parent, the stop its leg (Alpaca's shape)."""
    assert target.limit_price is not None and stop.stop_price is not None
    return LimitOrderRequest(
        symbol=target.symbol,
        qty=target.qty,
        side=OrderSide.BUY if target.side is Side.BUY else OrderSide.SELL,
        time_in_force=TimeInForce(target.time_in_force),
        client_order_id=target.client_order_id,
        order_class=OrderClass.OCO,
        take_profit=TakeProfitRequest(limit_price=float(target.limit_price)),
        stop_loss=StopLossRequest(stop_price=float(stop.stop_price)),
    )


def _from_alpaca(order: Order) -> OrderRequest:
    """An OrderRequest describing an order ict-trader did not place (for reports only)."""
    kind = OrderType(order.type.value) if order.type else OrderType.MARKET
    return OrderRequest(
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=Side(order.side.value) if order.side else Side.BUY,
        qty=int(Decimal(str(order.qty or 0))),
        type=kind,
        trade_id="",
        profile="",
        leg=Leg.ENTRY,
        limit_price=Decimal(str(order.limit_price)) if order.limit_price else None,
        stop_price=Decimal(str(order.stop_price)) if order.stop_price else None,
        created_at=order.created_at,
    )


def _broker_order(request: OrderRequest, order: Order) -> BrokerOrder:
    return BrokerOrder(
        request=request,
        broker_order_id=str(order.id),
        status=_STATUS_MAP.get(order.status.value, OrderStatus.ACCEPTED),
        filled_qty=int(Decimal(str(order.filled_qty or 0))),
        filled_avg_price=Decimal(str(order.filled_avg_price)) if order.filled_avg_price else None,
        submitted_at=order.submitted_at,
    )
