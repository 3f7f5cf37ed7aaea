"""kill -9 with an OCO exit resting at Alpaca, then a restart: the stop leg is found again.

Alpaca names an OCO's stop leg itself (its own id and client id), so after a restart the bot
cannot look it up by the client id it recorded; it finds it through the take-profit read with
`nested=true`. Before, the leg stayed "working" forever: the time exit waited for its cancel and
the trades never closed.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.config import AppConfig
from ict_trader.core.exits import StopMode
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.runtime.backtest import run_backtest
from tests.alpaca_emulator import KEY, SECRET, backtest_like, every_minute, running_emulator
from tests.test_live_restart import step, wait_connected

AUGUST_8 = 8 * 390  # 2024-08-08 09:30: the 14:27 short signal's entry fills at 14:28 (bar 298)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def start_bot(server: EmulatorServer, db: Path, log: Path) -> subprocess.Popen[bytes]:
    config = db.parent / "ict-trader.toml"
    config.write_text('[exits]\nstop = "sweep"\n', encoding="utf-8")
    env = {**os.environ, "ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET, "COLUMNS": "200"}
    command = [sys.executable, "-m", "ict_trader", "run", "--alpaca-url", server.base_url]
    command += ["--db", str(db), "--sessions", "1", "--config", str(config)]
    with log.open("ab") as output:
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=db.parent
        )


def test_restart_with_an_oco_resting_finds_its_stop_leg(sample: BarFile, tmp_path: Path) -> None:
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    with running_emulator(
        sample, start_bar=AUGUST_8, options=backtest_like(), data=every_minute()
    ) as server:
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 302, bot_up=True, log=log)  # 14:32: both OCO exits resting
        held = [o for o in server.account.orders.values() if o.status == "held"]
        assert len(held) == 2, "each profile's stop leg rests, held, at Alpaca"
        bot.kill()
        bot.wait()
        step(server, db, 8, bot_up=False, log=log)
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 390 - 310, bot_up=True, log=log)
        bot.wait(timeout=60)
        ids = Counter(o.client_order_id for o in server.account.orders.values())
        legs = [o for o in server.account.orders.values() if o.order_class == "oco"]
        position = server.account.position
    assert bot.returncode == 0, log.read_text()[-3000:]
    assert max(ids.values()) == 1
    assert position == 0
    assert legs and all(not o.open for o in legs)
    base = AppConfig()
    config = replace(
        base, engine=replace(base.engine, exits=replace(base.engine.exits, stop=StopMode.SWEEP))
    )
    expected = run_backtest(sample.bars[: AUGUST_8 + 390], sample.calendar, config)
    want = sorted(
        (t.trade_id, t.exit_reason.value if t.exit_reason else None, t.pnl)
        for t in expected.closed_trades()
        if t.entry_time and t.entry_time >= sample.bars[AUGUST_8].time
    )
    with sqlite3.connect(db) as connection:
        got = connection.execute(
            "SELECT trade_id, exit_reason, pnl, status FROM trades ORDER BY trade_id"
        ).fetchall()
    assert [(t, r, Decimal(p)) for t, r, p, _ in got] == want
    assert {status for *_, status in got} == {"closed"}
    assert [r for _, r, _ in want] == ["time", "time"]
