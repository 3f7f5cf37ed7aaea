"""What a replay prints, in order, also across a restart: summaries before the next session's
header, order lines at the time the order was sent, exit notices with the broker's order ids."""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from ict_trader.core.events import Output, SignalDetected, Tick, TradeUpdated
from ict_trader.core.ledger import FillRecord, Ledger, OrderRecord
from ict_trader.core.orders import Leg, OrderRequest, OrderStatus
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime import control
from tests.engine_script import FILL_TIME, Script, minutes, rendered, submitted
from tests.test_replay import InterruptingConsole, replay_all

HEADER = re.compile(r"session \w{3} (\d{4}-\d{2}-\d{2})")
SUMMARY = re.compile(r"Daily summary (\d{4}-\d{2}-\d{2})")
SESSIONS = [
    "2024-07-29",
    "2024-07-30",
    "2024-07-31",
    "2024-08-01",
    "2024-08-02",
    "2024-08-05",
    "2024-08-06",
    "2024-08-07",
    "2024-08-08",
    "2024-08-09",
]


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def recording() -> Console:
    return Console(file=io.StringIO(), width=250)


def lines_of(console: Console) -> list[str]:
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue().splitlines()


def outline(lines: Sequence[str]) -> list[str]:
    """Session headers and daily summaries, in the order printed."""
    marks = []
    for line in lines:
        if header := HEADER.search(line):
            marks.append(f"header {header[1]}")
        elif summary := SUMMARY.search(line):
            marks.append(f"summary {summary[1]}")
    return marks


def audited(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [
            row[0]
            for row in connection.execute(
                "SELECT message FROM audit WHERE kind LIKE 'notify.%' ORDER BY audit_id"
            )
        ]


def printed_at(lines: Sequence[str], needle: str) -> int:
    """The 1-based print count of the first line containing `needle` (headers count too)."""
    for index, line in enumerate(lines):
        if needle in line:
            return index + 1
    raise AssertionError(f"{needle!r} never printed")


@pytest.fixture(scope="module")
def reference(sample: BarFile, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The whole sample replayed in one go: its store and what it printed."""
    db = tmp_path_factory.mktemp("narration") / "reference.db"
    console = recording()
    replay_all(sample, db, console)
    return db, lines_of(console)


def test_each_summary_comes_before_the_next_sessions_header(
    reference: tuple[Path, list[str]],
) -> None:
    _, lines = reference
    assert outline(lines) == [
        mark for day in SESSIONS for mark in (f"header {day}", f"summary {day}")
    ]


def test_a_time_exit_is_printed_when_its_hour_is_up(reference: tuple[Path, list[str]]) -> None:
    """2024-08-08: the entries filled at 14:28, so the 60-minute limit is up at 15:28 (the close
    of the 15:27 bar); the target is cancelled and the exit sent then, not a minute earlier."""
    _, lines = reference
    exits = [
        line
        for line in lines
        if "ict-QQQ-202408081827s" in line and (" exit: buy " in line or "canceled: " in line)
    ]
    assert len(exits) == 4
    assert all(line.startswith("15:28  ") for line in exits), exits


@pytest.mark.parametrize("summary_day", ["2024-07-29", "2024-07-30", "2024-08-01"])
def test_a_stop_at_a_sessions_end_neither_loses_nor_repeats_its_summary(
    sample: BarFile, tmp_path: Path, reference: tuple[Path, list[str]], summary_day: str
) -> None:
    """Stopped after the session's last bar was committed, while its summary was going out: the
    resumed replay sends that summary first, once, then the next session."""
    reference_db, reference_lines = reference
    stop_at = printed_at(reference_lines, f"Daily summary {summary_day}")
    db = tmp_path / "stopped.db"
    first = InterruptingConsole(stop_at)
    replay_all(sample, db, first)
    resumed = recording()
    replay_all(sample, db, resumed)
    before, after = lines_of(first), lines_of(resumed)
    assert not any(f"Daily summary {summary_day}" in line for line in before)
    assert (
        SUMMARY.search(after[1]) and f"Daily summary {summary_day}" in after[1]
    )  # after "resuming"
    assert outline(before + after) == outline(reference_lines)
    assert audited(db) == audited(reference_db)  # the phone gets each summary once, in order


def stopped_mid_trade(sample: BarFile, db: Path, reference_lines: list[str]) -> None:
    """Replay until the 11:38 bar of 2024-07-30 is being processed (both trades open, their
    targets resting since 11:02), then stop: the store ends at the 11:37 bar."""
    replay_all(sample, db, InterruptingConsole(printed_at(reference_lines, "11:38  fill")))


def test_after_a_restart_exit_orders_carry_the_time_they_were_sent(
    sample: BarFile, tmp_path: Path, reference: tuple[Path, list[str]]
) -> None:
    """A kill requested while the replay was stopped applies at the restart (11:38): the
    targets are cancelled and the exits sent then, not at the targets' 11:02."""
    _, reference_lines = reference
    db = tmp_path / "killed.db"
    stopped_mid_trade(sample, db, reference_lines)
    store = Store(db)
    try:
        control.request(store, "kill", "stopped for the night", "cli")
        store.commit()
    finally:
        store.close()
    resumed = recording()
    replay_all(sample, db, resumed)
    lines = lines_of(resumed)
    assert lines[0].startswith("resuming after 11:37 New York on 2024-07-30: 2 open trade(s)")
    assert "session Tue 2024-07-30" in lines[1]  # the header before what the restart does
    assert "Kill switch engaged" in lines[2] and lines[2].startswith("11:38")
    exits = [line for line in lines if " exit: buy " in line or "canceled: " in line]
    assert len(exits) == 4  # two targets cancelled, two market exits sent
    assert all(line.startswith("11:38  ") for line in exits), exits
    with sqlite3.connect(db) as connection:
        created = connection.execute(
            "SELECT leg, created_at FROM orders WHERE leg = 'exit' ORDER BY client_order_id"
        ).fetchall()
    assert created == [("exit", "2024-07-30T15:38:00Z")] * 2


def test_after_a_restart_exit_notices_name_the_entries_broker_ids(
    sample: BarFile, tmp_path: Path, reference: tuple[Path, list[str]]
) -> None:
    reference_db, reference_lines = reference
    db = tmp_path / "resumed.db"
    stopped_mid_trade(sample, db, reference_lines)
    resumed = recording()
    replay_all(sample, db, resumed)
    with sqlite3.connect(db) as connection:
        entries = dict(
            connection.execute(
                "SELECT profile, broker_order_id FROM orders"
                " WHERE leg = 'entry' AND client_order_id LIKE 'ict-QQQ-202407301501s-%'"
            ).fetchall()
        )
    assert entries == {"conservative": "sim-000001", "aggressive": "sim-000002"}
    notices = [line for line in lines_of(resumed) if " target exit — " in line][:2]
    assert len(notices) == 2
    for line in notices:
        profile = "conservative" if "CONSERVATIVE" in line else "aggressive"
        assert line.endswith(f"(entry {entries[profile]})"), line
    assert not any("(entry ict-" in message for message in audited(db))
    # The same messages as an uninterrupted run (two fills of one bar may swap places).
    assert sorted(audited(db)) == sorted(audited(reference_db))


def test_a_restored_trade_names_the_exit_orders_filled_before_the_restart() -> None:
    """A target partly filled before a restart, the rest closed by the time exit after it: the
    notice names both exit orders and the entry by their broker ids (live, where fills are
    partial)."""
    before = Script()
    before.equity()
    entries = submitted(before.to_signal())
    for entry in entries:
        before.fill(entry, entry.qty, "97.60")
    commands = before.commands
    target = next(o for o in submitted(commands) if o.leg is Leg.TARGET)
    before.fill(target, 10, "83.60", FILL_TIME + minutes(30), cumulative=10, complete=False)
    ledger = _ledger(before.commands, target)

    after = Script()
    after.equity()
    after.engine.restore(ledger)
    after.send(Tick(FILL_TIME + minutes(60)))  # the time exit: cancel the rest of the target
    (exit_order,) = submitted(
        after.cancel_confirmed(target.client_order_id, FILL_TIME + minutes(60))
    )
    after.fill(exit_order, 20, "97.00", FILL_TIME + minutes(61))
    notices = [n for n in rendered(after.commands) if " exit" in n.title]
    assert len(notices) == 1
    entry = next(
        o for o in submitted(commands) if o.leg is Leg.ENTRY and o.profile == target.profile
    )
    assert notices[0].message.endswith(
        f"· order b-{target.client_order_id}, b-{exit_order.client_order_id} "
        f"(entry b-{entry.client_order_id})"
    )


def _ledger(commands: Sequence[Output], partly_filled: OrderRequest) -> Ledger:
    """What the store would hand back after these commands and the scripted fills."""
    trades = {c.trade.trade_id: c.trade for c in commands if isinstance(c, TradeUpdated)}
    signals = {c.signal_id: c.signal for c in commands if isinstance(c, SignalDetected)}
    orders = []
    fills = []
    for order in submitted(commands):
        if order.leg is Leg.ENTRY:
            status, filled = OrderStatus.FILLED, order.qty
        elif order is partly_filled:
            status, filled = OrderStatus.PARTIALLY_FILLED, 10
        else:
            status, filled = OrderStatus.ACCEPTED, 0
        orders.append(OrderRecord(order, f"b-{order.client_order_id}", status, filled))
        if filled:
            price = Decimal("97.60") if order.leg is Leg.ENTRY else Decimal("83.60")
            when = FILL_TIME if order.leg is Leg.ENTRY else FILL_TIME + minutes(30)
            fills.append(
                FillRecord(
                    f"x-{order.client_order_id}",
                    order.client_order_id,
                    when,
                    filled,
                    price,
                    Decimal(0),
                )
            )
    return Ledger(trades=list(trades.values()), signals=signals, orders=orders, fills=fills)
