"""A position closed by hand while the bot was down is never "closed" again by the bot.

The tester's recipe (issue #10): the bot short 14 QQQ with its targets resting, killed with
SIGKILL; at the broker its orders are cancelled and the position closed by hand; the bot is
restarted. It used to warn about the difference and then, at the time limit, buy 14 — leaving
the account long 14 with nothing managing it, and booking exits that never closed its trades.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient

from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import KEY, SECRET, every_minute, running_emulator
from tests.test_live_restart import SESSION_START, start_bot, step, wait_connected


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def test_a_hand_closed_position_is_not_reopened(sample: BarFile, tmp_path: Path) -> None:
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    # IEX bars equal to the file's: the 11:01 signal of the backtest, traded live
    with running_emulator(sample, start_bar=SESSION_START, data=every_minute()) as server:
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 95, bot_up=True, log=log)  # 11:05: both trades short, targets resting
        assert server.account.position == -14
        bot.kill()
        bot.wait()
        by_hand = TradingClient(KEY, SECRET, url_override=server.base_url)
        by_hand.cancel_orders()
        server.call(server.settle())  # the cancels are confirmed (pending_cancel -> canceled)
        by_hand.close_position("QQQ")
        server.call(server.settle())
        step(server, db, 1, bot_up=False, log=log)
        assert server.account.position == 0
        posts_before = server.requests.count(("POST", "/v2/orders"))
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 80, bot_up=True, log=log)  # past the 12:02 time limit
        posts_after = server.requests.count(("POST", "/v2/orders"))
        position = server.account.position
        shown = _cli("reconcile", "--db", str(db))
        with sqlite3.connect(db) as connection:
            before_release = connection.execute(
                "SELECT profile, status, exit_price, pnl FROM trades ORDER BY profile"
            ).fetchall()
        # The person settles it: the position was closed by hand, the broker is right.
        settled = _cli(
            "reconcile", "--accept-broker", "--reason", "closed by hand", "--db", str(db)
        )
        step(server, db, 2, bot_up=True, log=log)
        resumed = _cli("resume", "--reason", "position settled", "--db", str(db))
        step(server, db, 390 - 95 - 1 - 82, bot_up=True, log=log)  # to the session's end
        bot.wait(timeout=60)
        posts_at_end = server.requests.count(("POST", "/v2/orders"))
        position_at_end = server.account.position
    output = log.read_text()
    assert "broker position 0 differs from the ledger's -14" in output
    assert posts_after == posts_before, "no order was sent for the disputed shares"
    assert position == 0, "the account was not turned long"
    trades = before_release
    with sqlite3.connect(db) as connection:
        released = connection.execute(
            "SELECT profile, status, exit_price, pnl FROM trades ORDER BY profile"
        ).fetchall()
        release_audit = connection.execute(
            "SELECT kind FROM audit WHERE kind LIKE 'release.%' OR kind = 'reconcile.agreed'"
        ).fetchall()
        held = connection.execute(
            "SELECT message FROM audit WHERE kind = 'order.held' ORDER BY message"
        ).fetchall()
        exit_fills = connection.execute(
            "SELECT COUNT(*) FROM fills WHERE client_order_id LIKE '%exit%'"
        ).fetchone()
    assert trades == [
        ("aggressive", "exiting", None, None),
        ("conservative", "exiting", None, None),
    ]
    assert exit_fills == (0,), "no fill the broker did not report"
    assert [m.split(" held:")[0] for (m,) in held] == [
        "buy 6 QQQ (ict-QQQ-202407301501s-conservative-exit)",
        "buy 8 QQQ (ict-QQQ-202407301501s-aggressive-exit)",
    ]
    # the dispute as `reconcile` shows it, then settled by the person
    assert "ict-QQQ-202407301501s-conservative: exiting, -6" in shown
    assert "reconcile.mismatch" in shown
    assert "release requested" in settled and "resume requested" in resumed
    assert released == [
        ("aggressive", "released", None, None),
        ("conservative", "released", None, None),
    ]
    assert [k for (k,) in release_audit] == ["release.applied", "reconcile.agreed"]
    assert bot.returncode == 0, output[-3000:]
    assert posts_at_end == posts_before, "still no order: the released shares are not ours"
    assert position_at_end == 0


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ict_trader", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr
