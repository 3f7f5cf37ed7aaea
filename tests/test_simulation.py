"""The shared per-bar shell: a kill switch in the middle of a replayed session."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ict_trader.adapters.simulated import SimulatedBroker
from ict_trader.config import AppConfig
from ict_trader.core.engine import Engine
from ict_trader.core.events import KillSwitch
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.simulation import SimulationShell
from ict_trader.signals import IctDetector


def test_kill_mid_trade_flattens_cancels_and_blocks(sample_csv: Path, tmp_path: Path) -> None:
    bar_file = load_bars(sample_csv)
    config = AppConfig()
    store = Store(tmp_path / "kill.db")
    broker = SimulatedBroker(config.simulation)
    shell = SimulationShell(
        Engine(config.engine, IctDetector(bar_file.calendar, config.signal)), broker, store
    )
    kill_at = datetime(2024, 7, 30, 15, 10, tzinfo=UTC)  # both trades of the 15:01 signal are open
    before = [b for b in bar_file.bars if b.time < kill_at]
    shell.run(before)
    assert broker.position("QQQ") == -14
    shell.deliver(KillSwitch(kill_at, "test trip", "pytest"))
    shell.run([b for b in bar_file.bars if b.time >= kill_at])
    store.close()
    assert broker.position("QQQ") == 0
    assert broker.open_orders() == []
    with sqlite3.connect(tmp_path / "kill.db") as db:
        trades = db.execute("SELECT status, exit_reason, exit_time FROM trades").fetchall()
        skips = db.execute("SELECT reason FROM skips").fetchall()
        audit = db.execute("SELECT kind, actor, message FROM audit WHERE kind = 'kill'").fetchall()
        working = db.execute(
            "SELECT COUNT(*) FROM orders WHERE status NOT IN ('filled', 'canceled', 'expired')"
        ).fetchone()
    assert trades == [("closed", "kill", "2024-07-30T15:10:00Z")] * 2
    assert skips == [("kill switch engaged: test trip",)] * 4  # two later signals x two profiles
    assert audit == [("kill", "pytest", "test trip")]
    assert working == (0,)
