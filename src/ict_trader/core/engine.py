"""The pure trading core: events in, commands out.

Every decision is taken here — which signals are traded, by which profiles, for how many shares,
and when and how each trade is closed — so a backtest, a paced replay and the live Alpaca loop
all decide identically. The rules themselves are parts of their own (`exits/`: target, stop,
time limit, session end; `sizing.py`; `selection.py`); the engine asks them and keeps the trade
lifecycle. The engine never reads a clock, a file or the network: time arrives in
events, and what it wants done leaves as commands for the shell to execute.

Exits follow the rules a real broker imposes: a resting target *holds* the shares, so a time or
session-end exit first cancels the resting orders, waits for the cancel to be confirmed, and only
then sends the closing market order for whatever is still open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from enum import StrEnum

from ict_trader.core.bars import Bar, price_of
from ict_trader.core.calendar import Session
from ict_trader.core.contracts import OptionDetails
from ict_trader.core.events import (
    AccountUpdated,
    BarClosed,
    BrokerError,
    BrokerTrouble,
    CancelOrder,
    ContractMarked,
    ContractQuoted,
    ContractUnavailable,
    EntryFilled,
    EntryReduced,
    EntrySkipped,
    Event,
    ExitReason,
    KillSwitch,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRefused,
    OrderRejected,
    Output,
    ReduceOnly,
    ReleaseTrades,
    RequestContract,
    Resume,
    SignalDetected,
    SubmitOrder,
    Tick,
    TradeClosed,
    TradeReleased,
    TradeUpdated,
    TradeView,
    TradingState,
    TradingStateChanged,
    UnknownFill,
)
from ict_trader.core.exits import AtrTarget, PriceRule, TimeLimit, TimeRule, exit_plan
from ict_trader.core.exits.option_exits import OptionFlatten, PremiumTarget
from ict_trader.core.instruments import Instrument, OptionRight, instrument_of
from ict_trader.core.ledger import FillRecord, Ledger, OrderRecord
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side, client_order_id, trade_id
from ict_trader.core.risk import Exposure, RiskMonitor
from ict_trader.core.selection import Selection, SignalSymbol
from ict_trader.core.signal import Detector, Direction, ForeseeingDetector, Signal
from ict_trader.core.sizing import EquityAllocation
from ict_trader.core.strategy import (
    EngineConfig,
    OptionEntryPrice,
    OptionTarget,
    StrategyProfile,
)

CENT = Decimal("0.01")
_NOTHING: tuple[Output, ...] = ()
_ONE_MINUTE = timedelta(minutes=1)
_NO_PNL = Decimal(0)
_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A profile's exits: the orders that rest once its entry fills, and the time rules."""

    resting: tuple[PriceRule, ...]
    timed: tuple[TimeRule, ...]
    entry_timeout: timedelta | None = None  # options: cancel an entry not filled by then


@dataclass(frozen=True, slots=True)
class _Quoting:
    """An option entry waiting for its contract quote."""

    profile: StrategyProfile
    signal: Signal
    signal_id: str
    trade_id: str


class TradeStatus(StrEnum):
    PENDING = "pending"  # entry order working
    OPEN = "open"  # position held, target (and stop) resting
    EXITING = "exiting"  # exit decided, waiting for cancels and the closing fill
    CLOSED = "closed"
    CANCELED = "canceled"  # entry never filled
    # Closed outside ict-trader (a person said so after a reconciliation dispute): no exit
    # fill was seen, so no P&L is booked.
    RELEASED = "released"


def signal_id(signal: Signal) -> str:
    """Stable id of a signal: its symbol, bar and direction (a bar emits at most one signal)."""
    stamp = f"{signal.time:%Y%m%dT%H%M}Z-{signal.direction.value}"
    return f"{signal.symbol}-{stamp}" if signal.symbol else stamp


@dataclass
class _Trade:
    """Mutable engine-side state of one trade of one profile."""

    trade_id: str
    signal_id: str
    signal: Signal
    profile: str
    direction: Direction
    planned_qty: int
    entry_order_id: str
    instrument: Instrument  # what the trade's orders trade
    status: TradeStatus = TradeStatus.PENDING
    entry_qty: int = 0
    entry_value: Decimal = Decimal(0)
    entry_time: datetime | None = None
    target_price: Decimal | None = None
    stop_price: Decimal | None = None
    resting: set[str] = field(default_factory=set)  # live target/stop order ids
    exit_order_id: str | None = None  # live market exit, if any
    exit_attempts: int = 0
    exit_reason: ExitReason | None = None
    exit_qty: int = 0
    exit_value: Decimal = Decimal(0)
    exit_time: datetime | None = None
    commission: Decimal = Decimal(0)
    # The broker's ids of the orders that filled, for notifications (a user finds an order in
    # the broker's app by its id, not by ours).
    entry_broker_id: str | None = None
    exit_broker_ids: list[str] = field(default_factory=list)
    plan: _Plan | None = None  # the profile's exits (set when the trade is made)
    option: OptionDetails | None = None  # an option trade's contract as entered
    submitted_at: datetime | None = None  # when the entry order was sent
    entry_timed_out: bool = False  # its cancel was sent because it did not fill in time
    # The time rules' earliest due moment (None: none is due ever), as of `timed_entry` and
    # `timed_session`: they are asked again only from that moment, or when either changes.
    timed_asked: bool = False
    timed_entry: datetime | None = None
    timed_session: Session | None = None
    timed_from: datetime | None = None

    # The symbol whose signal the trade follows (its detector, its session), the symbol its
    # mark is kept under (the contract's for an option), the instrument's multiplier and the
    # position's sign: plain fields, read for every bar a trade is open.
    symbol: str = field(init=False)
    mark_key: str = field(init=False)
    multiplier: int = field(init=False)
    sign: int = field(init=False)  # +1 long, -1 short; an option profile's call or put is long

    def __post_init__(self) -> None:
        self.symbol = self.signal.symbol
        self.mark_key = self.instrument.symbol
        self.multiplier = self.instrument.multiplier
        # An option profile's trade buys its call or put whatever the signal's direction.
        bought = self.option is not None or self.direction is Direction.LONG
        self.sign = 1 if bought else -1

    @property
    def key(self) -> tuple[str, str]:
        return (self.symbol, self.profile)

    @property
    def entry_side(self) -> Side:
        return Side.BUY if self.sign > 0 else Side.SELL

    @property
    def exit_side(self) -> Side:
        return Side.SELL if self.sign > 0 else Side.BUY

    @property
    def remaining(self) -> int:
        return self.entry_qty - self.exit_qty

    @property
    def entry_price(self) -> Decimal | None:
        return self.entry_value / self.entry_qty if self.entry_qty else None

    def pnl(self) -> Decimal | None:
        """Realized P&L from fills only, exact; None until the position is fully closed."""
        if self.status is not TradeStatus.CLOSED:
            return None
        # Exact, not rounded: fills can be sub-penny, and per-trade rounding would make the
        # ledger drift from the account's cash over many trades.
        gross = (self.exit_value - self.entry_value) * self.sign
        multiplier = self.instrument.multiplier
        return (gross if multiplier == 1 else gross * multiplier) - self.commission

    def view(self) -> TradeView:
        entry = self.entry_price
        exit_price = self.exit_value / self.exit_qty if self.exit_qty else None
        return TradeView(
            trade_id=self.trade_id,
            signal_id=self.signal_id,
            profile=self.profile,
            symbol=self.instrument.symbol,
            direction=self.direction.value,
            status=self.status.value,
            planned_qty=self.planned_qty,
            qty=self.entry_qty,
            entry_order_id=self.entry_order_id,
            entry_price=_round_price(entry) if entry is not None else None,
            entry_time=self.entry_time,
            target_price=self.target_price,
            stop_price=self.stop_price,
            exit_price=_round_price(exit_price) if exit_price is not None else None,
            exit_time=self.exit_time,
            exit_reason=self.exit_reason,
            pnl=self.pnl(),
            commission=self.commission,
            option=self.option,
        )


class Engine:
    """Feed it events with `handle`; execute the commands it returns, in order.

    Every profile trades every symbol's signals: one detector per symbol (`detectors`; a single
    detector when there is one symbol), one trade at a time per symbol and profile.
    """

    def __init__(
        self,
        config: EngineConfig,
        detectors: Detector | Mapping[str, Detector],
        *,
        selection: Selection | None = None,
    ) -> None:
        """`selection`: what an entry trades (default: shares of the signal's symbol)."""
        self.config = config
        if not isinstance(detectors, Mapping):
            if len(config.symbols) != 1:
                raise ValueError(f"one detector per symbol is needed for {config.symbols}")
            detectors = {config.symbols[0]: detectors}
        if set(detectors) != set(config.symbols):
            raise ValueError(f"detectors for {sorted(detectors)}, symbols {config.symbols}")
        self._detectors: dict[str, Detector] = dict(detectors)
        # bars that name no symbol go to the only symbol's detector (None with several)
        self._only_detector = self._detectors[config.symbols[0]] if len(detectors) == 1 else None
        # Bars that name no symbol (a plain one-symbol file) are the only symbol's.
        self._only: str = config.symbols[0] if len(config.symbols) == 1 else ""
        foreseeing = [d for d in detectors.values() if isinstance(d, ForeseeingDetector)]
        self._foreseen = foreseeing if len(foreseeing) == len(detectors) else []
        # (asked at, the first signal at or after it): no signal comes between the two
        self._upcoming_signal: tuple[datetime, datetime] = (_NEVER, _NEVER)
        self._profiles: tuple[StrategyProfile, ...] = tuple(p for p in config.profiles if p.enabled)
        exits = exit_plan(config.exits)
        self._shares_plan = _Plan(exits.resting, exits.timed)
        self._plans = {p.name: self._plan_of(p) for p in config.profiles}
        self._underlying_target = AtrTarget(config.exits.target_atr_multiple)
        self._quoting: dict[tuple[str, str], _Quoting] = {}  # option entries awaiting a quote
        # Option trades whose target is judged on the underlying's closes (finished ones are
        # pruned as they are met): empty for shares, so their bars pay nothing for it.
        self._watched: list[_Trade] = []
        self._sizing = EquityAllocation(config.risk)
        self._selection: Selection = selection or SignalSymbol()
        self._equity: Decimal | None = None
        self._halt_reason: str | None = None
        self._reduce_reason: str | None = None
        self._state_actor: str | None = None
        self._buying_power: Decimal | None = None
        self._options_buying_power: Decimal | None = None
        self._account_blocked = False
        self.risk = RiskMonitor(config.risk)
        self._risk_session: Session | None = None
        self._marks: dict[str, Decimal] = {}  # the last close per symbol, for unrealized P&L
        # (symbol, profile) -> its trade that is not finished
        self._active: dict[tuple[str, str], _Trade] = {}
        self._orders: dict[str, tuple[_Trade, Leg]] = {}
        self._seen_executions: set[str] = set()
        self._out: list[Output] = []

    def _plan_of(self, profile: StrategyProfile) -> _Plan:
        if not profile.trades_options:
            return self._shares_plan
        rules = profile.option
        max_hold = timedelta(minutes=self.config.exits.max_hold_minutes)
        resting: tuple[PriceRule, ...] = ()
        if rules.target is OptionTarget.PREMIUM:
            resting = (PremiumTarget(rules.premium_target_pct),)
        return _Plan(
            resting=resting,
            timed=(OptionFlatten(rules.flatten_before_close, max_hold), TimeLimit(max_hold)),
            entry_timeout=timedelta(minutes=rules.entry_timeout_minutes),
        )

    def _plan_named(self, profile: str) -> _Plan:
        """A restored trade's plan: its profile's, or, for a profile no longer configured, the
        shares' exits (an option trade then keeps the default option flatten)."""
        plan = self._plans.get(profile)
        if plan is not None:
            return plan
        return self._shares_plan

    # ------------------------------------------------------------------ public API

    @property
    def open_trades(self) -> list[TradeView]:
        return [trade.view() for trade in self._active.values()]

    def open_position(self, symbol: str) -> int:
        """Net units of `symbol` ict-trader's unfinished trades hold (negative when short)."""
        return sum(
            trade.sign * trade.remaining
            for trade in self._active.values()
            if trade.instrument.symbol == symbol
        )

    def open_positions(self) -> dict[str, int]:
        """Net units per traded symbol, for every symbol a trade is unfinished in."""
        held: dict[str, int] = {}
        for trade in self._active.values():
            symbol = trade.instrument.symbol
            held[symbol] = held.get(symbol, 0) + trade.sign * trade.remaining
        return held

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.config.symbols

    def session(self, symbol: str) -> Session | None:
        """The session of the last bar `symbol`'s detector saw."""
        return self._detectors[symbol].session

    def next_needed_bar(self, time: datetime) -> datetime | None:
        """The time of the first bar at or after `time` this engine must see; None if it needs
        no more bars.

        That is `time` itself unless the engine is flat with nothing pending (no trade, no
        contract quote awaited) and every detector knows its signals ahead: then nothing happens
        before the next signal's bar, so a shell whose broker is idle may skip to it."""
        if self._active or self._quoting or not self._foreseen:
            return time
        return self._next_signal_at(time)

    def may_enter_at(self, time: datetime) -> bool:
        """Whether an entry may be sized at `time`'s bar: False only when every detector knows
        its signals ahead and none comes at that bar (an entry is sized from the account)."""
        if not self._foreseen:
            return True
        asked, upcoming = self._upcoming_signal
        if not asked <= time <= upcoming:  # asked every minute in a trade: look again rarely
            upcoming = self._next_signal_at(time) or _NEVER
            self._upcoming_signal = (time, upcoming)
        return upcoming == time

    def _next_signal_at(self, time: datetime) -> datetime | None:
        """The first signal bar at or after `time` of any symbol (detectors that foresee)."""
        found = [at for d in self._foreseen if (at := d.next_signal_at(time)) is not None]
        return min(found) if found else None

    def warm(self, bar: Bar) -> None:
        """Show a bar to its symbol's detector without trading on it (a restart's history)."""
        self._detector_of(bar).update(bar)

    def _detector_of(self, bar: Bar) -> Detector:
        symbol = bar.symbol or self._only
        detector = self._detectors.get(symbol)
        if detector is None:
            named = f"a bar of {symbol}" if symbol else "a bar without a symbol"
            raise ValueError(
                f"{named} at {bar.time.isoformat()}: ict-trader trades {', '.join(self.symbols)}"
            )
        return detector

    @property
    def equity(self) -> Decimal | None:
        return self._equity

    def handle(self, event: Event) -> Sequence[Output]:
        """Apply one event; return the commands it leads to (possibly none)."""
        if isinstance(event, AccountUpdated):  # the most frequent: every minute in a position
            self._equity = event.equity
            self._buying_power = event.buying_power
            self._options_buying_power = event.options_buying_power
            self._account_blocked = event.trading_blocked
            self.risk.equity(event.equity)  # checked with the next bar or fill
            return _NOTHING
        if isinstance(event, BarClosed):
            return self.on_bar(event.bar)
        self._out = []
        if isinstance(event, OrderFilled):
            self._on_fill(event)
        elif isinstance(event, Tick):
            self._manage_exits(event.time)
        elif isinstance(event, OrderCanceled):
            self._on_order_done(event.client_order_id, event.time, filled=False, why=event.reason)
        elif isinstance(event, OrderRejected):
            self._on_rejected(event)
        elif isinstance(event, BrokerError):
            self._out.append(BrokerTrouble(event.time, event.message))
            self.risk.error(event.time)
            self._check_risk(event.time)
        elif isinstance(event, KillSwitch):
            self._kill(event)
        elif isinstance(event, ReduceOnly):
            self._reduce_reason = event.reason
            self._state_actor = event.actor
            self._out.append(
                TradingStateChanged(event.time, TradingState.REDUCING, event.reason, event.actor)
            )
        elif isinstance(event, Resume):
            self._resume(event)
        elif isinstance(event, ReleaseTrades):
            self._release(event)
        elif isinstance(event, ContractQuoted):
            self._on_contract(event)
        elif isinstance(event, ContractUnavailable):
            self._on_no_contract(event)
        elif isinstance(event, ContractMarked):
            self._marks[event.quote.symbol] = event.quote.mid
            self._mark_to_market()
            self._check_risk(event.time)
        elif isinstance(event, OrderAccepted):
            pass  # the shell records broker ids; nothing to decide
        return self._out

    @property
    def halted(self) -> bool:
        """True while the kill switch is engaged."""
        return self._halt_reason is not None

    @property
    def state_reason(self) -> str | None:
        return self._halt_reason if self._halt_reason is not None else self._reduce_reason

    @property
    def state_actor(self) -> str | None:
        return self._state_actor

    @property
    def state(self) -> TradingState:
        if self._halt_reason is not None:
            return TradingState.HALTED
        return TradingState.REDUCING if self._reduce_reason is not None else TradingState.ACTIVE

    def _kill(self, event: KillSwitch) -> None:
        self._halt_reason = event.reason
        self._state_actor = event.actor
        self._out.append(
            TradingStateChanged(
                event.time,
                TradingState.HALTED,
                event.reason,
                event.actor,
                closing=len(self._active),
            )
        )
        self._quoting.clear()  # an answer arriving now opens nothing (the request is gone)
        for trade in list(self._active.values()):
            if trade.status is not TradeStatus.EXITING:  # an exit already underway completes
                self._begin_exit(trade, ExitReason.KILL, event.time)

    def _resume(self, event: Resume) -> None:
        self._halt_reason = None
        self._reduce_reason = None
        self._state_actor = event.actor
        self._out.append(
            TradingStateChanged(event.time, TradingState.ACTIVE, event.reason, event.actor)
        )

    def _release(self, event: ReleaseTrades) -> None:
        self._quoting.clear()
        for trade in list(self._active.values()):
            if event.symbols is not None and trade.instrument.symbol not in event.symbols:
                continue
            working = set(trade.resting)
            if trade.exit_order_id is not None:
                working.add(trade.exit_order_id)
            for order_id in sorted(working):
                self._out.append(CancelOrder(order_id, "released"))
                self._orders.pop(order_id, None)
            if trade.status is TradeStatus.PENDING:
                self._orders.pop(trade.entry_order_id, None)
                self._out.append(CancelOrder(trade.entry_order_id, "released"))
            trade.resting.clear()
            trade.exit_order_id = None
            trade.status = TradeStatus.RELEASED
            self._active.pop(trade.key, None)
            self._record(trade)
            self._out.append(
                TradeReleased(event.time, trade.view(), trade.remaining, event.actor, event.reason)
            )
        self._mark_to_market()

    def restore(self, ledger: Ledger) -> None:
        """Resume managing the unfinished trades of a previous run from its ledger.

        Time exits keep counting from the recorded entry fill, resting orders stay resting, and
        executions already booked are never booked twice.
        """
        fills_by_order: dict[str, list[FillRecord]] = {}
        for fill in ledger.fills:
            fills_by_order.setdefault(fill.client_order_id, []).append(fill)
            self._seen_executions.add(fill.execution_id)
        orders_by_trade: dict[str, list[OrderRecord]] = {}
        for order in ledger.orders:
            orders_by_trade.setdefault(order.request.trade_id, []).append(order)
        for view in ledger.unfinished_trades():
            signal = ledger.signals[view.signal_id]
            if not signal.symbol:  # recorded before signals named their symbol: the only one
                signal = replace(signal, symbol=self._only or view.symbol)
            trade = _Trade(
                trade_id=view.trade_id,
                signal_id=view.signal_id,
                signal=signal,
                profile=view.profile,
                direction=Direction(view.direction),
                planned_qty=view.planned_qty,
                entry_order_id=view.entry_order_id,
                instrument=instrument_of(view.symbol),
                status=TradeStatus(view.status),
                target_price=view.target_price,
                stop_price=view.stop_price,
                exit_reason=view.exit_reason,
                plan=self._plan_named(view.profile),
                option=view.option,
            )
            exits_filled: list[tuple[tuple[datetime, str], str]] = []
            for order in orders_by_trade.get(view.trade_id, []):
                request = order.request
                leg = request.leg
                fills = sorted(fills_by_order.get(request.client_order_id, []), key=_fill_key)
                # The notices name orders by the broker's ids, also for orders placed before
                # the restart (the ids a user finds at the broker, not our client ids).
                if leg is Leg.ENTRY and order.broker_order_id is not None:
                    trade.entry_broker_id = order.broker_order_id
                elif fills and order.broker_order_id is not None:
                    exits_filled.append((_fill_key(fills[0]), order.broker_order_id))
                for fill in fills:
                    trade.commission += fill.commission
                    if leg is Leg.ENTRY:
                        trade.entry_qty += fill.qty
                        trade.entry_value += fill.price * fill.qty
                        if trade.entry_time is None:
                            trade.entry_time = fill.time
                    else:
                        trade.exit_qty += fill.qty
                        trade.exit_value += fill.price * fill.qty
                        trade.exit_time = fill.time
                if leg is Leg.EXIT:
                    trade.exit_attempts += 1
                if order.status.is_final:
                    continue
                self._orders[request.client_order_id] = (trade, leg)
                if leg in (Leg.TARGET, Leg.STOP):
                    trade.resting.add(request.client_order_id)
                elif leg is Leg.EXIT:
                    trade.exit_order_id = request.client_order_id
            trade.exit_broker_ids = [broker_id for _, broker_id in sorted(exits_filled)]
            self._active[trade.key] = trade
            if trade.option is not None and trade.option.underlying_target is not None:
                self._watched.append(trade)

    # ------------------------------------------------------------------ bars and signals

    def on_bar(self, bar: Bar) -> Sequence[Output]:
        """`handle(BarClosed(bar))` without the event object: the per-bar hot path."""
        # The hot path: a bar of the only symbol names none, or names it.
        detector = self._only_detector if not bar.symbol else self._detectors.get(bar.symbol)
        if detector is None:
            detector = self._detector_of(bar)  # raises: a symbol not traded
        signal = detector.update(bar)
        if not self._active and signal is None:
            return _NOTHING  # most bars: no trade to manage, no signal
        session = detector.session
        if session is not self._risk_session:  # the daily limits start afresh each session
            self._risk_session = session
            if session is not None:
                self.risk.new_session(session.day)
        out: list[Output] = []
        self._out = out
        now = bar.time + _ONE_MINUTE
        if self._active:
            symbol = bar.symbol or self._only
            close = price_of(bar.close)
            self._marks[symbol] = close
            self._mark_to_market()
            self._check_risk(now)
            self._manage_exits(now)
            if self._watched:
                self._watch_underlying(symbol, close, now)
        if signal is not None:
            symbol = bar.symbol or self._only
            if signal.symbol != symbol:
                signal = replace(signal, symbol=symbol)
            assert session is not None
            self._on_signal(signal, session, now)
        return out

    def _on_signal(self, signal: Signal, session: Session, now: datetime) -> None:
        sid = signal_id(signal)
        self._out.append(SignalDetected(sid, signal))
        instrument = self._selection.instrument(signal)
        price = price_of(signal.close)
        for profile in self._profiles:
            reason = self._skip_reason(profile, signal.symbol, session, now)
            if reason is not None:
                self._out.append(EntrySkipped(sid, profile.name, reason, now))
                continue
            if profile.trades_options:
                self._request_contract(profile, signal, sid, session, now)
                continue
            assert self._equity is not None
            size = self._sizing.size(
                profile,
                price,
                equity=self._equity,
                buying_power=self._buying_power,
                open_total=self._exposure(None, signal.symbol, price),
                open_in_symbol=self._exposure(signal.symbol, signal.symbol, price),
                multiplier=instrument.multiplier,
            )
            if size.refused is not None:
                self._out.append(EntrySkipped(sid, profile.name, size.refused, now))
                continue
            if size.cuts:
                self._out.append(EntryReduced(now, profile.name, size.wanted, size.qty, size.cuts))
            self._open_trade(profile, signal, sid, instrument=instrument, qty=size.qty, now=now)

    def _exposure(self, symbol: str | None, priced: str, price: Decimal) -> Exposure:
        """Planned units of the open trades (of `symbol`, or all) and their value: at `price`
        for `priced`'s trades, at its last close for another symbol's."""
        units = 0
        notional = Decimal(0)
        for trade in self._active.values():
            if symbol is not None and trade.symbol != symbol:
                continue
            units += trade.planned_qty
            at = price if trade.mark_key == priced else self._marks.get(trade.mark_key)
            if at is None:
                at = _unmarked_price(trade)
            notional += trade.planned_qty * at * trade.instrument.multiplier
        return Exposure(units, notional)

    def _skip_reason(
        self, profile: StrategyProfile, symbol: str, session: Session, now: datetime
    ) -> str | None:
        if self._halt_reason is not None:
            return f"kill switch engaged: {self._halt_reason}"
        if self._reduce_reason is not None:
            return f"entries blocked: {self._reduce_reason}"
        if self._account_blocked:
            return "the broker reports the account or trading as blocked"
        loss_limit = self.config.risk.symbol_daily_loss_limit
        if loss_limit:
            pnl = self._symbol_session_pnl(symbol)
            if pnl <= -loss_limit:
                return f"{symbol} loss limit: session P&L {pnl:+.2f} reached -{loss_limit}"
        busy = self._active.get((symbol, profile.name))
        if busy is not None:
            return f"already in trade {busy.trade_id} ({busy.status.value})"
        asked = self._quoting.get((symbol, profile.name))
        if asked is not None:
            return f"already asking for a contract for trade {asked.trade_id}"
        for rule in self._plans[profile.name].timed:
            blocked = rule.entry_blocked(now, session)
            if blocked is not None:
                return blocked
        if self._equity is None:
            return "account equity not known yet"
        return None

    def _open_trade(
        self,
        profile: StrategyProfile,
        signal: Signal,
        sid: str,
        *,
        instrument: Instrument,
        qty: int,
        now: datetime,
        limit_price: Decimal | None = None,
        option: OptionDetails | None = None,
    ) -> None:
        tid = trade_id(signal.symbol, signal.time, signal.direction.value, profile.name)
        entry_id = client_order_id(tid, Leg.ENTRY)
        trade = _Trade(
            trade_id=tid,
            signal_id=sid,
            signal=signal,
            profile=profile.name,
            direction=signal.direction,
            planned_qty=qty,
            entry_order_id=entry_id,
            instrument=instrument,
            plan=self._plans[profile.name],
            option=option,
            submitted_at=now,
        )
        self._active[trade.key] = trade
        if option is not None and option.underlying_target is not None:
            self._watched.append(trade)
        self._orders[entry_id] = (trade, Leg.ENTRY)
        self._submit(
            trade,
            leg=Leg.ENTRY,
            side=trade.entry_side,
            qty=qty,
            kind=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
            now=now,
            order_id=entry_id,
            limit_price=limit_price,
        )
        self._record(trade)

    # ------------------------------------------------------------------ option entries

    def _request_contract(
        self,
        profile: StrategyProfile,
        signal: Signal,
        sid: str,
        session: Session,
        now: datetime,
    ) -> None:
        """Ask the shell for the same-day call (long signal) or put (short) the profile's
        strike rule picks; the entry is sized and sent when the quote comes back."""
        tid = trade_id(signal.symbol, signal.time, signal.direction.value, profile.name)
        self._quoting[(signal.symbol, profile.name)] = _Quoting(profile, signal, sid, tid)
        right = OptionRight.CALL if signal.direction is Direction.LONG else OptionRight.PUT
        self._out.append(
            RequestContract(
                time=now,
                request_id=tid,
                underlying=signal.symbol,
                right=right,
                expiry=session.day,
                strike_rule=profile.option.strike,
                spot=price_of(signal.close),
            )
        )

    def _take_quoting(self, request_id: str) -> _Quoting | None:
        for key, asked in self._quoting.items():
            if asked.trade_id == request_id:
                del self._quoting[key]
                return asked
        return None  # answered already, or the kill switch dropped it

    def _on_no_contract(self, event: ContractUnavailable) -> None:
        asked = self._take_quoting(event.request_id)
        if asked is not None:
            reason = f"no contract: {event.reason}"
            self._out.append(EntrySkipped(asked.signal_id, asked.profile.name, reason, event.time))

    def _on_contract(self, event: ContractQuoted) -> None:
        asked = self._take_quoting(event.request_id)
        if asked is None:
            return
        quote = event.quote
        profile = asked.profile
        now = event.time

        def skip(reason: str) -> None:
            self._out.append(EntrySkipped(asked.signal_id, profile.name, reason, now))

        if self._halt_reason is not None or self._reduce_reason is not None:
            skip(f"entries blocked while the contract was quoted: {self.state_reason}")
            return
        instrument = instrument_of(quote.symbol)
        wanted = OptionRight.CALL if asked.signal.direction is Direction.LONG else OptionRight.PUT
        if not instrument.is_option or instrument.root != asked.signal.symbol:
            skip(f"the answer {quote.symbol} is not an option on {asked.signal.symbol}")
            return
        if instrument.right is not wanted:
            skip(f"the answer {quote.symbol} is not a {wanted}")
            return
        if quote.ask <= 0 or quote.bid < 0 or quote.bid > quote.ask:
            skip(f"{quote.symbol} has no usable market (bid {quote.bid}, ask {quote.ask})")
            return
        rules = profile.option
        assert self._equity is not None
        size = self._sizing.size(
            profile,
            quote.ask,
            equity=self._equity,
            buying_power=(
                self._options_buying_power
                if self._options_buying_power is not None
                else self._buying_power
            ),
            open_total=self._exposure(None, quote.symbol, quote.ask),
            open_in_symbol=self._exposure(asked.signal.symbol, quote.symbol, quote.ask),
            multiplier=instrument.multiplier,
            unit="contracts",
        )
        if size.refused is not None:
            skip(size.refused)
            return
        qty = size.qty
        cuts = list(size.cuts)
        if qty > rules.max_contracts:
            qty = rules.max_contracts
            cuts.append(f"option.max_contracts {rules.max_contracts}")
        affordable = int(rules.max_premium / (quote.ask * instrument.multiplier))
        if qty > affordable:
            qty = affordable
            cuts.append(f"option.max_premium {rules.max_premium}")
        if qty == 0:
            skip(f"size limits leave 0 of {size.wanted} contracts: {', '.join(cuts)}")
            return
        if cuts:
            self._out.append(
                EntryReduced(now, profile.name, size.wanted, qty, tuple(cuts), "contracts")
            )
        spot = price_of(asked.signal.close)
        underlying_target = None
        if rules.target is OptionTarget.UNDERLYING:
            underlying_target = self._underlying_target.price(asked.signal, spot)
        limit = quote.ask
        if rules.entry_price is OptionEntryPrice.MID:
            limit = quote.mid.quantize(CENT, rounding=ROUND_HALF_UP)
        details = OptionDetails(
            source=quote.source,
            bid=quote.bid,
            ask=quote.ask,
            delta=quote.delta,
            iv=quote.iv,
            underlying_entry=spot,
            underlying_target=underlying_target,
        )
        self._open_trade(
            profile,
            asked.signal,
            asked.signal_id,
            instrument=instrument,
            qty=qty,
            now=now,
            limit_price=limit,
            option=details,
        )

    def _watch_underlying(self, symbol: str, close: Decimal, now: datetime) -> None:
        """Option trades whose target is judged on the underlying: close at market once a bar
        of the underlying closes at or beyond the level (a contract has no such resting
        order)."""
        active = self._active
        self._watched = [t for t in self._watched if active.get(t.key) is t]
        for trade in list(self._watched):
            option = trade.option
            assert option is not None and option.underlying_target is not None
            if trade.status is not TradeStatus.OPEN or trade.symbol != symbol:
                continue
            beyond = close - option.underlying_target
            if trade.direction is Direction.SHORT:
                beyond = -beyond
            if beyond >= 0:
                self._begin_exit(trade, ExitReason.TARGET, now)

    # ------------------------------------------------------------------ exits by time

    def _manage_exits(self, now: datetime) -> None:
        only = self._only_detector
        for trade in list(self._active.values()):
            if trade.status is TradeStatus.EXITING:
                continue
            plan = trade.plan or self._shares_plan
            if (
                trade.status is TradeStatus.PENDING
                and plan.entry_timeout is not None
                and not trade.entry_timed_out
                and trade.exit_reason is None
                and trade.submitted_at is not None
                and now >= trade.submitted_at + plan.entry_timeout
            ):
                # What filled stays and is managed; the rest of the entry is not wanted.
                trade.entry_timed_out = True
                self._out.append(CancelOrder(trade.entry_order_id, "entry timeout"))
            session = (only or self._detectors[trade.symbol]).session
            if (
                not trade.timed_asked
                or trade.timed_entry is not trade.entry_time
                or trade.timed_session is not session
            ):
                trade.timed_asked = True
                trade.timed_entry = trade.entry_time
                trade.timed_session = session
                moments = [
                    at for rule in plan.timed if (at := rule.due_at(trade, session)) is not None
                ]
                trade.timed_from = min(moments) if moments else None
            if trade.timed_from is None or now < trade.timed_from:
                continue
            for rule in plan.timed:  # the first rule due names the exit
                reason = rule.due(trade, now, session)
                if reason is not None:
                    self._begin_exit(trade, reason, now)
                    break

    def _begin_exit(self, trade: _Trade, reason: ExitReason, now: datetime) -> None:
        if trade.status is TradeStatus.PENDING:
            if trade.exit_reason is None:
                trade.exit_reason = reason
                self._out.append(CancelOrder(trade.entry_order_id, f"{reason.value} exit"))
            return
        trade.status = TradeStatus.EXITING
        trade.exit_reason = reason
        if trade.resting:
            for order_id in sorted(trade.resting):
                self._out.append(CancelOrder(order_id, f"{reason.value} exit"))
        else:
            self._send_market_exit(trade, now)
        self._record(trade)

    def _send_market_exit(self, trade: _Trade, now: datetime) -> None:
        if trade.remaining <= 0 or trade.exit_order_id is not None:
            return
        trade.exit_attempts += 1
        order_id = client_order_id(trade.trade_id, Leg.EXIT, attempt=trade.exit_attempts)
        trade.exit_order_id = order_id
        self._orders[order_id] = (trade, Leg.EXIT)
        self._submit(
            trade,
            leg=Leg.EXIT,
            side=trade.exit_side,
            qty=trade.remaining,
            kind=OrderType.MARKET,
            now=now,
            order_id=order_id,
        )

    # ------------------------------------------------------------------ broker updates

    def _on_fill(self, fill: OrderFilled) -> None:
        if fill.execution_id in self._seen_executions:
            return
        self._seen_executions.add(fill.execution_id)
        known = self._orders.get(fill.client_order_id)
        if known is None:
            self._out.append(UnknownFill(fill.time, fill.client_order_id))
            return
        trade, leg = known
        value = fill.price * fill.qty
        trade.commission += fill.commission
        if leg is Leg.ENTRY:
            trade.entry_qty += fill.qty
            trade.entry_value += value
            trade.entry_broker_id = fill.broker_order_id
            if trade.entry_time is None:
                trade.entry_time = fill.time
        else:
            if fill.broker_order_id not in trade.exit_broker_ids:
                trade.exit_broker_ids.append(fill.broker_order_id)
            trade.exit_qty += fill.qty
            trade.exit_value += value
            trade.exit_time = fill.time
        if fill.order_complete:
            self._on_order_done(fill.client_order_id, fill.time, filled=True, why="filled")
        else:
            self._record(trade)

    def _on_rejected(self, event: OrderRejected) -> None:
        self.risk.error(event.time)
        self._check_risk(event.time)
        known = self._orders.get(event.client_order_id)
        if known is not None:
            trade, leg = known
            self._out.append(
                OrderRefused(event.time, trade.profile, leg, event.client_order_id, event.reason)
            )
            if leg is Leg.STOP and trade.status is TradeStatus.OPEN:
                # The broker will not rest the stop (Alpaca refuses an OCO whose stop the price
                # has already crossed): the position may not stay without the protection its
                # profile asks for, so it is closed now, as the stop would have closed it.
                self._on_order_done(event.client_order_id, event.time, filled=False, why="")
                self._begin_exit(trade, ExitReason.STOP, event.time)
                return
        self._on_order_done(event.client_order_id, event.time, filled=False, why=event.reason)

    def _on_order_done(self, order_id: str, now: datetime, *, filled: bool, why: str) -> None:
        """An order reached a final state: decide what the trade does next."""
        known = self._orders.pop(order_id, None)
        if known is None:
            return
        trade, leg = known
        if leg is Leg.ENTRY:
            self._entry_done(trade, now)
        elif leg is Leg.EXIT:
            trade.exit_order_id = None
            if trade.remaining > 0:
                # A rejected or canceled exit must never leave the position unmanaged: retry.
                self._send_market_exit(trade, now)
        else:
            trade.resting.discard(order_id)
            if filled:
                # Whatever exit was pending, this order is what actually closed the position.
                trade.exit_reason = ExitReason.TARGET if leg is Leg.TARGET else ExitReason.STOP
                trade.status = TradeStatus.EXITING
                for sibling in sorted(trade.resting):
                    self._out.append(CancelOrder(sibling, f"{leg.value} filled"))
            if trade.status is TradeStatus.EXITING and not trade.resting and trade.remaining > 0:
                self._send_market_exit(trade, now)
        self._finish_if_flat(trade, now)
        self._record(trade)

    def _entry_done(self, trade: _Trade, now: datetime) -> None:
        if trade.entry_qty == 0:
            trade.status = TradeStatus.CANCELED
            return
        trade.status = TradeStatus.OPEN
        if trade.exit_reason is not None:
            # The exit was decided while the entry was still working: close what filled.
            trade.status = TradeStatus.EXITING
            self._send_market_exit(trade, now)
            return
        self._place_protective_orders(trade, now)
        self._out.append(self._entry_notice(trade, now))

    def _place_protective_orders(self, trade: _Trade, now: datetime) -> None:
        entry = trade.entry_value / trade.entry_qty
        rules = (trade.plan or self._shares_plan).resting
        priced = [(rule.leg, rule.price(trade.signal, entry)) for rule in rules]
        legs = [(leg, price) for leg, price in priced if price is not None]
        oco = trade.trade_id if len(legs) > 1 else None  # whichever fills cancels the others
        for leg, price in legs:
            if leg is Leg.TARGET:
                trade.target_price = price
            else:
                trade.stop_price = price
        for leg, price in legs:
            order_id = client_order_id(trade.trade_id, leg)
            self._orders[order_id] = (trade, leg)
            trade.resting.add(order_id)
            self._submit(
                trade,
                leg=leg,
                side=trade.exit_side,
                qty=trade.entry_qty,
                kind=OrderType.LIMIT if leg is Leg.TARGET else OrderType.STOP,
                now=now,
                order_id=order_id,
                limit_price=price if leg is Leg.TARGET else None,
                stop_price=price if leg is Leg.STOP else None,
                oco_group=oco,
            )

    def _symbol_session_pnl(self, symbol: str) -> Decimal:
        """`symbol`'s P&L this session: its closed trades', and its open ones' at its mark."""
        pnl = self.risk.realized_by_symbol.get(symbol, Decimal(0))
        for t in self._active.values():
            mark = self._marks.get(t.mark_key)
            if t.symbol == symbol and t.entry_qty and mark is not None:
                moved = t.sign * (t.exit_value + mark * t.remaining - t.entry_value)
                pnl += moved * t.instrument.multiplier
        return pnl

    def _mark_to_market(self) -> None:
        """Open trades' P&L so far at their symbols' last closes, for the loss limits."""
        marks = self._marks
        if not marks:
            return
        unrealized = _NO_PNL
        for t in self._active.values():
            mark = marks.get(t.mark_key)
            if t.entry_qty and mark is not None:
                moved = t.sign * (t.exit_value + mark * (t.entry_qty - t.exit_qty) - t.entry_value)
                unrealized += moved if t.multiplier == 1 else moved * t.multiplier
        self.risk.mark(unrealized)

    def _check_risk(self, now: datetime) -> None:
        if self._halt_reason is not None:
            return
        trip = self.risk.check(now)
        if trip is not None:
            breaker, reason = trip
            self._kill(KillSwitch(now, reason, breaker.actor))

    def _finish_if_flat(self, trade: _Trade, now: datetime) -> None:
        if trade.status is TradeStatus.CANCELED:
            self._active.pop(trade.key, None)
            return
        if trade.entry_qty > 0 and trade.remaining == 0 and trade.status is TradeStatus.EXITING:
            if trade.resting or trade.exit_order_id is not None:
                return
            trade.status = TradeStatus.CLOSED
            self._active.pop(trade.key, None)
            self._out.append(self._exit_notice(trade, now))
            pnl = trade.pnl()
            assert pnl is not None
            self.risk.realize(pnl, trade.symbol)
            self._mark_to_market()
            self._check_risk(now)

    # ------------------------------------------------------------------ helpers

    def _submit(
        self,
        trade: _Trade,
        *,
        leg: Leg,
        side: Side,
        qty: int,
        kind: OrderType,
        now: datetime,
        order_id: str,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        oco_group: str | None = None,
    ) -> None:
        self._out.append(
            SubmitOrder(
                OrderRequest(
                    client_order_id=order_id,
                    symbol=trade.instrument.symbol,
                    side=side,
                    qty=qty,
                    type=kind,
                    trade_id=trade.trade_id,
                    profile=trade.profile,
                    leg=leg,
                    limit_price=limit_price,
                    stop_price=stop_price,
                    oco_group=oco_group,
                    created_at=now,
                    position_intent=_intent(trade, leg),
                )
            )
        )

    def _record(self, trade: _Trade) -> None:
        self._out.append(TradeUpdated(trade.view()))

    def _entry_notice(self, trade: _Trade, now: datetime) -> EntryFilled:
        price = trade.entry_price
        assert price is not None
        return EntryFilled(now, trade.view(), trade.entry_broker_id or trade.entry_order_id, price)

    def _exit_notice(self, trade: _Trade, now: datetime) -> TradeClosed:
        return TradeClosed(
            now,
            trade.view(),
            tuple(trade.exit_broker_ids),
            trade.entry_broker_id or trade.entry_order_id,
        )


def _intent(trade: _Trade, leg: Leg) -> str | None:
    """Alpaca's position_intent for an option order (bought to open, sold to close)."""
    if not trade.instrument.is_option:
        return None
    return "buy_to_open" if leg is Leg.ENTRY else "sell_to_close"


def _fill_key(fill: FillRecord) -> tuple[datetime, str]:
    return (fill.time, fill.execution_id)


def _unmarked_price(trade: _Trade) -> Decimal:
    """A unit's value before any mark of it arrived: its entry, else what it was sized at."""
    if trade.entry_qty:
        return trade.entry_value / trade.entry_qty
    if trade.option is not None:
        return trade.option.ask
    return price_of(trade.signal.close)


def _round_price(value: Decimal) -> Decimal:
    """Average fill prices to 1/10000 dollar, as brokers report them."""
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
