"""The state of one emulated Alpaca paper account, driven by a replayed bar clock.

Pure and synchronous (the server wraps it and decides *when* pending work settles): orders,
positions, cash, the simulated clock and the trade updates each change produces. Semantics follow
Alpaca's documentation and reported behaviour; docs/alpaca-fidelity.md lists the
sources ([DOCS] alpaca-docs content/trading/orders.md and paper-trading.md, [OAS] the OpenAPI
spec, [PY] alpaca-py issues, [LEAN] Lean.Brokerages.Alpaca, [ATA] alpaca-trade-api-python):

- several symbols at once (`emulator.assets`): positions, held shares, wash-trade checks, fills
  and OCO/bracket groups are per symbol, each filled at its own symbol's prices; the account's
  equity, buying power and market values sum every position [OAS Account, Position]; an order
  for a symbol the emulator does not serve is refused as an unknown asset, 422 42210000
  `asset "X" not found` (alpaca_api.md §3.2); DELETE /v2/positions closes each position and
  answers each on its own, 207 [OAS];
- ids are UUIDs; client order ids are unique forever (422 40010001) and at most 48 characters;
- POST /v2/orders answers `pending_new` while the market is open and never a fill [PY
  test_order_routes, DOCS]; the order is routed when pending work *settles* (a few milliseconds
  later, or at the next bar — the server decides): `new` (or a late `rejected`, `reject_rate`),
  then fills as the paper rules below allow, each with its trade update;
- orders sent while the market is closed — outside regular hours (the pre- and after-market bars
  of an extended-hours file), between sessions (`closed_between_sessions`), after the replay —
  answer `accepted` and wait for the next open, where they are routed (`pending_new`, `new`; a
  market order fills at the open's quote) [DOCS orders.md]; nothing fills on a bar outside
  regular hours (no order here is `extended_hours`);
- OCO and bracket exits: the stop leg is `held` with its own `held` event and never a `new`
  [LEAN #74, DOCS]; its stop must be at least $0.01 beyond the base price — the current price
  and the take-profit (OCO) or entry limit (bracket) — else 422 and nothing is created [DOCS
  "Threshold on stop price"]; a partial fill of one leg shrinks the other to the remaining
  quantity [DOCS]; when the take-profit fills the stop is `canceled` [DOCS]; when the stop fills
  the take-profit is reported `replaced`, as users observe [PY #198] (the docs say only
  "canceled": `sibling_after_stop` switches);
- `legs` appear only in nested answers: the POST answer (the spec's bracket example) and
  GET with `nested=true`; otherwise `legs` is null and each leg is an independent order [OAS,
  DOCS]; nested lists show legs only under their parent [alpaca-trade-api-js #80/#87]; `held`
  legs are not listed as open (they count as closed) [ATA #322];
- cancels pass through `pending_cancel` and become `canceled` when pending work settles, each
  with its event; canceling any order of an OCO/bracket group cancels the group [DOCS];
- DAY orders expire at the session close (`expired`), when the replay leaves a regular session
  (not at a change of date) [LEAN #50]; GTC orders still working are `done_for_day` until the
  next session opens, then `new` again [DOCS order lifecycle];
- the open closing orders of a position *hold* its shares: selling more than is available
  answers 403 "insufficient qty available for order";
- an order opposite to an open order on the same symbol is refused as a potential wash trade;
- opening orders are checked against buying power (403 "insufficient buying power"), market buys
  valued at +2.5 % (+4 % under $50) and shorts at MAX(limit, ask + 3 %) [DOCS "Buying Power"];
- new orders are refused with 403 when the account is blocked, suspended by the user or not
  ACTIVE (set through the server's control route);
- account activities (FILL) have ids `"<New York time, ms>::<uuid>"` as Alpaca's do (the spec's
  example: transaction_time 18:55:09.981Z, id 20220202135509981::…), in execution order [OAS].

Fill model (paper-trading.md's rules on quotes derived from bars; `emulator/fills.py` has the
formulas): quotes are the price -/+ spread/2; a market order fills at the ask (buy) or bid
(sell) of its symbol's bar in progress's open (in a minute the symbol has no bar — no trade —
at the quote of its last trade), worsened by `slippage_bps`; a limit fills only when
marketable (at the quote when routed or at a bar's open, at the limit inside a bar's range);
a stop is elected by a trade through it and fills like a market order (buy stops capped at the
+2.5 %/+4 % collar, resting as a limit above it); stops are checked before limits within a bar.
Size is never checked against liquidity; `partial_fill_rate` (default 10 %, as the docs say) of
eligible fills are partial, of a random size, and the rest is re-evaluated from the next bar.

Option contracts (OCC symbols of the served underlyings; `emulator.options` lists and prices
them, `emulator.option_orders` says which orders Alpaca takes, `emulator.expiry` what the close
of an expiry day does) go through the same order machinery — ids, `pending_new`, routing,
cancels, DAY expiry, held quantities, partial fills, trade updates — with their own fill rule:
at each minute (and when pending work settles) a market buy fills at the model's ask, a market
sell at its bid (not while the bid is 0: nobody buys), a buy limit once the ask is at or below
it (at the ask), a sell limit once the bid is at or above it (at the bid). Cash moves by price
x contracts x 100; buying to open is checked against the options buying power (the cash not
reserved by open option buys: options are not marginable). From the liquidation time of an
expiry day (15:45 for broad-based ETFs) the emulator, as Alpaca does, cancels the open orders
of each expiring long position and sells it at market; what is still held at the close is
exercised (in the money by $0.01 or more) or expires, as non-trade activities.
"""

from __future__ import annotations

import bisect
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ict_trader.adapters.alpaca.emulator import expiry, fills, option_orders
from ict_trader.adapters.alpaca.emulator import validation as check
from ict_trader.adapters.alpaca.emulator.activities import activity_id
from ict_trader.adapters.alpaca.emulator.assets import Bars, asset, by_symbol, clock
from ict_trader.adapters.alpaca.emulator.errors import ApiError
from ict_trader.adapters.alpaca.emulator.options import (
    OptionMarket,
    OptionSettings,
    contract_id,
    option_symbol,
)
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK, NyseCalendar, Session
from ict_trader.core.instruments import OPTION_MULTIPLIER

ACCOUNT_ID = "2f7f6a3c-1b0e-4d4f-9a55-6f2c1c9b2a10"
MAX_CLIENT_ORDER_ID = 48
_ONE_MINUTE = timedelta(minutes=1)
_FINAL = {"filled", "canceled", "expired", "rejected", "replaced"}
_CENT = Decimal("0.01")
_WORKING = {"new", "partially_filled", "held"}  # routed and able to fill (if active)
ACCOUNT_FLAGS = ("trading_blocked", "account_blocked", "trade_suspended_by_user")
# AccountStatus in the trading spec (alpaca-openapi/trading-api.json)
ACCOUNT_STATUSES = frozenset(
    {
        "INACTIVE",
        "PAPER_ONLY",
        "ONBOARDING",
        "SUBMISSION_FAILED",
        "SUBMITTED",
        "ACCOUNT_UPDATED",
        "APPROVAL_PENDING",
        "ACTIVE",
        "REJECTED",
        "ACCOUNT_CLOSED",
        "APPROVED",
        "ACCOUNT_CLOSED_PENDING",
        "ACTION_REQUIRED",
        "LIMITED",
    }
)


@dataclass
class EmulatorOptions:
    """Paper behaviour switches and injected faults. The defaults behave as the real Alpaca does;
    the switches marked *old* restore the emulator's earlier, simpler behaviour for tests that
    need it."""

    starting_cash: Decimal = Decimal(100_000)
    multiplier: Decimal = Decimal(2)
    slippage_bps: Decimal = Decimal(0)
    wash_trade_check: bool = True
    # bid/ask = price -/+ spread/2: one cent each side keeps quotes on the penny grid (QQQ's
    # NBBO is usually one or two cents wide); 0 = fills at the traded prices (old)
    spread: Decimal = Decimal("0.02")
    partial_fill_rate: float = 0.1  # paper-trading.md: "partial fills ... 10% of the time"
    reject_rate: float = 0.0  # orders rejected after acceptance (a late `rejected` update)
    duplicate_fill_rate: float = 0.0  # fill updates sent twice with the same execution id
    # pending work (routing, fills of marketable orders, cancel confirmations) settles this
    # long after the request that caused it; None = only when the next bar completes
    settle_delay_ms: int | None = 10
    fill_in_post: bool = False  # old: POST routes and fills before answering
    instant_cancel: bool = False  # old: a cancel is final at once, no `pending_cancel`
    sibling_after_stop: str = "replaced"  # [PY #198]; "canceled" as the docs describe (old)
    legs_always: bool = False  # old: `legs` in every order body, stream updates included
    # As Alpaca's clock: after a session's last bar it stays at the close (is_open false)
    # until the next advance opens the next session's first bar; False = the next session
    # opens at once (old)
    closed_between_sessions: bool = True
    seed: int = 7
    # option contracts: listing, pricing, the account's options level (emulator.options)
    option_settings: OptionSettings = field(default_factory=OptionSettings)


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
    parent: EmuOrder | None = None  # the order whose `legs` this one is in
    elected: bool = False  # a stop whose price traded: it now works as a market order
    collar: Decimal | None = None  # a buy stop's limit once elected (orders.md)
    resume_cursor: int = 0  # after a partial fill the rest waits for this bar
    status_before_break: str | None = None  # a GTC order's status before `done_for_day`
    position_intent: str | None = None  # option orders only: buy_to_open, sell_to_close, ...

    @property
    def is_option(self) -> bool:
        return option_symbol(self.symbol) is not None

    @property
    def open(self) -> bool:
        return self.status not in _FINAL

    @property
    def listed_open(self) -> bool:
        """GET /v2/orders?status=open: `held` legs are not listed as open [ATA #322]."""
        return self.open and self.status != "held"

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    def as_json(self, nested: bool = False) -> dict[str, Any]:
        """The order as Alpaca's spec (`Order`) writes it; `legs` only when `nested`. `expires_at`
        is left out, as in the spec's own example (typed a string, never null); so is
        `position_intent` for shares, which the emulator does not track. An option order is
        `us_option`, its `asset_id` the contract's id, its `position_intent` the one sent or
        inferred (Alpaca-API#270 shows it on a paper option order)."""
        avg = (self.filled_value / self.filled_qty) if self.filled_qty else None
        option = self.is_option
        body: dict[str, Any] = {
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
            "asset_id": contract_id(self.symbol) if option else asset(self.symbol).id,
            "symbol": self.symbol,
            "asset_class": "us_option" if option else "us_equity",
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
            "legs": [leg.as_json() for leg in self.legs] if nested and self.legs else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }
        if self.position_intent is not None:
            body["position_intent"] = self.position_intent
        return body


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _money(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros, as Alpaca writes amounts."""
    text = format(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _price(value: float) -> Decimal:
    return Decimal(repr(value))


def _opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


class PaperAccount:
    """One paper account over a replay of bars of one symbol or several (regular hours only, or
    with the pre- and after-market bars of an extended-hours file).

    `bars`: one symbol's bars (served as `symbol`, default QQQ), bars that name their symbols
    (`Bar.symbol`), or a mapping symbol -> bars; see `emulator.assets.by_symbol`. The clock steps
    through every minute in which some served symbol has a bar (`times`); `symbol` is the
    default symbol (the first of a mapping), which `position`, `bars` and `mark()` answer for
    when no symbol is named."""

    def __init__(
        self,
        bars: Bars,
        calendar: NyseCalendar,
        symbol: str | None = None,
        options: EmulatorOptions | None = None,
    ) -> None:
        self.bars_by_symbol = by_symbol(bars, symbol)
        self.symbols = tuple(self.bars_by_symbol)
        self.symbol = self.symbols[0]
        self.bars = self.bars_by_symbol[self.symbol]  # the default symbol's bars
        self.times, positions = clock(self.bars_by_symbol)
        # each symbol's bar at each minute of the clock (None: no trade that minute)
        self._rows: dict[str, list[Bar | None]] = {}
        for name, members in self.bars_by_symbol.items():
            if len(members) == len(self.times):
                self._rows[name] = list(members)
                continue
            row: list[Bar | None] = [None] * len(self.times)
            for bar, index in zip(members, positions[name], strict=True):
                row[index] = bar
            self._rows[name] = row
        self.calendar = calendar
        self.options = options or EmulatorOptions()
        self._random = random.Random(self.options.seed)
        self.cursor = 0  # the clock's minute in progress: its bars' opens are the prices
        self.cash = self.options.starting_cash
        self.positions = dict.fromkeys(self.symbols, 0)
        # signed, per symbol: sum of qty x price of the open position
        self.cost_basis = dict.fromkeys(self.symbols, Decimal(0))
        self._last_close: dict[str, float] = {}  # each symbol's latest completed bar's close
        self.orders: dict[str, EmuOrder] = {}
        self.by_client_id: dict[str, EmuOrder] = {}
        self.updates: list[dict[str, Any]] = []  # trade updates not yet streamed
        self._activities: list[dict[str, Any]] = []  # FILLs
        self._non_trade: list[dict[str, Any]] = []  # option expiries and exercises
        self._activity_count = 0  # every activity's sequence number, for its id
        self._liquidations: set[str] = set()  # ids of Alpaca's expiry-day liquidation orders
        self._sequence = 0
        self._executions = 0
        self._last_equity = self.options.starting_cash
        self._between: datetime | None = None  # the close, while waiting for the next session
        self.finished = False
        self.status = "ACTIVE"
        self.flags = dict.fromkeys(ACCOUNT_FLAGS, False)
        self.option_market = OptionMarket(
            self.bars_by_symbol, calendar, self.options.option_settings
        )

    # ------------------------------------------------------------------ symbols

    @property
    def position(self) -> int:
        """The default symbol's position (`positions` has every symbol's)."""
        return self.positions[self.symbol]

    def position_of(self, symbol: str) -> int:
        """`symbol`'s signed position (0: flat, or not served)."""
        return self.positions.get(symbol.upper(), 0)

    def bar_at(self, index: int, symbol: str | None = None) -> Bar | None:
        """`symbol`'s bar at clock minute `index` (None: it had no trade that minute)."""
        return self._rows[self._served(symbol)][index]

    def _served(self, symbol: str | None) -> str:
        name = self.symbol if symbol is None else symbol.upper()
        if name not in self._rows:
            raise KeyError(f"{name} is not served")
        return name

    def resolve(self, symbol_or_asset_id: str) -> str | None:
        """A path's `symbol_or_asset_id` as a served symbol or an option contract the account
        has traded — by symbol, asset id or contract id (None: neither)."""
        name = symbol_or_asset_id.upper()
        if name in self.positions:
            return name
        wanted = symbol_or_asset_id.lower()
        served = next((s for s in self.symbols if asset(s).id == wanted), None)
        if served is not None:
            return served
        return next((s for s in self._option_symbols() if contract_id(s) == wanted), None)

    def _option_symbols(self) -> list[str]:
        """The option contracts the account has traded (a position, or had one)."""
        return [s for s in self.positions if s not in self._rows]

    def price_at(self, symbol: str, moment: datetime) -> Decimal:
        """`symbol`'s price at an earlier `moment` of the clock, as `mark` gave it then: the
        open of its bar of that minute, else the close of its last bar before."""
        name = self._served(symbol)
        row = self._rows[name]
        index = bisect.bisect_right(self.times, moment) - 1
        if index >= 0:
            bar = row[index]
            if bar is not None and moment < self.times[index] + _ONE_MINUTE:
                return _price(bar.open)
            for earlier in range(index, -1, -1):
                before = row[earlier]
                if before is not None:
                    return _price(before.close)
        return _price(self.bars_by_symbol[name][0].open)

    # ------------------------------------------------------------------ clock

    @property
    def now(self) -> datetime:
        """Simulated time: the start of the clock's minute in progress (the end of the last one
        once the replay ends; the close between sessions)."""
        if self.finished:
            return self.times[-1] + _ONE_MINUTE
        if self._between is not None:
            return self._between
        return self.times[min(self.cursor, len(self.times) - 1)]

    def session(self) -> Session | None:
        return self.calendar.session_at(self.times[min(self.cursor, len(self.times) - 1)])

    def market_open(self) -> bool:
        """Whether `now` is inside a regular session (orders sent otherwise wait, `accepted`)."""
        return not self.finished and self.calendar.session_at(self.now) is not None

    def complete_bar(self) -> Bar:
        """`complete_minute`, answering with one bar of the minute: the default symbol's (with
        one symbol, the bar that completed), or the first served symbol's that had one."""
        completed = self.complete_minute()
        return completed.get(self.symbol) or next(iter(completed.values()))

    def complete_minute(self) -> dict[str, Bar]:
        """The clock's minute in progress completes: pending work settles, resting orders its bars
        reached fill (in regular hours only), then its bars are published (returned, by symbol;
        a symbol without a trade that minute has none) and the next minute opens (see
        `_open_minute`). When the minute closes a session, DAY orders expire and GTC ones are
        done for the day first, then option positions expiring that day are settled
        (`emulator.expiry`); with `closed_between_sessions` the clock then stays at the
        close, and the next session opens when the next call completes its first minute."""
        index = min(self.cursor, len(self.times) - 1)
        moment = self.times[index]
        completed = {s: bar for s, row in self._rows.items() if (bar := row[index]) is not None}
        self.settle()
        if self._between is not None:  # the next session opens with this minute
            self._between = None
            self._open_minute(index)
        self._fill_resting(moment, completed)
        for name, bar in completed.items():
            self._last_close[name] = bar.close
        session = self.calendar.session_at(moment)
        if session is not None:  # option prices follow the underlying's regular-hours moves
            self.option_market.observe(completed)
        next_index = self.cursor + 1
        if next_index >= len(self.times):
            self._expire_day_orders(moment + _ONE_MINUTE)
            if session is not None and moment + _ONE_MINUTE >= session.close:
                self._settle_expiring(session)  # the replay ends with a session's close
            self.finished = True
            self.cursor = len(self.times)
            return completed
        following = self.times[next_index]
        leaving = session is not None and not session.contains(following)
        if leaving:  # the session closes: DAY orders expire, GTC ones are done for the day
            assert session is not None
            self._expire_day_orders(moment + _ONE_MINUTE)
            self._settle_expiring(session)
        if following.date() != moment.date():
            self._last_equity = self.equity()
        self.cursor = next_index
        if leaving and self.options.closed_between_sessions:
            self._between = moment + _ONE_MINUTE
        else:
            self._open_minute(next_index)
        return completed

    # ------------------------------------------------------------------ REST: account & market

    def mark(self, symbol: str | None = None) -> Decimal:
        """`symbol`'s current price (default: the default symbol's): the open of its bar in
        progress; its latest close between sessions, after the replay, or in a minute it has no
        bar (no trade: its quotes stay at the last trade)."""
        name = self._served(symbol)
        if not self.finished and self._between is None:
            bar = self._rows[name][self.cursor]
            if bar is not None:
                return _price(bar.open)
        last = self._last_close.get(name)
        if last is None:  # nothing traded yet in the replay: the first price it will have
            return _price(self.bars_by_symbol[name][0].open)
        return _price(last)

    def _market_values(self) -> list[Decimal]:
        """Each open position's signed market value (an option's at 100 shares a contract)."""
        return [
            qty * self._valuation(name) * self._multiplier(name)
            for name, qty in self.positions.items()
            if qty
        ]

    def _multiplier(self, symbol: str) -> int:
        """Shares per unit: 100 for an option contract, 1 for a share."""
        return 1 if symbol in self._rows else OPTION_MULTIPLIER

    def _valuation(self, symbol: str) -> Decimal:
        """The price a position is valued at: a share's `mark`, an option's quote midpoint."""
        if symbol in self._rows:
            return self.mark(symbol)
        quote = self.option_quote(symbol)
        return (quote.bid + quote.ask) / 2

    def option_quote(self, symbol: str) -> fills.Quote:
        """An option contract's modelled bid and ask now (`emulator.options`)."""
        contract = option_symbol(symbol)
        assert contract is not None, f"{symbol} is not an option contract"
        modelled = self.option_market.quote(contract, self.mark(contract.root), self.now)
        return fills.Quote(bid=modelled.bid, ask=modelled.ask)

    def options_buying_power(self) -> Decimal:
        """The account's `options_buying_power`: cash less what open option buys reserve
        (options are not marginable; an option buy is paid in full)."""
        reserved = sum(
            (
                self._order_value(o.symbol, o.side, o.remaining, o.limit_price)
                for o in self._opening_orders()
                if o.symbol not in self._rows
            ),
            Decimal(0),
        )
        return max(self.cash - reserved, Decimal(0))

    def equity(self) -> Decimal:
        return self.cash + sum(self._market_values(), Decimal(0))

    def buying_power(self) -> Decimal:
        """Equity x multiplier, less the exposure of every position and what open opening
        orders reserve (orders.md "Buying Power": they count until filled or canceled)."""
        exposure = sum((abs(value) for value in self._market_values()), Decimal(0))
        reserved = sum(
            (
                self._order_value(o.symbol, o.side, o.remaining, o.limit_price)
                for o in self._opening_orders()
            ),
            Decimal(0),
        )
        return max(self.equity() * self.options.multiplier - exposure - reserved, Decimal(0))

    def _order_value(self, symbol: str, side: str, qty: int, limit: Decimal | None) -> Decimal:
        """What an opening order is valued at for the buying-power check (orders.md); an
        option buy at its limit, or the ask, times 100 shares a contract."""
        if symbol not in self._rows:
            price = limit if limit is not None else self.option_quote(symbol).ask
            return qty * price * OPTION_MULTIPLIER
        if side == "buy":
            return qty * (
                limit if limit is not None else fills.market_buy_price_allowance(self.mark(symbol))
            )
        return qty * fills.short_sale_price(self._quote(symbol).ask, limit)

    def _quote(self, symbol: str) -> fills.Quote:
        return fills.quote(self.mark(symbol), self.options.spread)

    def set_account(self, changes: dict[str, Any]) -> None:
        """The emulator's control route: set `status` or the blocking flags, as Alpaca may (an
        account under review, blocked by compliance, or suspended by its owner)."""
        for key, value in changes.items():
            if key == "status":
                if value not in ACCOUNT_STATUSES:
                    raise ApiError(422, 40010001, f"status {value!r} is not an AccountStatus")
            elif key in ACCOUNT_FLAGS:
                if not isinstance(value, bool):
                    raise ApiError(422, 40010001, f"{key} must be true or false, not {value!r}")
            else:
                raise ApiError(422, 40010001, f"unknown account setting {key!r}")
        for key, value in changes.items():
            if key == "status":
                self.status = str(value)
            else:
                self.flags[key] = bool(value)

    def _check_trading_allowed(self) -> None:
        """New orders are refused as Alpaca refuses them: 403 40310000 with its messages."""
        if self.flags["trade_suspended_by_user"]:
            # lumibot #373 quotes this answer from a real account
            raise ApiError(403, 40310000, "new orders are rejected by user request")
        if (
            self.flags["trading_blocked"]
            or self.flags["account_blocked"]
            or (self.status != "ACTIVE")
        ):
            # alpaca-trade-api-csharp #330 and bots' tests quote 403 40310000 with this text
            raise ApiError(403, 40310000, "account is not authorized to trade")

    def account_json(self) -> dict[str, Any]:
        """The account; market values and margins sum every position."""
        equity = self.equity()
        values = self._market_values()
        long_value = sum((v for v in values if v > 0), Decimal(0))
        short_value = sum((v for v in values if v < 0), Decimal(0))
        gross = long_value - short_value
        return {
            "id": ACCOUNT_ID,
            "account_number": "PA3EMU000001",
            "status": self.status,
            "crypto_status": "ACTIVE",
            "currency": "USD",
            "buying_power": _money(self.buying_power()),
            "regt_buying_power": _money(self.buying_power()),
            "non_marginable_buying_power": _money(max(self.cash, Decimal(0))),
            "options_buying_power": _money(self.options_buying_power()),
            "cash": _money(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "portfolio_value": _money(equity),
            "trading_blocked": self.flags["trading_blocked"],
            "transfers_blocked": False,
            "account_blocked": self.flags["account_blocked"],
            "created_at": "2024-01-02T14:00:00Z",
            "trade_suspended_by_user": self.flags["trade_suspended_by_user"],
            "multiplier": str(self.options.multiplier),
            "shorting_enabled": True,
            "equity": _money(equity),
            "last_equity": _money(self._last_equity),
            "long_market_value": _money(long_value),
            "short_market_value": _money(short_value),
            "position_market_value": _money(gross),
            "initial_margin": _money(gross / 2),
            "maintenance_margin": _money(gross * Decimal("0.3")),
            "last_maintenance_margin": "0",
            "sma": "0",
            "options_approved_level": self.option_market.settings.trading_level,
            "options_trading_level": self.option_market.settings.trading_level,
        }

    def clock_json(self) -> dict[str, Any]:
        now = self.now
        is_open = self.market_open()
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

    def asset_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        """GET /v2/assets/{symbol_or_asset_id}: a served symbol's asset; any other is unknown
        here (404), as an asset Alpaca does not list."""
        symbol = self.resolve(symbol_or_asset_id)
        if symbol is None:
            raise ApiError(404, 40410000, f'asset "{symbol_or_asset_id}" not found')
        listed = asset(symbol)
        return {
            "id": listed.id,
            "class": "us_equity",
            "exchange": listed.exchange,
            "symbol": symbol,
            "name": listed.name,
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
        """POST /v2/orders: validate like Alpaca and accept — `pending_new`, or `accepted` while
        the market is closed. Routing and fills come when pending work settles (`settle`)."""
        self._check_trading_allowed()
        order = self._validate(payload)
        self._register(order)
        if payload.get("order_class") == "oco":
            self._add_stop_leg(order, payload)
        elif payload.get("order_class") == "bracket":
            self._add_bracket_legs(order, payload)
        # closed: `accepted`, routed at the next open (`_open_minute`)
        order.status = "pending_new" if self.market_open() else "accepted"
        self._update(order.status, order, execution=False)
        if self.options.fill_in_post:
            self.settle()
        return order

    def settle(self) -> None:
        """Pending work completes, in the order Alpaca would do it: cancel requests are
        confirmed, received orders are routed (`new`, or a late `rejected`), then whatever is
        marketable at the current quote fills — while the market is open: orders `accepted`
        while it was closed wait for `_open_minute`, and nothing fills outside regular hours."""
        for order in list(self.orders.values()):
            if order.status == "pending_cancel":
                self._finish_cancel(order)
        for order in list(self.orders.values()):
            if order.parent is None and order.status == "pending_new":
                self._route(order)
        if self.market_open():
            for symbol in self.symbols:
                self._fill_at(symbol, self.mark(symbol))
            self._fill_options()

    def has_pending_work(self) -> bool:
        """Whether `settle` would change anything now (the server schedules it only then)."""
        return any(o.status in {"pending_new", "pending_cancel"} for o in self.orders.values())

    def _route(self, order: EmuOrder) -> None:
        if self._chance(self.options.reject_rate):
            order.status = "rejected"
            self._update("rejected", order, execution=False)
            for leg in order.legs:  # the group goes with its parent
                leg.status = "canceled"
                leg.canceled_at = self.now
                self._update("canceled", leg, execution=False)
            return
        order.status = "new"
        self._update("new", order, execution=False)
        for leg in order.legs:
            # the passive leg is reported `held` and never gets a `new` first [LEAN #74]
            self._update("held", leg, execution=False)
            if order.order_class == "oco":
                leg.active = True  # an OCO's stop guards the position from now on

    def _validate(self, payload: dict[str, Any]) -> EmuOrder:
        symbol = str(payload.get("symbol", "")).upper()
        if symbol not in self._rows:
            if option_symbol(symbol) is not None:
                return self._validate_option(payload, symbol)
            # an asset the emulator does not serve: unknown to it
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
            payload = self._oco_parent_payload(payload, symbol, kind)
        elif order_class == "bracket":
            self._check_bracket(payload, kind)
        qty = check.body_decimal(payload.get("qty"), "qty")
        if qty is None:
            raise ApiError(422, 40010001, "qty or notional is required")
        if qty <= 0:
            raise ApiError(422, 40010001, "qty must be > 0")
        if qty != qty.to_integral_value():
            raise ApiError(422, 40010001, "fractional orders are not emulated")
        limit = check.body_decimal(payload.get("limit_price"), "limit_price")
        stop = check.body_decimal(payload.get("stop_price"), "stop_price")
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
        if order_class in {"oco", "bracket"}:
            self._check_stop_threshold(payload, symbol, side, kind, limit)
        tif = str(payload.get("time_in_force", "day"))
        if tif not in {"day", "gtc"}:
            raise ApiError(422, 40010001, f"time_in_force {tif!r} is not emulated")
        client_id = self._client_order_id(payload)
        shares = int(qty)
        self._check_quantity_and_power(symbol, side, shares, limit)
        self._check_wash_trade(symbol, side)
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

    def _client_order_id(self, payload: dict[str, Any]) -> str:
        """The order's client id, or a new UUID: at most 48 characters, unique forever."""
        client_id = str(payload.get("client_order_id") or uuid.uuid4())
        if len(client_id) > MAX_CLIENT_ORDER_ID:
            raise ApiError(
                422,
                40010001,
                f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters",
            )
        if client_id in self.by_client_id:
            raise ApiError(422, 40010001, "client_order_id must be unique")
        return client_id

    def _check_wash_trade(self, symbol: str, side: str) -> None:
        """An open opposite order on the same symbol makes this one a potential wash trade."""
        if not self.options.wash_trade_check:
            return
        if any(
            o.open and o.active and o.side != side and o.symbol == symbol
            for o in self.orders.values()
        ):
            raise ApiError(403, 40310000, "potential wash trade detected. use complex orders")

    def _validate_option(self, payload: dict[str, Any], symbol: str) -> EmuOrder:
        """An order for an option contract: listed and active, then Alpaca's option rules
        (`emulator.option_orders`), then what every order meets — a unique client id, the
        contracts it closes not held by other orders, options buying power, wash trades."""
        market = self.option_market
        contract = market.contract(symbol, self.now)
        if contract is None:
            raise ApiError(422, 42210000, f'asset "{symbol}" not found')
        if not market.active(contract, self.now):
            raise ApiError(422, 42210000, f"asset {symbol} is not active")
        settings = market.settings
        underlying = contract.root
        shares = self.positions[underlying] - self._held(underlying, "sell")
        terms = option_orders.check(
            payload,
            contract,
            position=self.positions.get(symbol, 0),
            shares_available=shares,
            cash_available=self.options_buying_power(),
            level=settings.trading_level,
            cutoff=market.session_of(contract).close - settings.cutoff(underlying),
            now=self.now,
        )
        client_id = self._client_order_id(payload)
        self.positions.setdefault(symbol, 0)
        self.cost_basis.setdefault(symbol, Decimal(0))
        self._check_quantity_and_power(symbol, terms.side, terms.qty, terms.limit_price)
        self._check_wash_trade(symbol, terms.side)
        return EmuOrder(
            id="",
            client_order_id=client_id,
            symbol=symbol,
            side=terms.side,
            qty=terms.qty,
            type=terms.type,
            time_in_force=terms.time_in_force,
            limit_price=terms.limit_price,
            stop_price=None,
            created_at=self.now,
            position_intent=terms.position_intent,
        )

    def _check_stop_threshold(
        self, payload: dict[str, Any], symbol: str, side: str, kind: str, limit: Decimal | None
    ) -> None:
        """orders.md "Threshold on stop price of stop-loss orders": the stop must be at least
        $0.01 below (sell stop) or above (buy stop) the base price — the current market price,
        and also the take-profit's limit (OCO) or the entry's limit (bracket, limit entry)."""
        stop = check.body_decimal(payload["stop_loss"]["stop_price"], "stop_loss.stop_price")
        assert stop is not None
        bases = [self.mark(symbol)]
        if kind == "limit" and limit is not None:
            bases.append(limit)  # the OCO's parent limit is its take-profit
        exit_side = side if payload.get("order_class") == "oco" else _opposite(side)
        if exit_side == "sell":
            base = min(bases)
            if stop > base - _CENT:
                raise ApiError(
                    422,
                    42210000,
                    "stop_loss.stop_price must be <= base_price - 0.01",
                    base_price=_money(base),
                )
        else:
            base = max(bases)
            if stop < base + _CENT:
                raise ApiError(
                    422,
                    42210000,
                    "stop_loss.stop_price must be >= base_price + 0.01",
                    base_price=_money(base),
                )

    def _held(self, symbol: str, side: str) -> int:
        """`symbol`'s shares held by open closing orders; an OCO pair holds its quantity once."""
        groups: dict[str, int] = {}
        for order in self.orders.values():
            if order.open and order.side == side and order.symbol == symbol:
                key = order.oco_group or order.id
                groups[key] = max(groups.get(key, 0), order.remaining)
        return sum(groups.values())

    def _register(self, order: EmuOrder) -> None:
        self._sequence += 1
        order.id = str(uuid.UUID(int=(0xE3 << 120) | self._sequence))
        self.orders[order.id] = order
        self.by_client_id[order.client_order_id] = order

    def _oco_parent_payload(
        self, payload: dict[str, Any], symbol: str, kind: str
    ) -> dict[str, Any]:
        """OCO = an exit pair on an open position: the take-profit limit is the parent order."""
        if kind != "limit":
            raise ApiError(422, 40010001, "oco orders must be limit orders")
        take_profit = payload.get("take_profit") or {}
        stop_loss = payload.get("stop_loss") or {}
        if take_profit.get("limit_price") is None:
            raise ApiError(422, 40010001, "oco orders require take_profit.limit_price")
        if stop_loss.get("stop_price") is None:
            raise ApiError(422, 40010001, "oco orders require stop_loss.stop_price")
        if not self._is_closing(symbol, str(payload.get("side", ""))):
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
        take_price = check.body_decimal(take, "take_profit.limit_price")
        stop_price = check.body_decimal(stop, "stop_loss.stop_price")
        assert take_price is not None and stop_price is not None
        buying = payload.get("side") == "buy"
        if (take_price <= stop_price) if buying else (take_price >= stop_price):
            raise ApiError(
                422, 42210000, "take_profit.limit_price must be beyond stop_loss.stop_price"
            )

    def _add_bracket_legs(self, parent: EmuOrder, payload: dict[str, Any]) -> None:
        """Two exit legs, inactive (`held`) until the entry fills, then one-cancels-other."""
        exit_side = _opposite(parent.side)
        take = check.body_decimal(payload["take_profit"]["limit_price"], "take_profit.limit_price")
        stop = check.body_decimal(payload["stop_loss"]["stop_price"], "stop_loss.stop_price")
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
                parent=parent,
            )
            self._register(leg)
            leg.oco_group = f"legs-{parent.id}"
            parent.legs.append(leg)
        parent.order_class = "bracket"

    def _activate_legs(self, parent: EmuOrder) -> None:
        """The entry filled completely: the take-profit goes live (`new`), the stop stays `held`
        but guards the position."""
        for leg in parent.legs:
            if leg.open and not leg.active:
                leg.active = True
                if leg.type == "limit":
                    leg.status = "new"
                    self._update("new", leg, execution=False)

    def _add_stop_leg(self, parent: EmuOrder, payload: dict[str, Any]) -> None:
        stop = check.body_decimal(payload["stop_loss"]["stop_price"], "stop_loss.stop_price")
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
            status="held",
            order_class="oco",
            active=False,  # until the group is routed
            parent=parent,
        )
        self._register(leg)
        parent.order_class = "oco"
        parent.oco_group = leg.oco_group = parent.id
        parent.legs.append(leg)

    def _check_quantity_and_power(
        self, symbol: str, side: str, qty: int, limit: Decimal | None
    ) -> None:
        position = self.positions[symbol]
        if self._is_closing(symbol, side):
            held = self._held(symbol, side)
            available = abs(position) - held
            if qty > available:
                raise ApiError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {qty}, "
                    f"available: {max(available, 0)})",
                    available=str(max(available, 0)),
                    existing_qty=str(abs(position)),
                    held_for_orders=str(held),
                    symbol=symbol,
                )
            return
        cost = self._order_value(symbol, side, qty, limit)
        # an option is paid in cash (options buying power), a share on margin (buying power)
        power = "buying_power" if symbol in self._rows else "options_buying_power"
        spendable = self.buying_power() if symbol in self._rows else self.options_buying_power()
        if cost > spendable:
            raise ApiError(
                403,
                40310000,
                f"insufficient {power.replace('_', ' ')}",
                **{power: _money(spendable)},
                cost_basis=_money(cost),
            )

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
        self,
        status: str = "open",
        limit: int = 50,
        direction: str = "desc",
        nested: bool = False,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        symbols: frozenset[str] | None = None,
        side: str | None = None,
    ) -> list[EmuOrder]:
        """GET /v2/orders. Without `nested` every leg is an independent order; with it, legs
        are only under their parent, which is filtered by its own status — so once a bracket's
        entry has filled, `status=open&nested=true` lists nothing [alpaca-trade-api-js #80/#87].
        `held` legs count as closed, not open [ATA #322]. `after` and `until` select by
        submission time, both exclusive, as the spec says; `symbols` and `side` filter too."""
        if status not in {"open", "closed", "all"}:
            raise ApiError(422, 40010001, f"invalid status {status!r}: open, closed or all")
        chosen = [
            o
            for o in self.orders.values()
            if (status == "all" or (status == "open") == o.listed_open)
            and not (nested and o.parent is not None)
            and (after is None or o.created_at > after)
            and (until is None or o.created_at < until)
            and (symbols is None or o.symbol in symbols)
            and (side is None or o.side == side)
        ]
        chosen.sort(key=lambda o: (o.created_at, o.id), reverse=direction == "desc")
        return chosen[:limit]

    def cancel(self, order_id: str) -> None:
        """Request a cancel: the order (and its OCO group, or a bracket entry's legs) becomes
        `pending_cancel`, and `canceled` when pending work settles. A repeated request for an
        order already pending cancel changes nothing."""
        order = self.get(order_id)
        if not order.open:
            raise ApiError(422, 42210000, "order is not cancelable")
        group = [
            o
            for o in self.orders.values()
            if o.open
            and o.status != "pending_cancel"
            and (
                o is order
                or o in order.legs
                or (order.oco_group is not None and o.oco_group == order.oco_group)
            )
        ]
        for member in group:
            if self.options.instant_cancel:
                self._finish_cancel(member)
            else:
                member.status = "pending_cancel"
                self._update("pending_cancel", member, execution=False)

    def _finish_cancel(self, order: EmuOrder) -> None:
        order.status = "canceled"
        order.canceled_at = self.now
        self._update("canceled", order, execution=False)

    def cancel_all(self) -> list[dict[str, Any]]:
        targets = [o for o in self.orders.values() if o.open and o.status != "pending_cancel"]
        for order in targets:
            if order.open and order.status != "pending_cancel":  # a group member may be done
                self.cancel(order.id)
        return [{"id": o.id, "status": 200, "body": o.as_json()} for o in targets]

    # ------------------------------------------------------------------ REST: positions

    def positions_json(self) -> list[dict[str, Any]]:
        """GET /v2/positions: every open position, by symbol (a flat symbol is not listed)."""
        return [self.position_json(name) for name in self._held_symbols()]

    def _held_symbols(self) -> list[str]:
        """The symbols (shares and option contracts) with an open position, sorted."""
        return sorted(name for name, qty in self.positions.items() if qty)

    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        symbol = self.resolve(symbol_or_asset_id)
        if symbol is None or self.positions[symbol] == 0:
            raise ApiError(404, 40410000, "position does not exist")
        qty = self.positions[symbol]
        cost_basis = self.cost_basis[symbol]  # dollars: an option's includes its 100 multiplier
        side = "buy" if qty < 0 else "sell"
        held = self._held(symbol, side)
        mark = self._valuation(symbol)
        multiplier = self._multiplier(symbol)
        avg = cost_basis / (qty * multiplier)  # per share, as the premium is quoted
        market_value = qty * mark * multiplier
        unrealized = market_value - cost_basis
        if symbol in self._rows:
            listed = asset(symbol)
            identity = (listed.id, listed.exchange, "us_equity", True)
        else:  # the spec: the contract's id; exchange "can be empty ... for options contracts"
            identity = (contract_id(symbol), "", "us_option", False)
        asset_id, exchange, asset_class, marginable = identity
        return {
            "asset_id": asset_id,
            "symbol": symbol,
            "exchange": exchange,
            "asset_class": asset_class,
            "asset_marginable": marginable,
            "qty": str(qty),
            "qty_available": str((abs(qty) - held) * (1 if qty > 0 else -1)),
            "avg_entry_price": _money(avg),
            "side": "long" if qty > 0 else "short",
            "market_value": _money(market_value),
            "cost_basis": _money(cost_basis),
            "unrealized_pl": _money(unrealized),
            "unrealized_plpc": str((unrealized / abs(cost_basis)).quantize(Decimal("1e-10"))),
            "unrealized_intraday_pl": _money(unrealized),
            "unrealized_intraday_plpc": str(
                (unrealized / abs(cost_basis)).quantize(Decimal("1e-10"))
            ),
            "current_price": _money(mark),
            "lastday_price": _money(mark),
            "change_today": "0",
        }

    def close_position(self, symbol_or_asset_id: str, qty: int | None = None) -> EmuOrder:
        """DELETE /v2/positions/{symbol_or_asset_id}: a market order closing `qty` shares
        (default: all of them)."""
        symbol = self.resolve(symbol_or_asset_id)
        if symbol is None or self.positions[symbol] == 0:
            raise ApiError(404, 40410000, "position does not exist")
        position = self.positions[symbol]
        shares = qty or abs(position)
        side = "sell" if position > 0 else "buy"
        return self.submit({"symbol": symbol, "qty": shares, "side": side, "type": "market"})

    def close_all_positions(self, cancel_orders: bool = False) -> list[dict[str, Any]]:
        """DELETE /v2/positions: a market order closing each open position, each answered on its
        own as the spec's PositionClosedResponse (`symbol`, `status`, `body`: the order, or the
        error that refused it — e.g. 403 when other orders hold the shares). With
        `cancel_orders`, every open order is canceled first and the cancels are confirmed before
        the closing orders are placed (the spec: "cancel all open orders before liquidating")."""
        if cancel_orders:
            self.cancel_all()
            for order in list(self.orders.values()):
                if order.status == "pending_cancel":
                    self._finish_cancel(order)
        answers: list[dict[str, Any]] = []
        for symbol in self._held_symbols():
            try:
                order = self.close_position(symbol)
            except ApiError as refused:
                answers.append({"symbol": symbol, "status": refused.status, "body": refused.body})
            else:
                answers.append({"symbol": symbol, "status": 200, "body": order.as_json()})
        return answers

    # ------------------------------------------------------------------ internals

    def _opening_orders(self) -> list[EmuOrder]:
        return [
            o for o in self.orders.values() if o.open and not self._is_closing(o.symbol, o.side)
        ]

    def _is_closing(self, symbol: str, side: str) -> bool:
        position = self.positions[symbol]
        return (side == "sell" and position > 0) or (side == "buy" and position < 0)

    def _open_minute(self, index: int) -> None:
        """A new minute of the clock opens. Outside regular hours nothing happens to orders.
        Inside them, GTC orders done for the day work again, orders queued (`accepted`) while
        the market was closed are routed in the order they came (`pending_new`, then `new`), and
        each symbol's price — its bar's open, or its last trade when it has no bar this minute —
        is the price its working orders are evaluated at: resting orders it gapped through,
        market orders just routed, and the rest of partially filled ones."""
        if self.calendar.session_at(self.times[index]) is None:
            return
        self._resume_after_break()
        for queued in [o for o in self.orders.values() if o.status == "accepted"]:
            queued.status = "pending_new"
            self._update("pending_new", queued, execution=False)
            self._route(queued)
        for symbol in self.symbols:
            self._fill_at(symbol, self.mark(symbol))
        self._liquidate_expiring()
        self._fill_options()

    # ------------------------------------------------------------------ options

    def _fill_options(self) -> None:
        """Working option orders fill at the contract's modelled quote now: market orders at
        the ask (buy) or bid (sell; not while the bid is 0), limits once marketable — a buy
        when the ask is at or below it, a sell when the bid is at or above it — at that quote.
        There are no option bars, so nothing fills inside a minute."""
        if not self._option_symbols():
            return  # no option was ever ordered: the share-only replay pays nothing
        for order in list(self.orders.values()):
            if not (
                order.open
                and order.active
                and order.status in _WORKING
                and order.resume_cursor <= self.cursor
                and order.symbol not in self._rows
            ):
                continue
            at = self.option_quote(order.symbol)
            if order.side == "sell" and at.bid <= 0:
                continue  # no bid: a sell has nobody to trade with
            if order.type == "limit":
                assert order.limit_price is not None
                if not fills.limit_marketable(order.side, order.limit_price, at):
                    continue
            self._fill(order, order.remaining, at.for_side(order.side))

    def _liquidate_expiring(self) -> None:
        """From its liquidation time on its expiry day (15:45 ET for broad-based ETFs), each
        expiring long position is sold at market, as Alpaca does; its open orders, which would
        hold the contracts, are canceled first. The order is Alpaca's, not the bot's: a new
        client order id, routed at once (a fault-injected rejection never hits it)."""
        settings = self.option_market.settings
        if not settings.liquidate or not self._option_symbols():
            return
        session = self.calendar.session_at(self.now)
        if session is None:
            return
        for symbol in self._option_symbols():
            contract = option_symbol(symbol)
            assert contract is not None
            qty = self.positions[symbol]
            if qty <= 0 or contract.expiry != session.day:
                continue
            if self.now < session.close - settings.liquidation(contract.root):
                continue
            working = [o for o in self.orders.values() if o.open and o.symbol == symbol]
            if any(o.id in self._liquidations for o in working):
                continue  # already being liquidated
            for order in working:
                self._finish_cancel(order)
            sale = EmuOrder(
                id="",
                client_order_id=str(uuid.uuid4()),
                symbol=symbol,
                side="sell",
                qty=qty,
                type="market",
                time_in_force="day",
                limit_price=None,
                stop_price=None,
                created_at=self.now,
                position_intent="sell_to_close",
            )
            self._register(sale)
            self._liquidations.add(sale.id)
            self._update("pending_new", sale, execution=False)
            sale.status = "new"
            self._update("new", sale, execution=False)

    def _settle_expiring(self, session: Session) -> None:
        """The session closed: every option position expiring today is exercised or expires
        (`emulator.expiry`), written as non-trade activities at the close, and leaves the
        account; an exercise moves the underlying's shares and the strike's cash."""
        for symbol in self._option_symbols():
            contract = option_symbol(symbol)
            assert contract is not None
            qty = self.positions[symbol]
            if qty <= 0 or contract.expiry != session.day:
                continue
            underlying = contract.root
            available = self.positions[underlying] - self._held(underlying, "sell")
            close = self.option_market.settlement_price(contract)
            settlement = expiry.settle(contract, qty, close, available)
            count = 2 if settlement.exercised else 1  # an exercise also trades the shares
            ids = [self._activity_id(session.close) for _ in range(count)]
            records = expiry.activities(
                contract, qty, settlement, moment=session.close, day=session.day, ids=ids
            )
            self._non_trade.extend(records)
            if settlement.exercised:
                self._apply_position(underlying, settlement.shares, settlement.strike)
                self.cash += settlement.cash
            self.positions[symbol] = 0
            self.cost_basis[symbol] = Decimal(0)

    def _working(self, symbol: str) -> list[EmuOrder]:
        """`symbol`'s orders able to fill now: routed, active, and not waiting for a later bar."""
        return [
            o
            for o in self.orders.values()
            if o.open
            and o.active
            and o.status in _WORKING
            and o.resume_cursor <= self.cursor
            and o.symbol == symbol
        ]

    def _fill_at(self, symbol: str, price: Decimal) -> None:
        """Evaluate `symbol`'s working orders at one price point (a quote of price -/+
        spread/2): market orders and elected stops fill, limits fill if marketable, stops the
        price traded through are elected. Stops first, as within a bar."""
        at = fills.quote(price, self.options.spread)
        for order in sorted(self._working(symbol), key=lambda o: o.type != "stop"):
            if not order.open or order.resume_cursor > self.cursor:
                continue  # a sibling's fill ended it, or it just filled in part
            if order.type == "stop" and not order.elected:
                assert order.stop_price is not None
                if not fills.stop_elected(order.side, order.stop_price, price, price):
                    continue
                self._elect(order)
            if order.type == "market" or order.elected:
                fill_price = self._slipped(at.for_side(order.side), order.side)
                if order.collar is not None and fill_price > order.collar:
                    continue  # a buy stop gapped above its collar rests as a limit
                self._fill(order, order.remaining, fill_price)
            elif order.type == "limit":
                assert order.limit_price is not None
                if fills.limit_marketable(order.side, order.limit_price, at):
                    self._fill(order, order.remaining, at.for_side(order.side))

    def _elect(self, order: EmuOrder) -> None:
        order.elected = True
        if order.side == "buy":
            assert order.stop_price is not None
            order.collar = fills.buy_stop_collar(order.stop_price)

    def _fill_resting(self, moment: datetime, completed: dict[str, Bar]) -> None:
        """The minute in progress completes: each symbol's bar fills that symbol's orders (a
        symbol without a bar traded nothing, and fills nothing)."""
        if self.calendar.session_at(moment) is None:
            return
        for symbol, bar in completed.items():
            self._fill_in_bar(symbol, bar)

    def _fill_in_bar(self, symbol: str, bar: Bar) -> None:
        """`symbol`'s bar completes: limits its quotes reached fill at their limit; stops its
        trades went through are elected and fill at the quote of the stop price (a buy stop's
        collar limits it). Stops first, the conservative order when both legs of a pair were
        reached in one bar. Pre- and after-market prints reach no order."""
        high, low = _price(bar.high), _price(bar.low)
        spread = self.options.spread
        for order in sorted(self._working(symbol), key=lambda o: o.type != "stop"):
            if not order.open or order.resume_cursor > self.cursor:
                continue
            if order.type == "stop" and not order.elected:
                assert order.stop_price is not None
                if not fills.stop_elected(order.side, order.stop_price, high, low):
                    continue
                self._elect(order)
                at = fills.quote(order.stop_price, spread).for_side(order.side)
                fill_price = self._slipped(at, order.side)
                if order.collar is not None:
                    fill_price = min(fill_price, order.collar)
                self._fill(order, order.remaining, fill_price)
            elif order.type == "stop" and order.collar is not None:
                # an elected buy stop resting at its collar works as a buy limit
                if fills.limit_reached_in_bar("buy", order.collar, high, low, spread):
                    self._fill(order, order.remaining, order.collar)
            elif order.type == "limit":
                assert order.limit_price is not None
                if fills.limit_reached_in_bar(order.side, order.limit_price, high, low, spread):
                    self._fill(order, order.remaining, order.limit_price)
            # market orders and elected sell stops are evaluated at each bar's open

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def _expire_day_orders(self, when: datetime) -> None:
        """The session closes: DAY orders expire; working GTC orders are done for the day."""
        for order in list(self.orders.values()):
            if not order.open:
                continue
            if order.time_in_force == "day":
                order.status = "expired"
                order.expired_at = when
                order.updated_at = when
                self._update("expired", order, execution=False, when=when)
            elif order.status in {"new", "partially_filled"}:
                order.status_before_break = order.status
                order.status = "done_for_day"
                self._update("done_for_day", order, execution=False, when=when)

    def _resume_after_break(self) -> None:
        """A new session: GTC orders done for the day work again (a `new` update)."""
        for order in self.orders.values():
            if order.status == "done_for_day" and order.status_before_break is not None:
                order.status = order.status_before_break
                order.status_before_break = None
                self._update("new", order, execution=False)

    def _slipped(self, price: Decimal, side: str) -> Decimal:
        bps = self.options.slippage_bps
        if not bps:
            return price
        factor = 1 + bps / 10_000 if side == "buy" else 1 - bps / 10_000
        return (price * factor).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)

    def _fill(self, order: EmuOrder, qty: int, price: Decimal) -> None:
        """One execution: all of `qty`, or with `partial_fill_rate` a random part of it, the
        rest waiting for the next bar (paper-trading.md)."""
        part = qty
        if qty > 1 and self._chance(self.options.partial_fill_rate):
            part = self._random.randint(1, qty - 1)
            order.resume_cursor = self.cursor + 1
        signed = part if order.side == "buy" else -part
        multiplier = self._multiplier(order.symbol)
        self._apply_position(order.symbol, signed, price * multiplier)  # the basis in dollars
        self.cash -= signed * price * multiplier
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
                "id": self._activity_id(self.now),
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
        if complete and order.order_class == "bracket" and order.legs:
            self._activate_legs(order)
        if order.oco_group:
            self._after_group_fill(order, complete)

    def _after_group_fill(self, order: EmuOrder, complete: bool) -> None:
        """One exit of a pair executed: a partial fill shrinks the other exit to the remaining
        quantity (orders.md); a complete fill ends it. After a take-profit the stop is
        `canceled` (orders.md); after a stop-out the take-profit is reported `replaced`, which
        is what users see [alpaca-py #198] although the docs say only "canceled" — the
        fidelity note (docs/alpaca-fidelity.md) follows the observation, so the
        default does too; `sibling_after_stop="canceled"` gives the documented variant."""
        for other in self.orders.values():
            if other is order or not other.open or other.oco_group != order.oco_group:
                continue
            if not complete:
                other.qty = other.filled_qty + order.remaining
                continue
            ending = "canceled"
            if order.type == "stop" and self.options.sibling_after_stop == "replaced":
                ending = "replaced"
            other.status = ending
            if ending == "canceled":
                other.canceled_at = self.now
            self._update(ending, other, execution=False)

    def _apply_position(self, symbol: str, signed: int, price: Decimal) -> None:
        before = self.positions[symbol]
        after = before + signed
        basis = self.cost_basis[symbol]
        if before == 0 or (before > 0) == (signed > 0):
            basis += signed * price
        elif (before > 0) != (after > 0) and after != 0:
            # flipped through zero: the remainder opens at this price
            basis = after * price
        else:
            basis = basis * after / before if after else Decimal(0)
        self.cost_basis[symbol] = basis
        self.positions[symbol] = after

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
            "order": order.as_json(nested=self.options.legs_always),
            "timestamp": _ts(moment),
            "position_qty": str(self.positions[order.symbol]) if execution else None,
            "price": str(price) if price is not None else None,
            "qty": str(qty) if qty is not None else None,
        }
        self.updates.append(update)
        return update

    def _activity_id(self, moment: datetime) -> str:
        self._activity_count += 1
        return activity_id(moment, self._activity_count)

    def fill_activities(self) -> list[dict[str, Any]]:
        """Every FILL activity, oldest first (`activities.select` filters, orders and pages)."""
        return list(self._activities)

    def account_activities(self) -> list[dict[str, Any]]:
        """Every activity: the FILLs and the option expiries and exercises."""
        return [*self._activities, *self._non_trade]

    def drain_updates(self) -> list[dict[str, Any]]:
        drained, self.updates = self.updates, []
        return drained
