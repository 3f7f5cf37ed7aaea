"""`ict-trader kill` / `resume` reach a running bot through the store and survive restarts."""

from __future__ import annotations

import io
import json
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.config import AppConfig
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime import control
from ict_trader.runtime.replay import data_fingerprint, run_replay
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


def test_kill_then_resume_on_a_stopped_bot_starts_it_active_with_its_trades(
    sample_csv: Path, tmp_path: Path
) -> None:
    """The latest request wins while the bot is down: no kill switch, no flattened trades."""
    db = tmp_path / "bot.db"
    replay(sample_csv, db, InterruptingConsole(interrupt_at=12))  # stopped with 2 open trades
    runner = CliRunner()
    for kind in ("kill", "resume"):
        result = runner.invoke(app, [kind, "--reason", f"{kind} while stopped", "--db", str(db)])
        assert result.exit_code == 0, result.output
    report = json.loads(runner.invoke(app, ["status", "--db", str(db), "--json"]).stdout)
    assert report["state"] == "active"  # what the bot will do at start
    assert [(p["kind"], p["request"]) for p in report["pending_requests"]] == [
        ("kill", 1),
        ("resume", 2),
    ]
    text = runner.invoke(app, ["status", "--db", str(db)]).stdout
    assert "pending: resume #2 by cli (resume while stopped)" in text
    replay(sample_csv, db, Console(file=io.StringIO()))
    with sqlite3.connect(db) as connection:
        reasons = connection.execute("SELECT exit_reason FROM trades ORDER BY trade_id").fetchall()
        superseded = connection.execute(
            "SELECT message FROM audit WHERE kind = 'request.superseded'"
        ).fetchall()
    assert ("kill",) not in reasons and len(reasons) == 6  # every signal traded, none killed
    assert len(superseded) == 1 and "#1 kill" in superseded[0][0]
    after = json.loads(runner.invoke(app, ["status", "--db", str(db), "--json"]).stdout)
    assert (after["state"], after["pending_requests"]) == ("active", [])


def test_resume_then_kill_on_a_stopped_bot_starts_it_halted(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    control.request(store, "resume", "first", "cli")
    control.request(store, "kill", "second thoughts", "dashboard")
    assert control.outlook(store)["state"] == "halted"
    delivered: list[object] = []
    control.restore_state(store, delivered.append, KILL_AT)
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in delivered] == [
        ("KillSwitch", "second thoughts")
    ]
    store.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["kill", "resume"]), st.just("bar")), max_size=25))
def test_a_running_bot_applies_every_request_once_in_order(steps: list[str]) -> None:
    """Requests interleaved with the bot's passes: each is delivered exactly once, in order."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "s.db")
        client = Store(Path(folder) / "s.db", reader=True)
        asked: list[str] = []
        delivered: list[str] = []

        def deliver(event: object) -> None:
            delivered.append(getattr(event, "reason", ""))

        for number, step in enumerate(steps):
            if step == "bar":
                control.apply_requests(store, deliver)
                store.commit()
            else:
                control.request(client, step, f"{step}-{number}", "cli")
                asked.append(f"{step}-{number}")
        control.apply_requests(store, deliver)
        store.commit()
        assert delivered == asked
        assert control.pending(client) == []
        client.close()
        store.close()
