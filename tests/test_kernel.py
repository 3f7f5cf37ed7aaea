"""The one kernel every shell runs: what is recorded, told and observed is decided once.

Backtest and replay (SimulationShell) and live (LiveShell) hand events to the same `Kernel`; they
differ only in how a command reaches their broker. These tests drive the kernel with the real
engine and a real store, and check that both kinds of shell leave the same audit trail."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ict_trader.adapters.simulated import SimulatedBroker
from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.events import (
    ContractQuoted,
    Event,
    KillSwitch,
    Notify,
    ReduceOnly,
    RequestContract,
    Resume,
    SubmitOrder,
)
from ict_trader.core.orders import OrderRequest
from ict_trader.core.strategy import EngineConfig, InstrumentChoice, StrategyProfile
from ict_trader.persistence.store import Store
from ict_trader.runtime.kernel import Kernel, Seen
from ict_trader.runtime.simulation import SimulationShell
from tests.engine_script import FILL_TIME, Script, minutes


class Recorder:
    """An executor and a notifier that remember what reached them."""

    def __init__(self) -> None:
        self.submitted: list[OrderRequest] = []
        self.canceled: list[str] = []
        self.sent: list[Notify] = []
        self.asked: list[RequestContract] = []

    def quote_contract(self, request: RequestContract) -> Event:
        """Answers every request with a same-day contract of the right asked for."""
        self.asked.append(request)
        letter = "C" if request.right.value == "call" else "P"
        symbol = f"{request.underlying}{request.expiry:%y%m%d}{letter}00097000"
        quote = ContractQuote(
            symbol, request.time, Decimal("1.00"), Decimal("1.10"), PremiumSource.MODEL
        )
        return ContractQuoted(request.time, request.request_id, quote)

    def submit(self, order: OrderRequest) -> None:
        self.submitted.append(order)

    def cancel(self, client_order_id: str) -> None:
        self.canceled.append(client_order_id)

    @property
    def enabled(self) -> bool:
        return True

    def describe(self) -> str:
        return "recorder"

    def send(self, notice: Notify) -> None:
        self.sent.append(notice)

    def close(self, timeout: float = 5.0) -> None:
        pass


def audit_rows(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT kind, actor, message FROM audit ORDER BY audit_id").fetchall()


def test_commands_go_to_the_executor_and_facts_to_the_store_and_the_notifier(
    tmp_path: Path,
) -> None:
    script = Script()
    store = Store(tmp_path / "k.db")
    recorder = Recorder()
    seen: list[Seen] = []
    kernel = Kernel(script.engine, recorder, store=store, observer=seen.append, notifier=recorder)
    script.equity()
    outputs = script.to_signal()
    kernel.dispatch(outputs)
    entries = [o.order for o in outputs if isinstance(o, SubmitOrder)]
    assert recorder.submitted == entries and len(entries) == 2
    assert list(store.load_ledger().signals) == ["QQQ-20240729T1335Z-short"]
    kernel.deliver(KillSwitch(FILL_TIME + minutes(1), "test", "pytest"))
    # the state change: told in words (once, to the notifier and the observer) and audited
    (told,) = recorder.sent
    assert (told.title, told.level.value) == ("Kill switch engaged", "critical")
    assert told.message == (
        "Kill switch engaged by pytest: test · closing 2 trade(s), no new entries"
    )
    assert told in seen
    assert recorder.canceled == [e.client_order_id for e in entries]  # pending entries
    store.commit()
    rows = audit_rows(tmp_path / "k.db")
    assert ("kill", "pytest", "test") in rows
    assert ("notify.critical", "engine", told.message) in rows
    store.close()


def _trail(path: Path, store: Store, deliver: object) -> list[tuple[str, str, str]]:
    assert callable(deliver)
    moment = datetime(2024, 7, 29, 14, 0).astimezone()
    deliver(ReduceOnly(moment, "stale data: no bar", "breaker:stale_data"))
    deliver(KillSwitch(moment, "manual", "cli"))
    deliver(Resume(moment, "checked", "dashboard"))
    store.commit()
    return [row for row in audit_rows(path) if not row[0].startswith("notify.")]


def test_a_simulation_shell_and_a_bare_kernel_leave_the_same_trail(tmp_path: Path) -> None:
    """What replay does is what any shell on the kernel does (live included: LiveShell hands
    its events to a Kernel too) — no shell writes its own audit rows for a state change."""
    shell_store = Store(tmp_path / "shell.db")
    shell = SimulationShell(Script().engine, SimulatedBroker(), store=shell_store)
    from_shell = _trail(tmp_path / "shell.db", shell_store, shell.deliver)
    kernel_store = Store(tmp_path / "kernel.db")
    kernel = Kernel(Script().engine, Recorder(), store=kernel_store)
    from_kernel = _trail(tmp_path / "kernel.db", kernel_store, kernel.deliver)
    assert (
        from_shell
        == from_kernel
        == [
            ("reduce", "breaker:stale_data", "stale data: no bar"),
            ("kill", "cli", "manual"),
            ("resume", "dashboard", "checked"),
        ]
    )
    shell_store.close()
    kernel_store.close()


def test_a_contract_request_is_answered_by_the_executor_and_the_answer_goes_back_in(
    tmp_path: Path,
) -> None:
    options = StrategyProfile("puts", Decimal("0.03"), instrument=InstrumentChoice.OPTION)
    script = Script(config=EngineConfig(profiles=(options,)))
    store = Store(tmp_path / "k.db")
    recorder = Recorder()
    seen: list[Seen] = []
    kernel = Kernel(script.engine, recorder, store=store, observer=seen.append)
    script.equity()
    kernel.dispatch(script.to_signal())
    [asked] = recorder.asked
    assert asked in seen  # shown, like every command
    [entry] = recorder.submitted  # the answer went into the engine, whose entry was sent
    assert (entry.symbol, entry.limit_price, entry.position_intent) == (
        "QQQ240729P00097000",
        Decimal("1.05"),
        "buy_to_open",
    )
    assert any(isinstance(item, ContractQuoted) for item in seen)
    store.close()
