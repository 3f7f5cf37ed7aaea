"""The state of one emulated Alpaca paper account, driven by a replayed bar clock.

Pure and synchronous (the server wraps it): orders, positions, cash, the simulated clock and the
trade updates each change produces. Paper semantics follow Alpaca's documentation and observed
behaviour (see the research notes in shared/research/alpaca_api.md):

- ids are UUIDs; client order ids are unique forever (422 40010001) and at most 48 characters;
- status lifecycle pending_new -> new -> (partially_filled) -> filled | canceled | expired;
  orders sent while the market is closed are `accepted` and wait for the next open;
- the open closing orders of a position *hold* its shares: selling more than is available
  answers 403 "insufficient qty available for order";
- an order opposite to an open order on the same symbol is refused as a potential wash trade;
- opening orders are checked against buying power (403 "insufficient buying power");
- DAY orders expire at the session close.

Fill model (an emulator choice, documented because Alpaca fills against live quotes we do not
have): a market order fills at once at the open of the bar in progress (the latest price),
worsened by `slippage_bps`; resting limit and stop orders fill when a completed bar's range
reaches them (at the bar's open if it gapped through), stops first when both legs of an OCO
pair are reached; with `partial_fill_rate` some fills arrive in two executions.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from ict_trader.bars import Bar
from ict_trader.calendar import NEW_YORK, NyseCalendar, Session

ACCOUNT_ID = "2f7f6a3c-1b0e-4d4f-9a55-6f2c1c9b2a10"
QQQ_ASSET_ID = "b6d1aa75-5c9c-4353-a305-9e2caa1925ab"
MAX_CLIENT_ORDER_ID = 48
_ONE_MINUTE = timedelta(minutes=1)
_FINAL = {"filled", "canceled", "expired", "rejected", "replaced"}
_CENT = Decimal("0.01")


class ApiError(Exception):
    """An HTTP error answer: status and the JSON body Alpaca would send."""

    def __init__(self, status: int, code: int | None, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, **extra}
        if code is not None:
            self.body = {"code": code, **self.body}


@dataclass
class EmulatorOptions:
    """Paper behaviour switches and injected faults (all off by default)."""

    starting_cash: Decimal = Decimal(100_000)
    multiplier: Decimal = Decimal(2)
    slippage_bps: Decimal = Decimal(0)
    wash_trade_check: bool = True
    partial_fill_rate: float = 0.0
    reject_rate: float = 0.0  # orders rejected after acceptance (a `rejected` update)
    duplicate_fill_rate: float = 0.0  # fill updates sent twice with the same execution id
    seed: int = 7


@dataclass
class EmuOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: int
    type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    created_at: datetime
    status: str = "pending_new"
    active: bool = True  # bracket legs wait, inactive, until their entry has filled
    filled_qty: int = 0
    filled_value: Decimal = Decimal(0)
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    order_class: str = "simple"
    oco_group: str | None = None
    legs: list[EmuOrder] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status not in _FINAL

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    def as_json(self) -> dict[str, Any]:
        """The order as Alpaca's spec (`Order`) writes it. `expires_at` and `position_intent` are
        left out, as in the spec's own example: the spec types them as a string and an enum
        (never null), and the emulator does not track either."""
        avg = (self.filled_value / self.filled_qty) if self.filled_qty else None
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at or self.created_at),
            "submitted_at": _ts(self.created_at),
            "filled_at": _ts(self.filled_at) if self.filled_at else None,
            "expired_at": _ts(self.expired_at) if self.expired_at else None,
            "canceled_at": _ts(self.canceled_at) if self.canceled_at else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": QQQ_ASSET_ID,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": str(self.qty),
            "filled_qty": str(self.filled_qty),
            "filled_avg_price": _money(avg) if avg is not None else None,
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": str(self.limit_price) if self.limit_price is not None else None,
            "stop_price": str(self.stop_price) if self.stop_price is not None else None,
            "status": self.status,
            "extended_hours": False,
            "legs": [leg.as_json() for leg in self.legs] or None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _money(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros, as Alpaca writes amounts."""
    text = format(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _price(value: float) -> Decimal:
    return Decimal(repr(value))


def _reached(order: EmuOrder, high: Decimal, low: Decimal) -> bool:
    """Whether prices spanning [low, high] reach a resting limit or stop order."""
    if order.type == "limit" and order.limit_price is not None:
        return high >= order.limit_price if order.side == "sell" else low <= order.limit_price
    if order.type == "stop" and order.stop_price is not None:
        return low <= order.stop_price if order.side == "sell" else high >= order.stop_price
    return False


class PaperAccount:
    """One paper account over a replay of `bars` (a single symbol's regular-hours bars)."""

    def __init__(
        self,
        bars: Sequence[Bar],
        calendar: NyseCalendar,
        symbol: str = "QQQ",
        options: EmulatorOptions | None = None,
    ) -> None:
        if not bars:
            raise ValueError("the emulator needs at least one bar to replay")
        self.bars = list(bars)
        self.calendar = calendar
        self.symbol = symbol
        self.options = options or EmulatorOptions()
        self._random = random.Random(self.options.seed)
        self.cursor = 0  # index of the bar in progress: its open is the current price
        self.cash = self.options.starting_cash
        self.position = 0
        self.cost_basis = Decimal(0)  # signed: sum of qty x price of the open position
        self.orders: dict[str, EmuOrder] = {}
        self.by_client_id: dict[str, EmuOrder] = {}
        self.updates: list[dict[str, Any]] = []  # trade updates not yet streamed
        self._activities: list[dict[str, Any]] = []
        self._sequence = 0
        self._executions = 0
        self._last_equity = self.options.starting_cash
        self.finished = False

    # ------------------------------------------------------------------ clock

    @property
    def current_bar(self) -> Bar:
        return self.bars[min(self.cursor, len(self.bars) - 1)]

    @property
    def now(self) -> datetime:
        """Simulated time: the open of the bar in progress (its close once the replay ends)."""
        if self.finished:
            return self.bars[-1].time + _ONE_MINUTE
        return self.current_bar.time

    def session(self) -> Session | None:
        return self.calendar.session_at(self.current_bar.time)

    def market_open(self) -> bool:
        return not self.finished

    def complete_bar(self) -> Bar:
        """The bar in progress completes: resting orders it reached fill, then it is published
        (returned) and the next bar opens — gapping through resting orders fills them at the open;
        at a session change DAY orders expire first."""
        bar = self.current_bar
        self._fill_resting(bar)
        self._last_close = bar.close
        next_index = self.cursor + 1
        if next_index >= len(self.bars):
            self._expire_day_orders(bar.time + _ONE_MINUTE)
            self.finished = True
            self.cursor = len(self.bars)
            return bar
        following = self.bars[next_index]
        if following.time.date() != bar.time.date():
            self._expire_day_orders(bar.time + _ONE_MINUTE)
            self._last_equity = self.equity()
        self.cursor = next_index
        self._open_bar(following)
        return bar

    # ------------------------------------------------------------------ REST: account & market

    def mark(self) -> Decimal:
        if self.finished:
            return _price(self.bars[-1].close)
        return _price(self.current_bar.open)

    def equity(self) -> Decimal:
        return self.cash + self.position * self.mark()

    def buying_power(self) -> Decimal:
        exposure = abs(self.position * self.mark())
        reserved = sum(
            (o.remaining * (o.limit_price or self.mark()) for o in self._opening_orders()),
            Decimal(0),
        )
        return max(self.equity() * self.options.multiplier - exposure - reserved, Decimal(0))

    def account_json(self) -> dict[str, Any]:
        equity = self.equity()
        market_value = self.position * self.mark()
        return {
            "id": ACCOUNT_ID,
            "account_number": "PA3EMU000001",
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": _money(self.buying_power()),
            "regt_buying_power": _money(self.buying_power()),
            "non_marginable_buying_power": _money(max(self.cash, Decimal(0))),
            "options_buying_power": _money(max(self.cash, Decimal(0))),
            "cash": _money(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": _money(equity),
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2024-01-02T14:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": str(self.options.multiplier),
            "shorting_enabled": True,
            "equity": _money(equity),
            "last_equity": _money(self._last_equity),
            "long_market_value": _money(max(market_value, Decimal(0))),
            "short_market_value": _money(min(market_value, Decimal(0))),
            "position_market_value": _money(abs(market_value)),
            "initial_margin": _money(abs(market_value) / 2),
            "maintenance_margin": _money(abs(market_value) * Decimal("0.3")),
            "last_maintenance_margin": "0",
            "sma": "0",
            "options_approved_level": 3,
            "options_trading_level": 3,
        }

    def clock_json(self) -> dict[str, Any]:
        now = self.now
        session = None if self.finished else self.calendar.session_at(self.current_bar.time)
        is_open = session is not None and session.open <= now < session.close
        upcoming = self._next_sessions(now)
        next_open = next((s.open for s in upcoming if s.open > now), None)
        next_close = next((s.close for s in upcoming if s.close > now), None)
        assert next_open is not None and next_close is not None
        return {
            "timestamp": now.astimezone(NEW_YORK).isoformat(),
            "is_open": is_open,
            "next_open": next_open.astimezone(NEW_YORK).isoformat(),
            "next_close": next_close.astimezone(NEW_YORK).isoformat(),
        }

    def _next_sessions(self, now: datetime) -> list[Session]:
        day = now.astimezone(NEW_YORK).date()
        found = []
        for offset in range(0, 15):
            candidate = day + timedelta(days=offset)
            if candidate > self.calendar.end:
                break
            session = self.calendar.session_on(candidate)
            if session is not None:
                found.append(session)
            if len(found) >= 3:
                break
        return found

    def calendar_json(self, start: date | None, end: date | None) -> list[dict[str, str]]:
        out = []
        for session in self.calendar.sessions():
            if (start and session.day < start) or (end and session.day > end):
                continue
            out.append(
                {
                    "date": session.day.isoformat(),
                    "open": session.open.astimezone(NEW_YORK).strftime("%H:%M"),
                    "close": session.close.astimezone(NEW_YORK).strftime("%H:%M"),
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": (session.day + timedelta(days=1)).isoformat(),
                }
            )
        return out

    def asset_json(self, symbol: str) -> dict[str, Any]:
        if symbol.upper() != self.symbol:
            raise ApiError(404, 40410000, f'asset "{symbol}" not found')
        return {
            "id": QQQ_ASSET_ID,
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": self.symbol,
            "name": "Invesco QQQ Trust, Series 1",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "easy_to_borrow": True,
            "borrow_status": "easy_to_borrow",
            "fractionable": True,
            "attributes": ["has_options"],
        }

    # ------------------------------------------------------------------ REST: orders

    def submit(self, payload: dict[str, Any]) -> EmuOrder:
        """POST /v2/orders: validate like Alpaca, accept, and fill what is marketable."""
        order = self._validate(payload)
        self._register(order)
        if payload.get("order_class") == "oco":
            self._add_stop_leg(order, payload)
        elif payload.get("order_class") == "bracket":
            self._add_bracket_legs(order, payload)
        self._update("pending_new", order, execution=False)
        if self._chance(self.options.reject_rate):
            order.status = "rejected"
            self._update("rejected", order, execution=False)
            return order
        order.status = "new"
        self._update("new", order, execution=False)
        if order.type == "market":
            self._fill(order, order.remaining, self._slipped(self.mark(), order.side))
        return order

    def _validate(self, payload: dict[str, Any]) -> EmuOrder:
        symbol = str(payload.get("symbol", "")).upper()
        if symbol != self.symbol:
            raise ApiError(422, 42210000, f'asset "{symbol}" not found')
        side = str(payload.get("side", ""))
        if side not in {"buy", "sell"}:
            raise ApiError(422, 40010001, f"invalid side {side!r}")
        kind = str(payload.get("type", ""))
        if kind not in {"market", "limit", "stop"}:
            raise ApiError(422, 40010001, f"order type {kind!r} is not supported by the emulator")
        order_class = str(payload.get("order_class") or "simple")
        if order_class not in {"simple", "oco", "bracket"}:
            raise ApiError(422, 40010001, f"order_class {order_class!r} is not emulated yet")
        if order_class == "oco":
            payload = self._oco_parent_payload(payload, kind)
        elif order_class == "bracket":
            self._check_bracket(payload, kind)
        qty = self._number(payload.get("qty"), "qty")
        if qty is None:
            raise ApiError(422, 40010001, "qty or notional is required")
        if qty <= 0:
            raise ApiError(422, 40010001, "qty must be > 0")
        if qty != qty.to_integral_value():
            raise ApiError(422, 40010001, "fractional orders are not emulated")
        limit = self._number(payload.get("limit_price"), "limit_price")
        stop = self._number(payload.get("stop_price"), "stop_price")
        if kind == "market" and (limit is not None or stop is not None):
            raise ApiError(422, 40010001, "market orders require no stop or limit price")
        if kind == "limit" and (limit is None or limit <= 0):
            raise ApiError(422, 40010001, "limit price must be > 0")
        if kind == "stop" and (stop is None or stop <= 0):
            raise ApiError(422, 40010001, "stop price must be > 0")
        for name, value in (("limit_price", limit), ("stop_price", stop)):
            if value is not None and value >= 1 and value != value.quantize(_CENT):
                raise ApiError(
                    422,
                    42210000,
                    f"invalid {name} {value}. sub-penny increment does not fulfill minimum "
                    "pricing criteria",
                )
        tif = str(payload.get("time_in_force", "day"))
        if tif not in {"day", "gtc"}:
            raise ApiError(422, 40010001, f"time_in_force {tif!r} is not emulated")
        client_id = payload.get("client_order_id") or str(uuid.uuid4())
        client_id = str(client_id)
        if len(client_id) > MAX_CLIENT_ORDER_ID:
            raise ApiError(
                422,
                40010001,
                f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters",
            )
        if client_id in self.by_client_id:
            raise ApiError(422, 40010001, "client_order_id must be unique")
        shares = int(qty)
        self._check_quantity_and_power(side, shares, limit)
        if self.options.wash_trade_check:
            opposite = [o for o in self.orders.values() if o.open and o.active and o.side != side]
            if opposite:
                raise ApiError(403, 40310000, "potential wash trade detected. use complex orders")
        return EmuOrder(
            id="",
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            qty=shares,
            type=kind,
            time_in_force=tif,
            limit_price=limit,
            stop_price=stop,
            created_at=self.now,
        )

    def _held(self, side: str) -> int:
        """Shares held by open closing orders; an OCO pair holds its quantity once."""
        groups: dict[str, int] = {}
        for order in self.orders.values():
            if order.open and order.side == side:
                key = order.oco_group or order.id
                groups[key] = max(groups.get(key, 0), order.remaining)
        return sum(groups.values())

    def _register(self, order: EmuOrder) -> None:
        self._sequence += 1
        order.id = str(uuid.UUID(int=(0xE3 << 120) | self._sequence))
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order

    def _oco_parent_payload(self, payload: dict[str, Any], kind: str) -> dict[str, Any]:
        """OCO = an exit pair on an open position: the take-profit limit is the parent order."""
        if kind != "limit":
            raise ApiError(422, 40010001, "oco orders must be limit orders")
        take_profit = payload.get("take_profit") or {}
        stop_loss = payload.get("stop_loss") or {}
        if take_profit.get("limit_price") is None:
            raise ApiError(422, 40010001, "oco orders require take_profit.limit_price")
        if stop_loss.get("stop_price") is None:
            raise ApiError(422, 40010001, "oco orders require stop_loss.stop_price")
        if not self._is_closing(str(payload.get("side", ""))):
            raise ApiError(422, 42210000, "oco orders must be exit orders for an open position")
        return {**payload, "limit_price": take_profit["limit_price"]}

    def _check_bracket(self, payload: dict[str, Any], kind: str) -> None:
        """Bracket = an entry (market or limit) with a take-profit and a stop-loss exit."""
        if kind not in {"market", "limit"}:
            raise ApiError(422, 42210000, "bracket orders must be market or limit orders")
        take = (payload.get("take_profit") or {}).get("limit_price")
        stop = (payload.get("stop_loss") or {}).get("stop_price")
        if take is None or stop is None:
            raise ApiError(
                422, 40010001, "bracket orders require take_profit.limit_price and stop_price"
            )
        take_price = self._number(take, "take_profit.limit_price")
        stop_price = self._number(stop, "stop_loss.stop_price")
        assert take_price is not None and stop_price is not None
        buying = payload.get("side") == "buy"
        if (take_price <= stop_price) if buying else (take_price >= stop_price):
            raise ApiError(
                422, 42210000, "take_profit.limit_price must be beyond stop_loss.stop_price"
            )

    def _add_bracket_legs(self, parent: EmuOrder, payload: dict[str, Any]) -> None:
        """Two exit legs, inactive (`held`) until the entry fills, then one-cancels-other."""
        exit_side = "sell" if parent.side == "buy" else "buy"
        take = self._number(payload["take_profit"]["limit_price"], "take_profit.limit_price")
        stop = self._number(payload["stop_loss"]["stop_price"], "stop_loss.stop_price")
        for kind, limit, stop_price in (("limit", take, None), ("stop", None, stop)):
            leg = EmuOrder(
                id="",
                client_order_id=str(uuid.UUID(int=(0xC2 << 120) | (self._sequence + 1))),
                symbol=parent.symbol,
                side=exit_side,
                qty=parent.qty,
                type=kind,
                time_in_force=parent.time_in_force,
                limit_price=limit,
                stop_price=stop_price,
                created_at=parent.created_at,
                status="held",
                order_class="bracket",
                active=False,
            )
            self._register(leg)
            leg.oco_group = f"legs-{parent.id}"
            parent.legs.append(leg)
        parent.order_class = "bracket"

    def _activate_legs(self, parent: EmuOrder) -> None:
        """The entry filled completely: the take-profit goes live (`new`), the stop `held`."""
        for leg in parent.legs:
            if leg.open and not leg.active:
                leg.active = True
                if leg.type == "limit":
                    leg.status = "new"
                    self._update("new", leg, execution=False)

    def _add_stop_leg(self, parent: EmuOrder, payload: dict[str, Any]) -> None:
        stop = self._number(payload["stop_loss"]["stop_price"], "stop_loss.stop_price")
        assert stop is not None
        leg = EmuOrder(
            id="",
            client_order_id=str(uuid.UUID(int=(0xC1 << 120) | (self._sequence + 1))),
            symbol=parent.symbol,
            side=parent.side,
            qty=parent.qty,
            type="stop",
            time_in_force=parent.time_in_force,
            limit_price=None,
            stop_price=stop,
            created_at=parent.created_at,
            status="new",
            order_class="oco",
        )
        self._register(leg)
        parent.order_class = "oco"
        parent.oco_group = leg.oco_group = parent.id
        parent.legs.append(leg)

    def _check_quantity_and_power(self, side: str, qty: int, limit: Decimal | None) -> None:
        if self._is_closing(side):
            held = self._held(side)
            available = abs(self.position) - held
            if qty > available:
                raise ApiError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {qty}, "
                    f"available: {max(available, 0)})",
                    available=str(max(available, 0)),
                    existing_qty=str(abs(self.position)),
                    held_for_orders=str(held),
                    symbol=self.symbol,
                )
            return
        cost = qty * (limit or self.mark())
        if cost > self.buying_power():
            raise ApiError(
                403,
                40310000,
                "insufficient buying power",
                buying_power=_money(self.buying_power()),
                cost_basis=_money(cost),
            )

    @staticmethod
    def _number(value: Any, name: str) -> Decimal | None:
        if value is None:
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise ApiError(422, 40010001, f"invalid {name}") from None

    def get(self, order_id: str) -> EmuOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, 40410000, "order not found")
        return order

    def get_by_client_id(self, client_order_id: str) -> EmuOrder:
        order = self.by_client_id.get(client_order_id)
        if order is None:
            raise ApiError(404, 40410000, f"order not found for {client_order_id}")
        return order

    def list_orders(
        self, status: str = "open", limit: int = 50, direction: str = "desc"
    ) -> list[EmuOrder]:
        chosen = [
            o for o in self.orders.values() if status == "all" or (status == "open") == o.open
        ]
        chosen.sort(key=lambda o: (o.created_at, o.id), reverse=direction == "desc")
        return chosen[:limit]

    def cancel(self, order_id: str) -> None:
        """Cancel an order; canceling any order of an OCO group cancels the whole group, and
        canceling a bracket's entry cancels its legs."""
        order = self.get(order_id)
        if not order.open:
            raise ApiError(422, 42210000, "order is not cancelable")
        group = [
            o
            for o in self.orders.values()
            if o.open
            and (
                o is order
                or o in order.legs
                or (order.oco_group is not None and o.oco_group == order.oco_group)
            )
        ]
        for member in group:
            member.status = "canceled"
            member.canceled_at = self.now
            self._update("canceled", member, execution=False)

    def cancel_all(self) -> list[dict[str, Any]]:
        results = []
        for order in list(self.orders.values()):
            if order.open:
                self.cancel(order.id)
                results.append({"id": order.id, "status": 200, "body": order.as_json()})
        return results

    # ------------------------------------------------------------------ REST: positions

    def positions_json(self) -> list[dict[str, Any]]:
        return [] if self.position == 0 else [self.position_json(self.symbol)]

    def position_json(self, symbol: str) -> dict[str, Any]:
        if symbol.upper() != self.symbol or self.position == 0:
            raise ApiError(404, 40410000, "position does not exist")
        qty = self.position
        side = "buy" if qty < 0 else "sell"
        held = self._held(side)
        mark = self.mark()
        avg = self.cost_basis / qty
        market_value = qty * mark
        unrealized = market_value - self.cost_basis
        return {
            "asset_id": QQQ_ASSET_ID,
            "symbol": self.symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "qty": str(qty),
            "qty_available": str((abs(qty) - held) * (1 if qty > 0 else -1)),
            "avg_entry_price": _money(avg),
            "side": "long" if qty > 0 else "short",
            "market_value": _money(market_value),
            "cost_basis": _money(self.cost_basis),
            "unrealized_pl": _money(unrealized),
            "unrealized_plpc": str((unrealized / abs(self.cost_basis)).quantize(Decimal("1e-10"))),
            "unrealized_intraday_pl": _money(unrealized),
            "unrealized_intraday_plpc": str(
                (unrealized / abs(self.cost_basis)).quantize(Decimal("1e-10"))
            ),
            "current_price": _money(mark),
            "lastday_price": _money(mark),
            "change_today": "0",
        }

    def close_position(self, symbol: str, qty: int | None = None) -> EmuOrder:
        if symbol.upper() != self.symbol or self.position == 0:
            raise ApiError(404, 40410000, "position does not exist")
        shares = qty or abs(self.position)
        side = "sell" if self.position > 0 else "buy"
        return self.submit({"symbol": symbol, "qty": shares, "side": side, "type": "market"})

    # ------------------------------------------------------------------ market data

    def bars_page(
        self, start: datetime | None, end: datetime | None, limit: int, page_token: str | None
    ) -> tuple[list[Bar], str | None]:
        """Completed bars in [start, end], `limit` per page; never a bar still in progress."""
        available = self.bars[: self.cursor]
        chosen = [
            b
            for b in available
            if (start is None or b.time >= start) and (end is None or b.time <= end)
        ]
        offset = int(page_token) if page_token else 0
        page = chosen[offset : offset + limit]
        following = offset + limit
        return page, (str(following) if following < len(chosen) else None)

    def latest_bar(self) -> Bar | None:
        return self.bars[self.cursor - 1] if self.cursor > 0 else None

    # ------------------------------------------------------------------ internals

    def _opening_orders(self) -> list[EmuOrder]:
        return [o for o in self.orders.values() if o.open and not self._is_closing(o.side)]

    def _is_closing(self, side: str) -> bool:
        return (side == "sell" and self.position > 0) or (side == "buy" and self.position < 0)

    def _open_bar(self, bar: Bar) -> None:
        """A new bar opens: resting orders its open gapped through fill at the open."""
        open_ = _price(bar.open)
        for order in self._resting():
            if _reached(order, open_, open_):
                price = open_ if order.type == "limit" else self._slipped(open_, order.side)
                self._fill(order, order.remaining, price)

    def _fill_resting(self, bar: Bar) -> None:
        high, low = _price(bar.high), _price(bar.low)
        resting = sorted(self._resting(), key=lambda o: o.type != "stop")  # stops first
        for order in resting:
            if not order.open or not _reached(order, high, low):
                continue
            if order.type == "stop":
                assert order.stop_price is not None
                self._fill(order, order.remaining, self._slipped(order.stop_price, order.side))
            else:
                assert order.limit_price is not None
                self._fill(order, order.remaining, order.limit_price)

    def _resting(self) -> list[EmuOrder]:
        return [
            o for o in self.orders.values() if o.open and o.active and o.type in {"limit", "stop"}
        ]

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def _expire_day_orders(self, when: datetime) -> None:
        for order in list(self.orders.values()):
            if order.open and order.time_in_force == "day":
                order.status = "expired"
                order.expired_at = when
                order.updated_at = when
                self._update("expired", order, execution=False, when=when)

    def _slipped(self, price: Decimal, side: str) -> Decimal:
        bps = self.options.slippage_bps
        if not bps:
            return price
        factor = 1 + bps / 10_000 if side == "buy" else 1 - bps / 10_000
        return (price * factor).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)

    def _fill(self, order: EmuOrder, qty: int, price: Decimal) -> None:
        parts = [qty]
        if qty > 1 and self._chance(self.options.partial_fill_rate):
            first = self._random.randint(1, qty - 1)
            parts = [first, qty - first]
        for part in parts:
            signed = part if order.side == "buy" else -part
            self._apply_position(signed, price)
            self.cash -= signed * price
            order.filled_qty += part
            order.filled_value += price * part
            order.updated_at = self.now
            complete = order.filled_qty == order.qty
            order.status = "filled" if complete else "partially_filled"
            if complete:
                order.filled_at = self.now
            event = "fill" if complete else "partial_fill"
            update = self._update(event, order, execution=True, price=price, qty=part)
            self._activities.append(
                {
                    "id": update["execution_id"],
                    "activity_type": "FILL",
                    "transaction_time": update["timestamp"],
                    "type": event,
                    "price": str(price),
                    "qty": str(part),
                    "side": order.side,
                    "symbol": order.symbol,
                    "leaves_qty": str(order.remaining),
                    "order_id": order.id,
                    "cum_qty": str(order.filled_qty),
                    "order_status": order.status,
                }
            )
            if self._chance(self.options.duplicate_fill_rate):
                self.updates.append(dict(update))
        if order.status == "filled" and order.order_class == "bracket" and order.legs:
            self._activate_legs(order)
        if not order.open and order.oco_group:
            for other in self.orders.values():
                if other.open and other.oco_group == order.oco_group:
                    self.cancel(other.id)

    def _apply_position(self, signed: int, price: Decimal) -> None:
        before = self.position
        after = before + signed
        if before == 0 or (before > 0) == (signed > 0):
            self.cost_basis += signed * price
        elif (before > 0) != (after > 0) and after != 0:
            # flipped through zero: the remainder opens at this price
            self.cost_basis = after * price
        else:
            self.cost_basis = self.cost_basis * after / before if after else Decimal(0)
        self.position = after

    def _update(
        self,
        event: str,
        order: EmuOrder,
        *,
        execution: bool,
        price: Decimal | None = None,
        qty: int | None = None,
        when: datetime | None = None,
    ) -> dict[str, Any]:
        moment = when or self.now
        order.updated_at = moment
        execution_id = None
        if execution or event == "new":
            self._executions += 1
            execution_id = str(uuid.UUID(int=(0xEE << 120) | self._executions))
        update = {
            "event": event,
            "execution_id": execution_id,
            "order": order.as_json(),
            "timestamp": _ts(moment),
            "position_qty": str(self.position) if execution else None,
            "price": str(price) if price is not None else None,
            "qty": str(qty) if qty is not None else None,
        }
        self.updates.append(update)
        return update

    def fill_activities(self) -> list[dict[str, Any]]:
        """Account activities of type FILL, as /v2/account/activities/FILL lists them."""
        return list(self._activities)

    def drain_updates(self) -> list[dict[str, Any]]:
        drained, self.updates = self.updates, []
        return drained
