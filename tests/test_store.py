"""The SQLite store: schema, transactions, exact money, and a consistent ledger after a run."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.backtest import run_backtest
from ict_trader.barfile import load_bars
from ict_trader.config import AppConfig
from ict_trader.store import SCHEMA_VERSION, Store, StoreError


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    Store(path).close()  # reopening an existing store migrates nothing and works


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Store(path)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(path)


def test_uncommitted_work_is_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.set_state("kept", "1")
    store.commit()
    store.set_state("dropped", "1")
    store.rollback()
    store.set_state("closed-uncommitted", "1")
    store.close()
    reopened = Store(tmp_path / "s.db")
    assert (reopened.state("kept"), reopened.state("dropped")) == ("1", None)
    assert reopened.state("closed-uncommitted") is None
    reopened.close()


def test_backtest_ledger_is_consistent(sample_csv: Path, tmp_path: Path) -> None:
    bar_file = load_bars(sample_csv)
    path = tmp_path / "run.db"
    store = Store(path)
    result = run_backtest(bar_file.bars, bar_file.calendar, AppConfig(), store=store)
    store.close()
    with sqlite3.connect(path) as db:
        orders = {
            row[0]: row
            for row in db.execute(
                "SELECT client_order_id, trade_id, leg, side, status, filled_qty FROM orders"
            )
        }
        fills = db.execute(
            "SELECT client_order_id, qty, price, typeof(price) FROM fills"
        ).fetchall()
        trades = db.execute(
            "SELECT trade_id, direction, status, qty, pnl, typeof(pnl) FROM trades"
        ).fetchall()
        feeds = db.execute("SELECT DISTINCT feed FROM trades").fetchall()
        equity_types = db.execute("SELECT DISTINCT typeof(equity_cents) FROM equity").fetchall()
    assert len(trades) == 6 and all(t[2] == "closed" for t in trades)
    assert equity_types == [("integer",)]
    assert feeds == [("file",)]  # decided on the file's bars, not a live feed
    filled: dict[str, int] = defaultdict(int)
    flows: dict[str, Decimal] = defaultdict(Decimal)
    for client_order_id, qty, price, kind in fills:
        assert client_order_id in orders, "every fill belongs to a recorded order"
        assert kind == "text", "prices are exact decimal strings"
        _, trade_id, _, side, _, _ = orders[client_order_id]
        filled[client_order_id] += qty
        # cash flow: selling brings money in, buying pays it out
        flows[trade_id] += Decimal(price) * qty * (1 if side == "sell" else -1)
    for client_order_id, (_, _, _, _, status, filled_qty) in orders.items():
        assert filled_qty == filled[client_order_id]
        assert status in {"filled", "canceled", "expired", "rejected"}, (
            "closed trades leave no working order"
        )
    for trade_id, _, _, _, pnl, kind in trades:
        assert kind == "text"
        assert Decimal(pnl) == flows[trade_id], "trade P&L is exactly the cash its fills moved"
    assert sum(Decimal(t[4]) for t in trades) == result.metrics["all"].total_pnl
