"""The one loop every shell runs: events into the engine, its outputs carried out.

Backtest, replay and live used to each deliver events and dispatch the engine's outputs in their
own copy of this code, and the copies drifted (replay wrote a `kill` audit row, live did not).
Now a shell owns only its clock, its data source and how it executes a command at its broker
(`Executor`); what is recorded, told and observed is decided here, once:

- an event is shown to the observer, recorded (broker events about orders) and handed to the
  engine;
- a command (submit, cancel, ask for an option contract) is shown, logged and given to the
  executor; a contract request's answer goes straight back in as an event;
- a fact (signal, skip, trade update) is shown, logged and recorded; a notice (a trading-state
  change, a trade closed…) is put into words by `notify.texts`, then shown, logged, recorded
  and sent to the notifier — and a trading-state change is also written to the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    CancelOrder,
    EntrySkipped,
    Event,
    Notify,
    Output,
    RequestContract,
    SignalDetected,
    SubmitOrder,
    TradeUpdated,
    TradingState,
    TradingStateChanged,
)
from ict_trader.core.orders import OrderRequest
from ict_trader.notify.notifier import Notifier
from ict_trader.notify.texts import render
from ict_trader.persistence.store import ORDER_EVENTS, Store
from ict_trader.runtime.decision_log import Logged, log_command

# What an observer sees: the events, and the outputs as they are carried out (a notice in its
# words, as `Notify`).
Seen = Event | Logged
Observer = Callable[[Seen], None]
# Runs one store write; False when it could not be made (the live loop keeps it for later).
Writer = Callable[[Callable[[], object]], bool]

_AUDIT_KIND = {
    TradingState.HALTED: "kill",
    TradingState.REDUCING: "reduce",
    TradingState.ACTIVE: "resume",
}


class Executor(Protocol):
    """How a shell carries out the engine's commands at its broker."""

    def submit(self, order: OrderRequest) -> None: ...

    def cancel(self, client_order_id: str) -> None: ...

    def quote_contract(self, request: RequestContract) -> Event:
        """Pick and quote the contract `request` asks for: `ContractQuoted`, or
        `ContractUnavailable` saying why not (never raises: an entry is skipped instead)."""
        ...


def write_now(write: Callable[[], object]) -> bool:
    """The plain writer: a failure raises (a backtest or replay stops on a broken store)."""
    write()
    return True


class Kernel:
    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        *,
        store: Store | None = None,
        observer: Observer | None = None,
        notifier: Notifier | None = None,
        write: Writer = write_now,
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.store = store
        self.observer = observer
        self.notifier = notifier
        self.write = write

    def deliver(self, event: Event) -> None:
        """One event into the engine, and everything it leads to carried out."""
        if self.observer is not None:
            self.observer(event)
        store = self.store
        if store is not None and isinstance(event, ORDER_EVENTS):  # an account update: nothing
            self.write(partial(store.record_order_event, event))
        outputs = self.engine.handle(event)
        if outputs:  # most events (an account update every minute in a position) lead to none
            self.dispatch(outputs)

    def dispatch(self, outputs: Sequence[Output]) -> None:
        for output in outputs:
            if isinstance(output, SubmitOrder):
                self._show(output)
                self.executor.submit(output.order)
            elif isinstance(output, CancelOrder):
                self._show(output)
                self.executor.cancel(output.client_order_id)
            elif isinstance(output, RequestContract):
                self._show(output)
                self.deliver(self.executor.quote_contract(output))
            elif isinstance(output, SignalDetected | EntrySkipped | TradeUpdated):
                self._show(output)
                if self.store is not None:
                    self.write(partial(self.store.record, output))
            else:
                if isinstance(output, TradingStateChanged) and self.store is not None:
                    self.write(
                        partial(
                            self.store.audit,
                            output.time,
                            _AUDIT_KIND[output.state],
                            output.actor,
                            output.reason,
                        )
                    )
                self.tell(render(output))

    def tell(self, notice: Notify) -> None:
        """Show, log, record and send a notice (the engine's, or a shell's own)."""
        self._show(notice)
        if self.store is not None:
            self.write(partial(self.store.record, notice))
        if self.notifier is not None:
            self.notifier.send(notice)  # a queue: never waits on the network

    def _show(self, item: Logged) -> None:
        if self.observer is not None:
            self.observer(item)
        log_command(item)
