"""What flows into the engine (events) and out of it (commands).

The engine is a pure function of its event history: shells (backtest, replay, live) turn bars,
broker updates and the clock into these events, and carry out the commands it returns. Keeping
them plain immutable data is what lets the three shells share every decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from ict_trader.core.bars import Bar
from ict_trader.core.contracts import ContractQuote, OptionDetails
from ict_trader.core.instruments import OptionRight
from ict_trader.core.orders import Leg, OrderRequest
from ict_trader.core.signal import Signal

_ONE_MINUTE = timedelta(minutes=1)

# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class BarClosed:
    bar: Bar

    @property
    def time(self) -> datetime:
        """When the event happened: the bar's close."""
        return self.bar.time + _ONE_MINUTE


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock moved (live: between bars) so time-based exits are not late by a bar."""

    time: datetime


@dataclass(frozen=True, slots=True)
class AccountUpdated:
    """The broker's view of the account; the engine sizes entries from `equity`."""

    time: datetime
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    trading_blocked: bool = False  # the broker's trading_blocked or account_blocked flag
    # What option buys may spend (Alpaca's options_buying_power: no margin on premiums);
    # None: the broker gives none, and `buying_power` is used.
    options_buying_power: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    time: datetime
    client_order_id: str
    broker_order_id: str


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """One execution. `qty`/`price` are this execution's; `cumulative_qty` the order's total.

    Brokers report cumulative quantities; shells derive per-execution deltas and dedupe by
    `execution_id` before the engine sees them.
    """

    time: datetime
    client_order_id: str
    broker_order_id: str
    execution_id: str
    qty: int
    price: Decimal
    cumulative_qty: int
    order_complete: bool
    commission: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class OrderRejected:
    time: datetime
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    """Canceled or expired; either way nothing more will fill."""

    time: datetime
    client_order_id: str
    reason: str = "canceled"


@dataclass(frozen=True, slots=True)
class BrokerError:
    """A broker call failed even after its retries (counted by the error-rate breaker)."""

    time: datetime
    message: str


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """Stop trading now: cancel ict-trader's orders, flatten its positions, take no entries."""

    time: datetime
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class ReduceOnly:
    """No new entries; open trades keep being managed (an unreconciled position, stale data)."""

    time: datetime
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class Resume:
    """Lift the kill switch or the reduce-only state; entries are allowed again."""

    time: datetime
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class ReleaseTrades:
    """A person settled a dispute in the broker's favour: the shares of ict-trader's unfinished
    trades were closed outside it (by hand, at the broker), so ict-trader stops managing them.
    No fill is booked and no P&L counted for what it did not see happen. `symbols`: only the
    trades in these instruments (the disputed ones); None: every unfinished trade."""

    time: datetime
    reason: str
    actor: str
    symbols: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ContractQuoted:
    """The shell's answer to `RequestContract`: the contract its strike rule picked, quoted."""

    time: datetime
    request_id: str
    quote: ContractQuote


@dataclass(frozen=True, slots=True)
class ContractUnavailable:
    """The shell could not answer `RequestContract` (no chain, no quote, no strike fits)."""

    time: datetime
    request_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ContractMarked:
    """A held contract's latest quote, so the loss limits see option positions' value."""

    time: datetime
    quote: ContractQuote


Event = (
    BarClosed
    | Tick
    | AccountUpdated
    | OrderAccepted
    | OrderFilled
    | OrderRejected
    | OrderCanceled
    | BrokerError
    | KillSwitch
    | ReduceOnly
    | Resume
    | ReleaseTrades
    | ContractQuoted
    | ContractUnavailable
    | ContractMarked
)

# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    order: OrderRequest


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RequestContract:
    """Pick and quote the `right` on `underlying` expiring `expiry` by `strike_rule` (its text,
    e.g. `atm`); answered with `ContractQuoted` or `ContractUnavailable` for `request_id`."""

    time: datetime
    request_id: str  # the trade id the contract is for
    underlying: str
    right: OptionRight
    expiry: date
    strike_rule: str
    spot: Decimal  # the underlying's price the request was made at (the signal bar's close)


class TradingState(StrEnum):
    """What the engine lets happen. A `StrEnum`, so the store's JSON and the pages keep the
    plain words."""

    ACTIVE = "active"  # entries and exits
    REDUCING = "reducing"  # no new entries; exits continue (a breaker, a dispute, the store)
    HALTED = "halted"  # the kill switch: everything flattened, nothing new until resumed


class ExitReason(StrEnum):
    TARGET = "target"
    STOP = "stop"
    TIME = "time"
    SESSION_END = "session_end"
    KILL = "kill"


@dataclass(frozen=True, slots=True)
class SignalDetected:
    """Record: a signal the detector emitted (before any profile acted on it)."""

    signal_id: str
    signal: Signal


@dataclass(frozen=True, slots=True)
class EntrySkipped:
    """Record: a profile did not act on a signal, and why."""

    signal_id: str
    profile: str
    reason: str
    time: datetime


@dataclass(frozen=True, slots=True)
class TradeUpdated:
    """Record: the full current state of one trade (inserted or replaced by id)."""

    trade: TradeView


@dataclass(frozen=True, slots=True)
class TradeView:
    """An immutable snapshot of a trade, for stores, reports and notifications."""

    trade_id: str
    signal_id: str
    profile: str
    symbol: str  # the instrument its orders trade
    direction: str
    status: str
    planned_qty: int
    qty: int
    entry_order_id: str
    entry_price: Decimal | None
    entry_time: datetime | None
    target_price: Decimal | None
    stop_price: Decimal | None
    exit_price: Decimal | None
    exit_time: datetime | None
    exit_reason: ExitReason | None
    pnl: Decimal | None
    commission: Decimal
    option: OptionDetails | None = None  # an option trade's contract, as it was entered


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Notify:
    level: Level
    title: str
    message: str
    time: datetime


# ---------------------------------------------------------------- notices
# Facts a person is told about. The engine says what happened; the words are written by
# `notify/texts.py`, next to the notifiers that send them.


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The kill switch engaged, entries were blocked, or trading resumed."""

    time: datetime
    state: TradingState
    reason: str
    actor: str
    closing: int = 0  # trades the kill switch is closing


@dataclass(frozen=True, slots=True)
class EntryFilled:
    """A trade's entry order is done and its exits rest at the broker."""

    time: datetime
    trade: TradeView
    order: str  # the broker's id of the entry order (our client id until it has one)
    price: Decimal  # the exact average fill price (the view's is rounded to 1/10000)


@dataclass(frozen=True, slots=True)
class TradeClosed:
    time: datetime
    trade: TradeView
    exit_orders: tuple[str, ...]  # the broker's ids of the orders that closed it
    entry_order: str


@dataclass(frozen=True, slots=True)
class EntryReduced:
    """A profile's entry was cut to fit the size limits or the buying power."""

    time: datetime
    profile: str
    wanted: int
    qty: int
    cuts: tuple[str, ...]
    unit: str = "shares"  # or "contracts"


@dataclass(frozen=True, slots=True)
class TradeReleased:
    """A person's `reconcile --accept-broker`: the trade is no longer managed, no P&L booked."""

    time: datetime
    trade: TradeView
    held: int
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrderRefused:
    time: datetime
    profile: str
    leg: Leg
    client_order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class UnknownFill:
    """A fill for an order ict-trader did not place (left alone)."""

    time: datetime
    client_order_id: str


@dataclass(frozen=True, slots=True)
class BrokerTrouble:
    time: datetime
    message: str


Notice = (
    TradingStateChanged
    | EntryFilled
    | TradeClosed
    | EntryReduced
    | TradeReleased
    | OrderRefused
    | UnknownFill
    | BrokerTrouble
)

# What the engine returns: commands for the broker, and facts to record and tell.
Command = SubmitOrder | CancelOrder | RequestContract
Fact = SignalDetected | EntrySkipped | TradeUpdated | Notice
Output = Command | Fact
