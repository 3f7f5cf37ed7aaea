"""The SQLite store: schema, transactions, exact money, and a consistent ledger after a run."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ict_trader.config import AppConfig
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.engine import Engine
from ict_trader.core.strategy import EngineConfig
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence import store as store_module
from ict_trader.persistence.store import (
    SCHEMA_VERSION,
    Store,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreLockedError,
)
from ict_trader.runtime import control
from ict_trader.runtime.backtest import run_backtest
from ict_trader.signals import IctDetector


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


# ---------------------------------------------------------------- concurrency and failures

HOLDER = """
import sys
from ict_trader.persistence.store import Store
store = Store(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""


def _hold_writer_lock(db: Path) -> subprocess.Popen[str]:
    """Another process that opened `db` as its writer (what a running bot does) and waits."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_one_writer_process_and_a_killed_one_does_not_block(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    Store(db).close()
    holder = _hold_writer_lock(db)
    try:
        with pytest.raises(StoreLockedError, match=rf"already running \(pid {holder.pid}\)"):
            Store(db)
        reader = Store(db, reader=True)  # the dashboard, status, kill and resume still work
        assert control.request(reader, "kill", "while running", "cli") == 1
        reader.close()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the flock
        holder.communicate()
    Store(db).close()  # a stale lock from a killed process does not block the next start


def test_writers_in_one_process_share_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first, second = Store(db), Store(db)
    second.set_state("k", "v")
    second.commit()
    assert first.state("k") == "v"
    first.close()
    descriptor = os.open(f"{db}.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # still held: `second` is open
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second.close()
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the last one
    finally:
        os.close(descriptor)


def _blocker(db: Path) -> sqlite3.Connection:
    """A connection holding the write lock (as the bot does during a bar's work)."""
    connection = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    connection.execute("BEGIN IMMEDIATE")
    return connection


def test_a_locked_write_is_retried_until_the_lock_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    Store(db).close()
    blocker = _blocker(db)
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # the other writer finishes during the second pause
        pauses.append(seconds)
        if len(pauses) == 2:
            blocker.execute("COMMIT")

    monkeypatch.setattr(store_module, "pause", pause)
    client = Store(db, reader=True, busy_timeout=0.01)
    number = control.request(client, "resume", "after a busy spell", "cli")
    client.close()
    blocker.close()
    assert len(pauses) == 2
    check = Store(db, reader=True)
    assert [r.number for r in control.pending(check)] == [number]
    check.close()


def test_a_lock_held_through_every_retry_is_an_error_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    Store(db).close()
    blocker = _blocker(db)
    pauses: list[float] = []
    monkeypatch.setattr(store_module, "pause", pauses.append)
    client = Store(db, reader=True, busy_timeout=0.01)
    with pytest.raises(StoreBusyError, match=r"s\.db: the store stayed locked"):
        control.request(client, "kill", "never lands", "cli")
    assert len(pauses) == len(store_module.LOCK_RETRY_DELAYS)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert control.pending(client) == []  # nothing half-written
    assert control.request(client, "kill", "lands now", "cli") == 1  # the connection recovered
    client.close()


def test_a_full_database_is_a_store_error_and_the_store_stays_usable(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.set_state("kept", "1")
    store.commit()
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk with two pages left
    with pytest.raises(StoreFullError, match=r"s\.db: database or disk is full"):
        for index in range(100):
            store.set_state(f"big{index}", "x" * 4000)
    assert not store.in_transaction  # rolled back: the caller knows nothing was recorded
    assert (store.state("kept"), store.state("big0")) == ("1", None)
    store._db.execute("PRAGMA max_page_count = 1073741823")  # space again
    store.set_state("after", "1")
    store.commit()
    store.close()
    reopened = Store(tmp_path / "s.db", reader=True)
    assert (reopened.state("kept"), reopened.state("after")) == ("1", "1")
    reopened.close()


def test_a_version_2_store_keeps_its_pending_request(tmp_path: Path) -> None:
    """The single request key of schema 2 becomes the first row of the request log."""
    db = tmp_path / "v2.db"
    with sqlite3.connect(db) as connection:
        for version in (1, 2):
            connection.executescript(store_module._MIGRATIONS[version])
        payload = {
            "id": 7,
            "kind": "kill",
            "reason": "old",
            "actor": "cli",
            "time": "2024-01-02T03:04:05Z",
        }
        connection.execute(
            "INSERT INTO state VALUES ('control_request', ?)", (json.dumps(payload),)
        )
        connection.execute("PRAGMA user_version = 2")
    store = Store(db, reader=True)
    assert [(r.number, r.kind, r.reason, r.actor) for r in control.pending(store)] == [
        (7, "kill", "old", "cli")
    ]
    assert store.state("control_request") is None
    assert control.request(store, "resume", "new", "cli") == 8  # numbering carries on
    store.close()


def test_a_version_3_store_is_upgraded_in_place_with_its_symbol(tmp_path: Path) -> None:
    """Rows written before stores named symbols get the symbol their run traded: a trade's from
    its entry order, a signal's from its trade, bars and the last close from the run's setting;
    the run's settings gain `symbols` and the per-symbol limits, so a replay still resumes."""
    db = tmp_path / "v3.db"
    old_config = {"symbol": "SPY", "risk": {"daily_loss_limit": "1000"}, "signal": {}}
    with sqlite3.connect(db) as connection:
        for version in (1, 2, 3):
            for statement in store_module._statements(store_module._MIGRATIONS[version]):
                connection.execute(statement)
        connection.execute(
            "INSERT INTO runs (started_at, mode, data_source, config) VALUES (?, ?, ?, ?)",
            ("2024-07-29T13:00:00Z", "paper", None, json.dumps(old_config)),
        )
        connection.execute(
            "INSERT INTO signals VALUES ('20240729T1335Z-short', '2024-07-29T13:35:00Z', 'short',"
            " '97.5', 2.8, '102.0', '98.0')"
        )
        connection.execute(
            "INSERT INTO orders (client_order_id, trade_id, profile, leg, symbol, side, qty, type,"
            " time_in_force, status, filled_qty, created_at, updated_at) VALUES"
            " ('ict-202407291335s-conservative-entry', 'ict-202407291335s-conservative',"
            " 'conservative', 'entry', 'SPY', 'sell', 30, 'market', 'day', 'filled', 30,"
            " '2024-07-29T13:36:00Z', '2024-07-29T13:36:00Z')"
        )
        connection.execute(
            "INSERT INTO fills VALUES ('x1', 'ict-202407291335s-conservative-entry', 'b1',"
            " '2024-07-29T13:36:00Z', 30, '97.60', '0')"
        )
        connection.execute(
            "INSERT INTO trades VALUES ('ict-202407291335s-conservative', '20240729T1335Z-short',"
            " 'conservative', 'short', 'open', 30, 30, 'ict-202407291335s-conservative-entry',"
            " '97.60', '2024-07-29T13:36:00Z', '83.60', NULL, NULL, NULL, NULL, NULL, '0', 'iex')"
        )
        connection.execute(
            "INSERT INTO bars VALUES ('2024-07-29T13:35:00Z', 99.0, 99.5, 97.0, 97.5, 1000)"
        )
        connection.execute("INSERT INTO state VALUES ('last_close', '97.5')")
        connection.execute("PRAGMA user_version = 3")
    store = Store(db)
    ledger = store.load_ledger()
    assert ledger.signals["20240729T1335Z-short"].symbol == "SPY"
    (trade,) = store.trades()
    assert (trade.symbol, trade.qty, trade.status) == ("SPY", 30, "open")
    start = datetime(2024, 7, 29, 13, 0, tzinfo=UTC)
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT symbol FROM fills").fetchall() == [("SPY",)]
    (bar,) = store.bars_between(start, start + timedelta(hours=1))
    assert (bar.symbol, bar.close) == ("SPY", 97.5)
    assert store.last_closes() == {"SPY": Decimal("97.5")}
    run = store.last_run()
    assert run is not None
    assert "symbol" not in run["config"]
    assert run["config"]["symbols"] == ["SPY"]
    assert run["config"]["risk"]["max_symbol_equity_pct"] == "0"
    # The engine takes the upgraded trade over, in the right symbol, with its old ids.
    engine = Engine(
        EngineConfig(symbols=("SPY",)), IctDetector(NyseCalendar.covering(start, start), None)
    )
    engine.restore(ledger)
    assert engine.open_positions() == {"SPY": -30}
    store.close()


@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), UTC]),
    ),
    st.booleans(),
)
def test_stored_times_are_utc_iso_to_the_second(moment: datetime, on_the_minute: bool) -> None:
    """The minute fast path and the general one write the same text as strftime would."""
    if on_the_minute:
        moment = moment.replace(second=0, microsecond=0)
    expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store_module._iso(moment) == expected
