"""The shell that drives the engine with bars and the simulated broker (backtest and replay).

Per minute, in the order a real market imposes:
1. the minute's bars open: queued market orders fill at their symbol's open; the engine reacts
   (places targets);
2. the bars' ranges are known: resting orders they touched fill; the engine reacts;
3. the bars close: the engine sees them (signals, time and session exits, entries), and its
   orders are sent — market orders fill at the next bar's open.
With several symbols every symbol's bar of a minute goes through each stage before the next
stage begins: a decision taken at one symbol's close must not come before another symbol's
target was touched in that same minute.
Every command is recorded in the store before it is executed, and the store is committed per
bar together with the last processed bar, so an interrupted run is consistent up to a bar.

With option profiles a desk (`options/desk.py`: the pricing model or a quote file) answers the
engine's contract requests and quotes contracts to the broker; the shell shows it every bar of
the underlying (its open before the broker's open stage, its close before the close stage), and
after the close stage gives the engine each held contract's quote (`ContractMarked`), so the
loss limits see option positions at their value. Without a desk none of this runs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import groupby

from ict_trader.core.bars import Bar
from ict_trader.core.broker import Broker, ContractDesk, SimulatedDesk, SimulatedMarket
from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    ContractMarked,
    ContractUnavailable,
    Event,
    OrderFilled,
    Output,
    RequestContract,
)
from ict_trader.core.orders import OrderRequest
from ict_trader.notify.notifier import Notifier
from ict_trader.persistence.state_keys import LAST_BAR_KEY
from ict_trader.persistence.store import Store
from ict_trader.runtime import control
from ict_trader.runtime.kernel import Kernel, Observer

_ONE_MINUTE = timedelta(minutes=1)


class SimulationShell:
    """Runs bars through engine + simulated broker (+ store); `observer` sees every step."""

    def __init__(
        self,
        engine: Engine,
        broker: SimulatedMarket,
        store: Store | None = None,
        *,
        observer: Observer | None = None,
        commit_every_bar: bool = False,
        notifier: Notifier | None = None,
        desk: SimulatedDesk | None = None,
        account_every_minute: bool = True,
    ) -> None:
        """`account_every_minute=False` (a sweep, which keeps no equity curve): in a position,
        the engine is shown the account only when it may use it (after a fill, at a bar where
        an entry may be sized, at a new equity peak or a drawdown at its limit), not every
        minute; its decisions are the same (tests/test_backtest_skipping.py). Without effect
        with a store (it records every minute's equity) or a desk (options)."""
        self.engine = engine
        self.broker = broker
        self.store = store
        self.observer = observer
        self.notifier = notifier
        self.desk = desk
        if desk is not None:
            broker.use_quotes(desk)
        self.kernel = Kernel(
            engine,
            SimulatedExecution(broker, store, desk),
            store=store,
            observer=observer,
            notifier=notifier,
        )
        self.commit_every_bar = commit_every_bar
        self.account_every_minute = account_every_minute or store is not None or desk is not None
        # Bars of a file that names no symbol are the only symbol's.
        self._only = engine.symbols[0] if len(engine.symbols) == 1 else ""
        self._account_dirty = True
        self.last_bar: Bar | None = None
        self._last_close: dict[str, float] = {}  # per symbol, for status's unrealized P&L
        self._state_written: list[str] = []

    def run(
        self,
        bars: Iterable[Bar],
        on_bar: Callable[[Bar], None] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Trade `bars`. `on_bar` is called after every bar (the engine is then shown every
        bar); `progress` with the number of bars done since its last call, every
        `PROGRESS_EVERY` bars or so and at the end (bars skipped count as done)."""
        if (
            isinstance(bars, Sequence)
            and on_bar is None
            and self.desk is None
            and not self.commit_every_bar
        ):
            self._run_skipping(bars, progress)
            return
        if progress is not None:
            counted = _Counted(on_bar, progress)
            self.run(bars, counted)
            counted.finish()
            return
        if not self._only:
            self._run_minutes(bars, on_bar)
            return
        broker = self.broker
        step = self.step
        fast_path_allowed = not self.commit_every_bar
        desk = self.desk
        only = self._only
        last: Bar | None = None
        for bar in bars:
            if fast_path_allowed and broker.idle and not self._account_dirty:
                if desk is not None:  # the desk follows the underlying all the same
                    desk.see_open(bar, only)
                    desk.see_close(bar, only)
                self._engine_only(bar)
            else:
                step(bar)
            last = bar
            if on_bar is not None:
                on_bar(bar)
        if last is not None:
            self.last_bar = last
        self.commit()

    def _run_skipping(
        self, bars: Sequence[Bar], progress: Callable[[int], None] | None = None
    ) -> None:
        """`run` over bars the engine may not all need: while the broker is idle, the account
        settled and the engine needs no bar before its next signal (`Engine.next_needed_bar`:
        its detector replays signals found earlier), those bars are skipped by a binary search
        instead of being shown to it one by one. Nothing would have happened on them: the
        engine returns nothing for a flat bar without a signal, and an idle broker has nothing
        to fill (tests/test_backtest_skipping.py compares the results with a run over every bar)."""
        broker = self.broker
        engine = self.engine
        step = self.step
        one_symbol = bool(self._only)
        count = len(bars)
        index = 0
        reported = 0  # bars told to `progress`
        while index < count:
            if progress is not None and index - reported >= PROGRESS_EVERY:
                progress(index - reported)
                reported = index
            bar = bars[index]
            idle = broker.idle and not self._account_dirty
            if idle:
                needed = engine.next_needed_bar(bar.time)
                if needed is None:
                    break
                if needed > bar.time:
                    index = bisect_left(bars, needed, lo=index + 1, key=_time_of)
                    continue
            if not one_symbol:  # several symbols: the minute's bars together
                end = index + 1
                while end < count and bars[end].time == bar.time:
                    end += 1
                self.step_minute(bars[index:end])
                index = end
                continue
            if idle:
                self._engine_only(bar)
            else:
                step(bar)
            index += 1
        if count:
            self.last_bar = bars[-1]
            self._note_last_closes(bars)
        if progress is not None and count > reported:
            progress(count - reported)
        self.commit()

    def _engine_only(self, bar: Bar) -> None:
        """A bar with nothing working at the broker and the account settled: only the engine
        needs it (`step` would do the same with every broker stage a no-op)."""
        commands = self.engine.on_bar(bar)
        if commands:
            self.last_bar = bar
            self._dispatch(commands)
            self._pump()

    def _note_last_closes(self, bars: Sequence[Bar]) -> None:
        """Each symbol's last close in `bars`, as a run over every bar would have noted it
        (status values an open position at it)."""
        wanted = set(self.engine.symbols)
        for bar in reversed(bars):
            symbol = bar.symbol or self._only
            if symbol in wanted:
                self._last_close[symbol] = bar.close
                wanted.discard(symbol)
                if not wanted:
                    return

    def _run_minutes(self, bars: Iterable[Bar], on_bar: Callable[[Bar], None] | None) -> None:
        """Several symbols: bars in (time, symbol) order, a minute at a time."""
        for _, minute in groupby(bars, key=_time_of):
            group = list(minute)
            self.step_minute(group)
            if on_bar is not None:
                for bar in group:
                    on_bar(bar)
        self.commit()

    def _note_close(self, bar: Bar) -> None:
        self._last_close[bar.symbol or self._only] = bar.close

    def commit(self) -> None:
        """Make the records up to the last completed bar durable, with that bar's time."""
        if self.store is not None and self.last_bar is not None:
            self.store.set_state(LAST_BAR_KEY, self.last_bar.time.strftime("%Y-%m-%dT%H:%M:%SZ"))
            self._note_close(self.last_bar)
            for symbol, close in sorted(self._last_close.items()):
                self.store.set_last_close(symbol, close)
            self.store.commit()

    def step(self, bar: Bar) -> None:
        """One bar of the only symbol: `step_minute` for a minute of one bar, without building
        its lists (this runs for every bar a trade is open in a backtest)."""
        broker = self.broker
        desk = self.desk
        symbol = bar.symbol or self._only
        self._last_close[symbol] = bar.close
        if desk is not None:
            desk.see_open(bar, symbol)
        if broker.open_bar(bar, symbol):
            self._pump()
        if desk is not None:
            desk.see_close(bar, symbol)
        if broker.close_bar(bar, symbol):
            self._pump()
        in_position = broker.position(symbol) != 0
        if desk is not None and self._mark_contracts(desk, bar.time + _ONE_MINUTE):
            in_position = True
        if self._account_dirty or in_position:
            self._show_account(bar, in_position)
        commands = self.engine.on_bar(bar)
        if commands:
            self._dispatch(commands)
            self._pump()
        self.last_bar = bar
        if self.commit_every_bar:  # a paced replay: obey `ict-trader kill/resume` as it runs
            if self.store is not None:  # and chart the bars on the dashboard
                self.store.record_bar(bar if bar.symbol else bar._replace(symbol=symbol))
            self.apply_control()
            self.commit()

    def step_minute(self, bars: Sequence[Bar]) -> None:
        """Every symbol's bar of one minute, through the three stages together."""
        if len(bars) == 1:
            self.step(bars[0])
            return
        broker = self.broker
        desk = self.desk
        stamped = [bar if bar.symbol else bar._replace(symbol=self._only) for bar in bars]
        for bar in stamped:
            self._note_close(bar)
            if desk is not None:
                desk.see_open(bar, bar.symbol)
            if broker.open_bar(bar, bar.symbol):
                self._pump()
        for bar in stamped:
            if desk is not None:
                desk.see_close(bar, bar.symbol)
            if broker.close_bar(bar, bar.symbol):
                self._pump()
        in_position = any(broker.position(bar.symbol) != 0 for bar in stamped)
        if desk is not None and self._mark_contracts(desk, bars[0].time + _ONE_MINUTE):
            in_position = True
        if self._account_dirty or in_position:
            self._show_account(bars[0], in_position)
        for bar in bars:
            commands = self.engine.on_bar(bar)
            if commands:
                self._dispatch(commands)
                self._pump()
        self.last_bar = bars[-1]
        if self.commit_every_bar:  # a paced replay: obey `ict-trader kill/resume` as it runs
            if self.store is not None:  # and chart the bars on the dashboard
                for bar in stamped:
                    self.store.record_bar(bar)
            self.apply_control()
            self.commit()

    def _show_account(self, bar: Bar, in_position: bool) -> None:
        """The account at `bar`'s close to the engine (and the store), when it may have changed:
        equity only changes with fills or with the price of an open position."""
        close_time = bar.time + _ONE_MINUTE
        if self._account_dirty or self.account_every_minute or self._account_matters(bar):
            account = self.broker.account(close_time)
            self._deliver(account)
            if self.store is not None:
                self.store.record_equity(close_time, account.equity, account.cash)
        self._account_dirty = in_position and self.account_every_minute

    def _account_matters(self, bar: Bar) -> bool:
        """Whether the engine may use the account at `bar`'s close (see `__init__`)."""
        engine = self.engine
        if engine.may_enter_at(bar.time):
            return True
        risk = engine.risk
        # floats first: the exact equity only near the peak or the drawdown limit
        return risk.equity_may_matter(self.broker.equity_estimate()) and risk.equity_matters(
            self.broker.equity()
        )

    def _mark_contracts(self, desk: SimulatedDesk, at: datetime) -> bool:
        """Give the engine each held contract's quote at the minute's close; whether any
        contract is held (the account then moves with their quotes)."""
        held = self.broker.contracts_held()
        for contract in held:
            quote = desk.quote(contract, at)
            if quote is not None:
                # status and the dashboard value an open contract at its mark, as a share at
                # its last close
                self._last_close[contract] = float(quote.mid)
                self._deliver(ContractMarked(at, quote))
                self._pump()
        return bool(held)

    def apply_control(self) -> None:
        """Deliver a pending kill/resume request from the store; record the trading state."""
        if self.store is None:
            return
        control.apply_requests(self.store, self.deliver)
        control.persist_state(self.store, self.engine, self._state_written)

    def _pump(self) -> None:
        """Deliver broker events to the engine until nothing new happens."""
        broker = self.broker
        events = broker.events()
        while events:
            for event in events:
                self._deliver(event)
            events = broker.events()

    def _deliver(self, event: Event) -> None:
        if isinstance(event, OrderFilled):
            self._account_dirty = True
        self.kernel.deliver(event)

    def deliver(self, event: Event) -> None:
        """Feed an outside event (kill switch, resume, clock tick) through the engine."""
        self._deliver(event)
        self._pump()

    def _dispatch(self, outputs: Sequence[Output]) -> None:
        self.kernel.dispatch(outputs)


class SimulatedExecution:
    """Commands at the simulated broker: the order's intent recorded first, as live does;
    contract requests answered by `desk` (the model or a quote file)."""

    def __init__(
        self, broker: Broker, store: Store | None, desk: ContractDesk | None = None
    ) -> None:
        self.broker = broker
        self.store = store
        self.desk = desk

    def quote_contract(self, request: RequestContract) -> Event:
        if self.desk is None:
            return ContractUnavailable(
                request.time, request.request_id, "this run has no option quotes"
            )
        return self.desk.quote_contract(request)

    def submit(self, order: OrderRequest) -> None:
        if self.store is not None:
            self.store.record_order(order)
        self.broker.submit(order)

    def cancel(self, client_order_id: str) -> None:
        self.broker.cancel(client_order_id)


def _time_of(bar: Bar) -> datetime:
    return bar.time


PROGRESS_EVERY = 4096  # bars between progress reports (a progress bar redraws no faster)


class _Counted:
    """An `on_bar` (possibly none) that also reports progress every `PROGRESS_EVERY` bars;
    `finish` reports the rest."""

    def __init__(
        self, on_bar: Callable[[Bar], None] | None, progress: Callable[[int], None]
    ) -> None:
        self.on_bar = on_bar
        self.progress = progress
        self.done = 0

    def __call__(self, bar: Bar) -> None:
        if self.on_bar is not None:
            self.on_bar(bar)
        self.done += 1
        if self.done == PROGRESS_EVERY:
            self.progress(self.done)
            self.done = 0

    def finish(self) -> None:
        if self.done:
            self.progress(self.done)
            self.done = 0
