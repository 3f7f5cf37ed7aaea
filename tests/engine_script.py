"""A scripted engine: real bars that produce one short signal, and helpers to feed events.

The bars are the base scenario of test_signal_rules.py (a sweep of 102 at 09:34, a displacement
bar closing at 97.5 below the 98 swing low at 09:35 on 2024-07-29, ATR 2.8), so engine tests
start from a real signal rather than a fabricated one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    AccountUpdated,
    CancelOrder,
    EntrySkipped,
    Event,
    Notify,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    Output,
    RequestContract,
    SignalDetected,
    SubmitOrder,
    TradeUpdated,
)
from ict_trader.core.orders import OrderRequest
from ict_trader.core.strategy import EngineConfig, ExitRules
from ict_trader.notify.texts import render
from ict_trader.signals import IctDetector
from tests.test_signal_rules import BASE, CALENDAR, DISPLACE, PARAMS, session_bars

SIGNAL_CLOSE_TIME = datetime(2024, 7, 29, 13, 36, tzinfo=UTC)  # the 09:35 bar's close
FILL_TIME = SIGNAL_CLOSE_TIME  # the next bar opens when the signal bar closes


class Script:
    """Drives an engine and remembers every command it returned."""

    def __init__(self, exits: ExitRules | None = None, config: EngineConfig | None = None):
        config = config or EngineConfig(exits=exits or ExitRules())
        self.engine = Engine(config, IctDetector(CALENDAR, PARAMS))
        self.commands: list[Output] = []
        self._executions = 0

    def send(self, event: Event) -> list[Output]:
        out = list(self.engine.handle(event))
        self.commands += out
        return out

    def equity(self, amount: str | int = 100_000) -> None:
        value = Decimal(amount)
        self.send(AccountUpdated(SIGNAL_CLOSE_TIME, value, value, value * 2))

    def to_signal(self, day: date = date(2024, 7, 29)) -> list[Output]:
        """Feed the six bars (from the open of `day`); return the commands of the signal bar."""
        out: list[Output] = []
        for bar in session_bars(day, [*BASE, DISPLACE]):
            out = list(self.engine.on_bar(bar))
            self.commands += out
        return out

    def fill(
        self,
        order: OrderRequest | str,
        qty: int,
        price: str,
        when: datetime = FILL_TIME,
        *,
        cumulative: int | None = None,
        complete: bool = True,
        execution_id: str | None = None,
    ) -> list[Output]:
        order_id = order if isinstance(order, str) else order.client_order_id
        self._executions += 1
        return self.send(
            OrderFilled(
                time=when,
                client_order_id=order_id,
                broker_order_id=f"b-{order_id}",
                execution_id=execution_id or f"x{self._executions}",
                qty=qty,
                price=Decimal(price),
                cumulative_qty=qty if cumulative is None else cumulative,
                order_complete=complete,
            )
        )

    def accept(self, order: OrderRequest) -> None:
        self.send(OrderAccepted(FILL_TIME, order.client_order_id, f"b-{order.client_order_id}"))

    def cancel_confirmed(self, order_id: str, when: datetime) -> list[Output]:
        return self.send(OrderCanceled(when, order_id))


def submitted(commands: Sequence[Output]) -> list[OrderRequest]:
    return [c.order for c in commands if isinstance(c, SubmitOrder)]


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def rendered(outputs: Sequence[Output]) -> list[Notify]:
    """The engine's notices among `outputs`, in the words a person reads (`notify.texts`)."""
    return [
        render(output)
        for output in outputs
        if not isinstance(
            output, SubmitOrder | CancelOrder | RequestContract | SignalDetected | EntrySkipped
        )
        and not isinstance(output, TradeUpdated)
    ]
