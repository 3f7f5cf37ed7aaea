"""`ict-trader kill` / `resume` reach a running bot through the store and survive restarts."""

from __future__ import annotations

import io
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from ict_trader import control
from ict_trader.barfile import load_bars
from ict_trader.cli import app
from ict_trader.config import AppConfig
from ict_trader.replay import data_fingerprint, run_replay
from ict_trader.store import Store
from tests.test_replay import InterruptingConsole

KILL_AT = datetime(2024, 7, 30, 15, 20, tzinfo=UTC)  # both trades of the 11:01 signal are open


def replay(sample_csv: Path, db: Path, console: Console) -> None:
    bar_file = load_bars(sample_csv)
    store = Store(db)
    try:
        run_replay(
            bar_file.bars,
            bar_file.calendar,
            AppConfig(),
            store,
            data_fingerprint(bar_file.path),
            speed=0,
            console=console,
        )
    finally:
        store.close()


def test_kill_reaches_a_replay_and_holds_across_restarts(sample_csv: Path, tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    # The replay is interrupted while both trades are open (a user could equally run the
    # command while it runs: the request is read every bar).
    replay(sample_csv, db, InterruptingConsole(interrupt_at=12))
    with sqlite3.connect(db) as connection:
        assert connection.execute(
            "SELECT COUNT(*) FROM trades WHERE status = 'open'"
        ).fetchone() == (2,)
    result = CliRunner().invoke(app, ["kill", "--reason", "manual test", "--db", str(db)])
    assert result.exit_code == 0, result.output
    replay(sample_csv, db, Console(file=io.StringIO()))  # resumes; obeys the kill at once
    with sqlite3.connect(db) as connection:
        trades = connection.execute("SELECT exit_reason FROM trades ORDER BY trade_id").fetchall()
        skips = connection.execute("SELECT reason FROM skips").fetchall()
        audit = connection.execute(
            "SELECT kind, actor, message FROM audit WHERE kind LIKE 'request%'"
        )
        requests = audit.fetchall()
    assert trades == [("kill",), ("kill",)]  # flattened; the later signals were not traded
    assert len(skips) == 4 and all(r[0] == "kill switch engaged: manual test" for r in skips)
    assert requests == [("request.kill", "cli", "manual test")]
    status = CliRunner().invoke(app, ["status", "--db", str(db), "--json"])
    assert '"state": "halted"' in status.stdout


def test_a_restarted_engine_starts_halted_until_resumed(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = Store(db)
    control.request(store, "kill", "breaker test", "cli")
    delivered: list[object] = []
    control.restore_state(store, delivered.append, KILL_AT)
    assert [type(e).__name__ for e in delivered] == ["KillSwitch"]
    assert control.apply_requests(store, delivered.append) is False  # already reflected
    control.request(store, "resume", "checked", "cli")
    assert control.apply_requests(store, delivered.append) is True
    assert [type(e).__name__ for e in delivered] == ["KillSwitch", "Resume"]
    assert control.apply_requests(store, delivered.append) is False  # applied once
    store.close()


def test_kill_needs_a_reason_and_an_existing_store(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["kill", "--reason", "x", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no such store" in missing.output
    Store(tmp_path / "s.db").close()
    blank = runner.invoke(app, ["resume", "--reason", " ", "--db", str(tmp_path / "s.db")])
    assert blank.exit_code == 2 and "--reason must say why" in blank.output
