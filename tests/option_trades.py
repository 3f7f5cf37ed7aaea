"""Stores holding option trades, made by the engine as a shell makes them, for the views' tests.

The scripted short signal (97.50 on 2024-07-29, see engine_script.py) is traded by a share
profile and by a put profile side by side. The put is quoted by the "shell" (here: the test)
with a premium source of the test's choosing — the model or a quote file — at 0.50 bid / 0.54
ask, delta -0.42, IV 20 %, bought 10 contracts at 0.52 and, if asked, sold at its premium target
0.78 (+50 %): P&L (0.78 - 0.52) x 10 x 100 = +260.00. Every row the views read (trades with
their option JSON, orders with broker ids, fills) is written through the store as the kernel
writes it, so the views are tested on what a real run stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ict_trader.config import AppConfig
from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.events import (
    CancelOrder,
    ContractQuoted,
    EntrySkipped,
    Event,
    OrderAccepted,
    OrderFilled,
    Output,
    RequestContract,
    SignalDetected,
    SubmitOrder,
    TradeUpdated,
)
from ict_trader.core.orders import Leg, OrderRequest
from ict_trader.core.strategy import (
    EngineConfig,
    InstrumentChoice,
    OptionRules,
    OptionTarget,
    StrategyProfile,
)
from ict_trader.notify.texts import render
from ict_trader.persistence.state_keys import LAST_BAR_KEY
from ict_trader.persistence.store import Store
from tests.engine_script import FILL_TIME, SIGNAL_CLOSE_TIME, Script, minutes

PUT = "QQQ240729P00097000"
PUT_NAME = "QQQ 2024-07-29 97 put"
SHARE_MARK = Decimal("96.00")
PUT_MARK = Decimal("0.61")
PROFILES = (
    StrategyProfile("shares", Decimal("0.03")),
    StrategyProfile(
        "puts",
        Decimal("0.03"),
        instrument=InstrumentChoice.OPTION,
        option=OptionRules(target=OptionTarget.PREMIUM, premium_target_pct=Decimal(50)),
    ),
)


@dataclass
class OptionRun:
    store: Store
    commands: list[Output]

    def notices(self) -> list[Output]:
        return [c for c in self.commands if type(c).__name__ in {"EntryFilled", "TradeClosed"}]


class _Recorder:
    def __init__(self, store: Store) -> None:
        self.script = Script(config=EngineConfig(profiles=PROFILES))
        self.store = store
        self.executions = 0
        self.commands: list[Output] = []

    def record(self, commands: list[Output]) -> list[Output]:
        self.commands += commands
        for command in commands:
            if isinstance(command, SubmitOrder):
                self.store.record_order(command.order)
            elif isinstance(command, TradeUpdated | SignalDetected | EntrySkipped):
                self.store.record(command)
            elif not isinstance(command, CancelOrder | RequestContract):
                self.store.record(render(command))
        return commands

    def send(self, event: Event) -> list[Output]:
        self.store.record_event(event)
        return self.record(self.script.send(event))

    def fill(self, order: OrderRequest, price: str) -> list[Output]:
        self.executions += 1
        broker_id = f"alpaca-{order.leg.value}-{self.executions}"
        self.send(OrderAccepted(FILL_TIME, order.client_order_id, broker_id))
        return self.send(
            OrderFilled(
                time=FILL_TIME + minutes(self.executions),
                client_order_id=order.client_order_id,
                broker_order_id=broker_id,
                execution_id=f"x{self.executions}",
                qty=order.qty,
                price=Decimal(price),
                cumulative_qty=order.qty,
                order_complete=True,
            )
        )


def option_run(db: Path, source: PremiumSource, *, close_the_put: bool) -> OptionRun:
    """The share trade is entered at 97.60 and left open; the put is bought and, if asked,
    closed at its premium target. Marks: QQQ 96.00, the put 0.61."""
    store = Store(db)
    store.start_run("replay", "scripted", AppConfig().describe())
    run = _Recorder(store)
    run.script.equity()
    signal_bar = run.record(run.script.to_signal())
    [share_entry] = [c.order for c in signal_bar if isinstance(c, SubmitOrder)]
    [request] = [c for c in signal_bar if isinstance(c, RequestContract)]
    quote = ContractQuote(
        PUT, SIGNAL_CLOSE_TIME, Decimal("0.50"), Decimal("0.54"), source, -0.42, 0.2
    )
    quoted = run.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote))
    [put_entry] = [c.order for c in quoted if isinstance(c, SubmitOrder)]
    run.fill(share_entry, "97.60")
    [put_target] = [
        c.order
        for c in run.fill(put_entry, "0.52")
        if isinstance(c, SubmitOrder) and c.order.leg is Leg.TARGET
    ]
    if close_the_put:
        run.fill(put_target, "0.78")
    store.set_state(LAST_BAR_KEY, (FILL_TIME + minutes(20)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    store.set_last_close("QQQ", float(SHARE_MARK))
    store.set_last_close(PUT, float(PUT_MARK))
    store.commit()
    return OptionRun(store, run.commands)
