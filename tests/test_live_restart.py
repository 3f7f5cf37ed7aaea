"""kill -9 of the bot with a trade open, then a restart: no duplicate order, the trade still exits.

The bot runs as a real process (`python -m ict_trader run --alpaca-url …`) against the loopback
emulator, which the test steps bar by bar; the bot's SQLite store is read concurrently (WAL).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.config import AppConfig
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.runtime.backtest import run_backtest
from tests.alpaca_emulator import KEY, SECRET, backtest_like, every_minute, running_emulator

SESSION_START = 390  # 2024-07-30 09:30; the 11:01 short signal's entry fills at 11:02 (bar 482)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def start_bot(server: EmulatorServer, db: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET, "COLUMNS": "200"}
    command = [sys.executable, "-m", "ict_trader", "run", "--alpaca-url", server.base_url]
    command += ["--sessions", "1"]
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command, "--db", str(db)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=db.parent,
        )


async def _clients(server: EmulatorServer) -> tuple[int, int]:
    return len(server._trade_sockets), len(server._data_sockets)


def wait_connected(server: EmulatorServer, bot: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise AssertionError(f"bot exited early:\n{log.read_text()}")
        if server.call(_clients(server)) == (1, 1):
            return
        time.sleep(0.05)
    raise AssertionError(f"bot never connected:\n{log.read_text()}")


def last_bar(db: Path) -> str | None:
    if not db.exists():
        return None
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        try:
            row = connection.execute(
                "SELECT value FROM state WHERE key = 'last_bar_time'"
            ).fetchone()
        except sqlite3.OperationalError:
            return None
    return None if row is None else str(row[0])


def step(server: EmulatorServer, db: Path, bars: int, *, bot_up: bool, log: Path) -> None:
    for _ in range(bars):
        (bar,) = server.call(server.advance(1))
        if not bot_up:
            continue
        if not server.feed.has(bar.time, "iex"):  # IEX had no trade in the minute: no bar
            quiet_exchange(server)
            continue
        stamp = bar.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        deadline = time.monotonic() + 30
        while (last_bar(db) or "") < stamp:
            if time.monotonic() > deadline:
                raise AssertionError(f"bot stuck before {stamp}:\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        quiet_exchange(server)


def quiet_exchange(server: EmulatorServer) -> None:
    """Wait until the orders a bar caused have come to rest (no pending work at the emulator,
    no new request for a few polls): in real time a minute leaves room for an entry's fill and
    the target it triggers to land inside the bar."""
    quiet, seen = 0, len(server.requests)
    deadline = time.monotonic() + 10
    while quiet < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
        count = len(server.requests)
        busy = server.account.has_pending_work() or count != seen
        quiet, seen = (0 if busy else quiet + 1), count


def stored_trades(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT trade_id, qty, entry_time, exit_time, exit_reason, pnl FROM trades"
            " ORDER BY trade_id"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3], r[4], Decimal(r[5]) if r[5] else None) for r in rows]


@pytest.mark.parametrize(
    ("kill_after", "down_for", "position_at_restart"),
    [
        (95, 15, -14),  # killed at 11:05 with both trades open; back at 11:20; target at 11:38
        (115, 20, 0),  # killed at 11:25; the targets fill at 11:38 while the bot is down
    ],
)
def test_kill_9_then_restart(
    sample: BarFile, tmp_path: Path, kill_after: int, down_for: int, position_at_restart: int
) -> None:
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    options = backtest_like()  # the trades are compared with the backtest's below
    with running_emulator(
        sample, start_bar=SESSION_START, options=options, data=every_minute()
    ) as server:
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, kill_after, bot_up=True, log=log)
        with sqlite3.connect(db) as connection:
            assert connection.execute(
                "SELECT COUNT(*) FROM trades WHERE status = 'open'"
            ).fetchone() == (2,)
        bot.kill()  # SIGKILL: no clean-up at all
        bot.wait()
        step(server, db, down_for, bot_up=False, log=log)
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 390 - kill_after - down_for, bot_up=True, log=log)
        bot.wait(timeout=60)
        posts = server.requests.count(("POST", "/v2/orders"))
        client_ids = Counter(o.client_order_id for o in server.account.orders.values())
        position = server.account.position
    assert bot.returncode == 0, log.read_text()[-3000:]
    assert f"reconciled: ledger and broker agree on {position_at_restart} QQQ" in log.read_text()
    assert max(client_ids.values()) == 1
    assert posts == len(client_ids), "every order was sent exactly once"
    assert position == 0
    expected = run_backtest(sample.bars[: SESSION_START + 390], sample.calendar, AppConfig())
    want = sorted(
        (
            t.trade_id,
            t.qty,
            t.entry_time.strftime("%Y-%m-%dT%H:%M:%SZ") if t.entry_time else None,
            t.exit_time.strftime("%Y-%m-%dT%H:%M:%SZ") if t.exit_time else None,
            t.exit_reason.value if t.exit_reason else None,
            t.pnl,
        )
        for t in expected.closed_trades()
    )
    assert stored_trades(db) == want
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT DISTINCT feed FROM trades").fetchall() == [("iex",)]
        run = connection.execute("SELECT mode, config FROM runs ORDER BY run_id").fetchall()
    assert [mode for mode, _ in run] == ["paper", "paper"]  # the first start and the restart
    assert all('"feed": "iex"' in config for _, config in run)
