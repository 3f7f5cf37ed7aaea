"""Today's behaviour, frozen: the redesign of issue #11 must leave these outputs identical.

Three outputs, each produced the way a user produces it:
- the dev-year backtest's JSON (`ict-trader backtest --json`): every metric and every trade;
- the bundled sample's replay narration (`ict-trader run`, no credentials);
- a live-path session's order log: the orders the bot sent to the Alpaca emulator through the
  unmodified alpaca-py, in the order the broker received them, and the ledger's order rows.

An intended change of behaviour regenerates the files (`ICT_TRADER_UPDATE_GOLDEN=1 pytest
tests/test_golden.py`) and says so in its commit message.
"""

from __future__ import annotations

import difflib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.adapters.alpaca.emulator.paper import EmuOrder
from ict_trader.config import AppConfig
from ict_trader.core.exits import StopMode
from ict_trader.marketdata.barfile import load_bars
from tests import test_live
from tests.alpaca_emulator import every_order

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ICT_TRADER_UPDATE_GOLDEN") == "1"


def matches_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with ICT_TRADER_UPDATE_GOLDEN=1 once"
    expected = path.read_text()
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), text.splitlines(), "golden", "now", lineterm=""
        )
        raise AssertionError(f"{name} differs from the golden file:\n" + "\n".join(diff))


def cli(cwd: Path, *arguments: str) -> str:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("ALPACA_", "ICT_"))
    }
    environment |= {"COLUMNS": "100", "PYTHONIOENCODING": "utf-8", "TERM": "dumb"}
    environment.pop("PUSHOVER_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "ict_trader", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_dev_year_backtest_is_unchanged(dev_year: Path, tmp_path: Path) -> None:
    cli(tmp_path, "backtest", "--data", str(dev_year), "--json", "backtest.json")
    report = json.loads((tmp_path / "backtest.json").read_text())
    assert len(report["trades"]) > 100  # the dev year trades: the file is no empty shell
    matches_golden("backtest_dev_year.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def test_the_sample_replay_narration_is_unchanged(tmp_path: Path) -> None:
    narration = cli(tmp_path, "run", "--fresh", "--speed", "0", "--db", "golden.db")
    assert "SIGNAL" in narration and "Daily summary" in narration
    matches_golden("replay_sample.txt", narration)


def oco_stops() -> AppConfig:
    """ATR stops travelling with the targets as Alpaca OCO orders; 2024-07-30 is stopped out."""
    base = AppConfig()
    exits = replace(base.engine.exits, stop=StopMode.ATR, stop_atr_multiple=Decimal("0.1"))
    return replace(base, engine=replace(base.engine, exits=exits))


@pytest.mark.parametrize("stops", ["none", "oco"])
def test_a_live_session_order_log_is_unchanged(
    sample_csv: Path, tmp_path: Path, stops: str
) -> None:
    db = tmp_path / "live.db"
    config = oco_stops() if stops == "oco" else AppConfig()
    _, server = test_live.run_session(load_bars(sample_csv), db, config=config)
    # Orders sent in the same minute may reach Alpaca in either order (the two profiles' fills
    # race; an exit refused as a wash trade goes out after the other entry's fill), and Alpaca
    # numbers orders and names OCO stop legs in arrival order. So the log lists orders by minute
    # and client id, names a stop leg by its parent, and leaves the broker's ids out.
    parents = {leg.id: o.client_order_id for o in server.account.orders.values() for leg in o.legs}

    def named(o: EmuOrder) -> str:
        return f"(stop leg of {parents[o.id]})" if o.id in parents else o.client_order_id

    received = sorted(every_order(server.account).values(), key=lambda o: (o.created_at, named(o)))
    broker_lines = [
        f"{o.created_at:%Y-%m-%dT%H:%M}Z {named(o)} {o.order_class} {o.side} {o.qty}"
        f" {o.type} limit={o.limit_price} stop={o.stop_price} tif={o.time_in_force}"
        f" -> {o.status} {o.filled_qty}"
        for o in received
    ]
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM orders ORDER BY client_order_id").fetchall()
    ledger_lines = [
        "|".join(
            "" if row[key] is None else str(row[key])
            for key in row.keys()  # noqa: SIM118 (sqlite3.Row has no __iter__ over keys)
            if key != "broker_order_id"
        )
        for row in rows
    ]
    assert len(broker_lines) >= 4  # two entries and two targets, at least
    text = "# received by the emulator\n" + "\n".join(broker_lines)
    text += "\n# the ledger's orders table (without the broker's ids)\n" + "\n".join(ledger_lines)
    text += "\n"
    matches_golden(f"live_session_orders_{stops}.txt", text)
