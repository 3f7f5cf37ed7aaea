"""`ict-trader run` replays: same trades as a backtest, clean Ctrl-C, exact resume."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ict_trader.config import AppConfig
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.notify.notifier import Notifier
from ict_trader.persistence.store import Store, StoreError
from ict_trader.runtime.backtest import run_backtest
from ict_trader.runtime.replay import Pacer, data_fingerprint, run_replay
from tests.conftest import REPO


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def trade_rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT trade_id, status, qty, entry_price, entry_time, exit_price, exit_time,"
            " exit_reason, pnl FROM trades ORDER BY trade_id"
        ).fetchall()


def replay_all(
    sample: BarFile,
    db: Path,
    console: Console | None = None,
    notifier: Notifier | None = None,
) -> None:
    """The whole file replayed into `db` as fast as possible (also used by other test files)."""
    store = Store(db)
    try:
        run_replay(
            sample.bars,
            sample.calendar,
            AppConfig(),
            store,
            data_fingerprint(sample.path),
            speed=0,
            console=console or Console(file=io.StringIO()),
            notifier=notifier,
        )
    finally:
        store.close()


def test_replay_trades_equal_the_backtest(sample: BarFile, tmp_path: Path) -> None:
    db = tmp_path / "replay.db"
    replay_all(sample, db)
    result = run_backtest(sample.bars, sample.calendar, AppConfig())
    expected = sorted(
        (t.trade_id, t.exit_reason.value if t.exit_reason else None, t.pnl)
        for t in result.trades.values()
    )
    rows = trade_rows(db)
    assert len(rows) == 6
    assert [(r[0], r[7], r[8]) for r in rows] == [
        (trade_id, reason, str(pnl) if pnl is not None else None)
        for trade_id, reason, pnl in expected
    ]


class InterruptingConsole(Console):
    """A console that raises KeyboardInterrupt at its n-th printed line (a user's Ctrl-C)."""

    def __init__(self, interrupt_at: int) -> None:
        super().__init__(file=io.StringIO())
        self.remaining = interrupt_at

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            raise KeyboardInterrupt
        super().print(*args, **kwargs)


@pytest.mark.parametrize("interrupt_at", [3, 6, 9, 14, 20])
def test_interrupted_replay_resumes_to_the_same_result(
    sample: BarFile, tmp_path: Path, interrupt_at: int
) -> None:
    """Interrupted mid-trade (entries sent, fills pending, exits pending): nothing duplicated."""
    reference = tmp_path / "reference.db"
    replay_all(sample, reference)
    db = tmp_path / "interrupted.db"
    store = Store(db)
    try:
        outcome = run_replay(
            sample.bars,
            sample.calendar,
            AppConfig(),
            store,
            data_fingerprint(sample.path),
            speed=0,
            console=InterruptingConsole(interrupt_at),
        )
    finally:
        store.close()
    assert outcome.interrupted
    assert outcome.bars_done < len(sample.bars)
    replay_all(sample, db)
    assert trade_rows(db) == trade_rows(reference)
    with sqlite3.connect(db) as connection, sqlite3.connect(reference) as expected:
        query = "SELECT client_order_id, status, filled_qty FROM orders ORDER BY client_order_id"
        assert connection.execute(query).fetchall() == expected.execute(query).fetchall()
        fills = "SELECT client_order_id, qty, price FROM fills ORDER BY client_order_id"
        assert connection.execute(fills).fetchall() == expected.execute(fills).fetchall()
        assert connection.execute("SELECT COUNT(*) FROM skips").fetchone() == (0,)


def test_resume_refuses_other_data(sample: BarFile, tmp_path: Path) -> None:
    db = tmp_path / "replay.db"
    replay_all(sample, db)
    store = Store(db)
    try:
        with pytest.raises(StoreError, match="use another --db"):
            run_replay(
                sample.bars,
                sample.calendar,
                AppConfig(),
                store,
                "other.csv sha256:0000",
                speed=0,
                console=Console(file=io.StringIO()),
            )
    finally:
        store.close()


def test_pacer_schedules_bars_without_drift() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = Pacer(speed=120, clock=lambda: now[0], sleep=sleep)
    pacer.wait()  # first bar is due at once
    now[0] += 0.2  # handling the bar took 0.2 s
    pacer.wait()
    now[0] += 0.7  # a slow bar: later than its slot, so no sleep before the next
    pacer.wait()
    assert sleeps == pytest.approx([0.3])
    assert Pacer(speed=0, clock=lambda: 0.0, sleep=sleep).interval == 0


def _read_until(stream: Iterator[str], marker: str) -> None:
    for line in stream:
        if marker in line:
            return
    raise AssertionError(f"{marker!r} never printed")


def test_ctrl_c_on_the_real_command_then_resume(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    command = [sys.executable, "-m", "ict_trader", "run", "--db", str(db)]
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [*command, "--speed", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    _read_until(iter(process.stdout.readline, ""), "session Tue 2024-07-30")
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=60)[0]
    assert process.returncode == 130
    assert "run the same command to resume" in rest
    assert "Traceback" not in rest
    with sqlite3.connect(db) as connection:
        (last,) = connection.execute(
            "SELECT value FROM state WHERE key = 'last_bar_time'"
        ).fetchone()
    assert "2024-07-30" <= last < "2024-08-09T19:59"
    finished = subprocess.run(
        [*command, "--speed", "0", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert "resuming after" in finished.stdout
    assert "conservative: 3 trades" in finished.stdout
    reference = tmp_path / "reference.db"
    subprocess.run(
        [sys.executable, "-m", "ict_trader", "run", "--db", str(reference), "--speed", "0"],
        capture_output=True,
        check=True,
        env=env,
        timeout=120,
    )
    assert trade_rows(db) == trade_rows(reference)


def test_a_replay_with_an_options_profile_resumes_and_trades_as_the_backtest(
    tmp_path: Path,
) -> None:
    """One engine, whatever the shell: a replay of the sample with the README's options
    settings, interrupted with Ctrl-C and resumed, books the same share and option trades
    (contract, premiums, source) as an uninterrupted replay and as a backtest of the bars."""
    settings = ["--config", str(REPO / "examples" / "options.toml")]
    env = {**os.environ, "COLUMNS": "200"}
    db = tmp_path / "resumed.db"
    command = [sys.executable, "-m", "ict_trader", "run", "--db", str(db), *settings]
    process = subprocess.Popen(
        [*command, "--speed", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    _read_until(iter(process.stdout.readline, ""), "session Tue 2024-07-30")
    process.send_signal(signal.SIGINT)
    assert process.communicate(timeout=60)[0].count("Traceback") == 0
    assert process.returncode == 130
    subprocess.run([*command, "--speed", "0", "--quiet"], env=env, check=True, timeout=120)
    whole = tmp_path / "whole.db"
    subprocess.run(
        [sys.executable, "-m", "ict_trader", "run", "--db", str(whole), "--speed", "0", *settings],
        capture_output=True,
        env=env,
        check=True,
        timeout=120,
    )
    backtest = tmp_path / "backtest.db"
    subprocess.run(
        [sys.executable, "-m", "ict_trader", "backtest", "--db", str(backtest), *settings],
        capture_output=True,
        env=env,
        check=True,
        timeout=120,
    )

    def option_rows(path: Path) -> list[tuple[object, ...]]:
        with sqlite3.connect(path) as connection:
            return connection.execute(
                "SELECT trade_id, symbol, qty, entry_price, exit_price, pnl, option FROM trades"
                " WHERE option IS NOT NULL ORDER BY trade_id"
            ).fetchall()

    options = option_rows(db)
    assert options, "the options profile traded the sample"
    assert all('"source": "model"' in str(row[-1]) for row in options)
    assert trade_rows(db) == trade_rows(whole) == trade_rows(backtest)
    assert options == option_rows(whole) == option_rows(backtest)
