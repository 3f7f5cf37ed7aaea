"""Every view computes P&L and positions through `reporting.book`, so all of them agree — also
after a partial exit, where `status` and the dashboard used to count unrealized P&L on every
share of a trade whose target had already filled part of it, and none of that part realized."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from ict_trader.config import AppConfig
from ict_trader.core.events import (
    CancelOrder,
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
from ict_trader.dashboard.views import positions_view, status_view
from ict_trader.notify.texts import render
from ict_trader.persistence.state_keys import LAST_BAR_KEY
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book
from ict_trader.reporting.daily_summary import daily_summary
from ict_trader.reporting.status import collect_status
from tests.engine_script import FILL_TIME, Script, minutes

MARK = Decimal("90.00")


class RecordedScript:
    """The scripted engine, its commands and broker events recorded as a shell records them."""

    def __init__(self, store: Store) -> None:
        self.script = Script()
        self.store = store
        self.executions = 0

    def record(self, commands: list[Output]) -> None:
        for command in commands:
            if isinstance(command, SubmitOrder):
                self.store.record_order(command.order)
            elif isinstance(command, TradeUpdated | SignalDetected | EntrySkipped):
                self.store.record(command)
            elif not isinstance(command, CancelOrder | RequestContract):
                self.store.record(render(command))

    def send(self, event: Event) -> list[Output]:
        self.store.record_event(event)
        out = self.script.send(event)
        self.record(out)
        return out

    def fill(self, order: OrderRequest, qty: int, price: str, cumulative: int) -> list[Output]:
        self.executions += 1
        self.send(OrderAccepted(FILL_TIME, order.client_order_id, f"b-{order.client_order_id}"))
        return self.send(
            OrderFilled(
                time=FILL_TIME + minutes(self.executions),
                client_order_id=order.client_order_id,
                broker_order_id=f"b-{order.client_order_id}",
                execution_id=f"x{self.executions}",
                qty=qty,
                price=Decimal(price),
                cumulative_qty=cumulative,
                order_complete=cumulative == order.qty,
            )
        )


def partly_exited(db: Path) -> tuple[Store, RecordedScript]:
    """Two short trades entered at 97.60 (30 and 41 shares); the conservative target (83.60)
    has filled 10 of its 30 shares; the last close is 90.00."""
    store = Store(db)
    store.start_run("replay", "scripted", AppConfig().describe())
    run = RecordedScript(store)
    run.script.equity()
    signal_commands = run.script.to_signal()
    run.record(signal_commands)
    entries = [c.order for c in signal_commands if isinstance(c, SubmitOrder)]
    targets: list[OrderRequest] = []
    for entry in entries:
        out = run.fill(entry, entry.qty, "97.60", entry.qty)
        targets += [
            c.order for c in out if isinstance(c, SubmitOrder) and c.order.leg is Leg.TARGET
        ]
    conservative = next(t for t in targets if t.profile == "conservative")
    run.fill(conservative, 10, "83.60", cumulative=10)
    store.set_state(LAST_BAR_KEY, (FILL_TIME + minutes(20)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    store.set_last_close("QQQ", float(MARK))
    store.commit()
    return store, run


def test_every_view_agrees_after_a_partial_exit(tmp_path: Path) -> None:
    db = tmp_path / "partial.db"
    store, run = partly_exited(db)
    realized = 10 * (Decimal("97.60") - Decimal("83.60"))  # 140
    unrealized = {
        "conservative": 20 * (Decimal("97.60") - MARK),  # the 20 shares still held: 152
        "aggressive": 41 * (Decimal("97.60") - MARK),  # 311.60
    }
    book = Book.of(store)
    assert book.position("QQQ") == run.script.engine.open_position("QQQ") == -(20 + 41)
    assert run.script.engine.open_positions() == {"QQQ": -(20 + 41)}

    status = collect_status(store)
    assert Decimal(status["pnl_today"]["realized"]) == realized
    assert Decimal(status["pnl_today"]["unrealized"]) == sum(unrealized.values())
    per_profile = status["pnl_today"]["per_profile"]
    assert Decimal(per_profile["conservative"]["realized"]) == realized
    assert Decimal(per_profile["conservative"]["unrealized"]) == unrealized["conservative"]
    assert {t["profile"]: t["shares"] for t in status["open_trades"]} == {
        "conservative": 20,
        "aggressive": 41,
    }

    page = status_view(store)
    assert Decimal(page["pnl"]["today_realized"]) == realized
    assert Decimal(page["pnl"]["total_realized"]) == realized
    assert Decimal(page["pnl"]["today_unrealized"]) == sum(unrealized.values())
    assert Decimal(page["pnl"]["total"]) == realized + sum(unrealized.values())
    assert Decimal(page["profiles"]["conservative"]["pnl_today"]) == realized
    positions = {p["profile"]: p for p in positions_view(store)}
    assert positions["conservative"]["shares"] == 20
    assert Decimal(positions["conservative"]["unrealized"]) == unrealized["conservative"]

    day = FILL_TIME.date()
    summary = daily_summary(book, day, FILL_TIME + minutes(390))
    assert "P&L +140.00" in summary.message
    assert "2 trades still open (+140.00 realized by partial exits)" in summary.message
    store.close()

    shown = subprocess.run(
        [sys.executable, "-m", "ict_trader", "status", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(shown.stdout)
    assert report["pnl_today"] == status["pnl_today"]
    assert report["open_trades"] == status["open_trades"]
