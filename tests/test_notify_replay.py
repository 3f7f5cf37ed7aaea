"""Notifications of a whole replayed session, through the real notifier to the Pushover emulator."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.notify.notifier import PushoverNotifier
from tests.pushover_emulator import PushoverEmulator, running_pushover
from tests.test_replay import replay_all

APP_TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
USER_KEY = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"

# What a user's phone shows for the bundled sample (3 signals, both profiles): entries with the
# broker's order id, exits with P&L and order ids, and a summary after each session's close.
EXPECTED = [
    ("Daily summary 2024-07-29", "0 trades, 0 wins, P&L +0.00"),
    (
        "CONSERVATIVE entry",
        "CONSERVATIVE entry — SHORT 6 QQQ @ 460.27 · order sim-000001 · target 458.02",
    ),
    (
        "AGGRESSIVE entry",
        "AGGRESSIVE entry — SHORT 8 QQQ @ 460.27 · order sim-000002 · target 458.02",
    ),
    (
        "CONSERVATIVE target exit",
        "CONSERVATIVE target exit — SHORT 6 QQQ 460.27 → 458.02 · P&L +13.50 · order sim-000003 (entry sim-000001)",
    ),
    (
        "AGGRESSIVE target exit",
        "AGGRESSIVE target exit — SHORT 8 QQQ 460.27 → 458.02 · P&L +18.00 · order sim-000004 (entry sim-000002)",
    ),
    (
        "Daily summary 2024-07-30",
        "2 trades, 2 wins, P&L +31.50 · aggressive 1 trade +18.00 (target) · conservative 1 trade +13.50 (target)",
    ),
    ("Daily summary 2024-07-31", "0 trades, 0 wins, P&L +0.00"),
    ("Daily summary 2024-08-01", "0 trades, 0 wins, P&L +0.00"),
    ("Daily summary 2024-08-02", "0 trades, 0 wins, P&L +0.00"),
    ("Daily summary 2024-08-05", "0 trades, 0 wins, P&L +0.00"),
    (
        "CONSERVATIVE entry",
        "CONSERVATIVE entry — SHORT 6 QQQ @ 445.63 · order sim-000005 · target 443.95",
    ),
    (
        "AGGRESSIVE entry",
        "AGGRESSIVE entry — SHORT 8 QQQ @ 445.63 · order sim-000006 · target 443.95",
    ),
    (
        "CONSERVATIVE target exit",
        "CONSERVATIVE target exit — SHORT 6 QQQ 445.63 → 443.95 · P&L +10.08 · order sim-000007 (entry sim-000005)",
    ),
    (
        "AGGRESSIVE target exit",
        "AGGRESSIVE target exit — SHORT 8 QQQ 445.63 → 443.95 · P&L +13.44 · order sim-000008 (entry sim-000006)",
    ),
    (
        "Daily summary 2024-08-06",
        "2 trades, 2 wins, P&L +23.52 · aggressive 1 trade +13.44 (target) · conservative 1 trade +10.08 (target)",
    ),
    ("Daily summary 2024-08-07", "0 trades, 0 wins, P&L +0.00"),
    (
        "CONSERVATIVE entry",
        "CONSERVATIVE entry — SHORT 6 QQQ @ 447.63 · order sim-000009 · target 446.09",
    ),
    (
        "AGGRESSIVE entry",
        "AGGRESSIVE entry — SHORT 8 QQQ @ 447.63 · order sim-000010 · target 446.09",
    ),
    (
        "CONSERVATIVE time exit",
        "CONSERVATIVE time exit — SHORT 6 QQQ 447.63 → 447.442 · P&L +1.13 · order sim-000013 (entry sim-000009)",
    ),
    (
        "AGGRESSIVE time exit",
        "AGGRESSIVE time exit — SHORT 8 QQQ 447.63 → 447.442 · P&L +1.50 · order sim-000014 (entry sim-000010)",
    ),
    (
        "Daily summary 2024-08-08",
        "2 trades, 2 wins, P&L +2.63 · aggressive 1 trade +1.50 (time) · conservative 1 trade +1.13 (time)",
    ),
    ("Daily summary 2024-08-09", "0 trades, 0 wins, P&L +0.00"),
]


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def notifier_for(server: PushoverEmulator) -> PushoverNotifier:
    return PushoverNotifier(APP_TOKEN, USER_KEY, server.base_url, backoff_seconds=0.01)


def orders_of(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT client_order_id, broker_order_id, qty, status, filled_qty FROM orders"
            " ORDER BY client_order_id"
        ).fetchall()


def test_the_exact_messages_of_a_replayed_session(sample: BarFile, tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    with running_pushover(APP_TOKEN, USER_KEY) as server:
        notifier = notifier_for(server)
        replay_all(sample, db, notifier=notifier)
        notifier.close(timeout=10)
        messages = server.messages
    assert [(m["title"], m["message"]) for m in messages] == EXPECTED
    assert all(m["token"] == APP_TOKEN and m["user"] == USER_KEY for m in messages)
    assert notifier.sent == len(EXPECTED)
    with sqlite3.connect(db) as connection:
        audited = [
            row[0]
            for row in connection.execute(
                "SELECT message FROM audit WHERE kind LIKE 'notify.%' ORDER BY audit_id"
            )
        ]
    assert audited == [text for _, text in EXPECTED]  # the phone and the store agree


def test_a_failed_delivery_is_retried_and_nothing_is_lost(sample: BarFile, tmp_path: Path) -> None:
    with running_pushover(APP_TOKEN, USER_KEY) as server:
        server.fail_next = [500, 500, 503]
        notifier = notifier_for(server)
        replay_all(sample, tmp_path / "r.db", notifier=notifier)
        notifier.close(timeout=10)
        messages = server.messages
        statuses = server.statuses
    assert statuses[:4] == [500, 500, 503, 200]
    assert [(m["title"], m["message"]) for m in messages] == EXPECTED  # once each, in order


def test_a_dead_notifier_never_holds_up_an_order(sample: BarFile, tmp_path: Path) -> None:
    """Pushover accepts connections but never answers: if the trading loop waited on it even
    once, this replay would never finish. It finishes with exactly the orders of a run without
    notifications."""
    with running_pushover(APP_TOKEN, USER_KEY) as server:
        server.hang()
        notifier = PushoverNotifier(APP_TOKEN, USER_KEY, server.base_url, timeout_seconds=30)
        replay_all(sample, tmp_path / "dead.db", notifier=notifier)
        notifier.close(timeout=0.5)
        assert server.messages == []
    replay_all(sample, tmp_path / "quiet.db")
    assert orders_of(tmp_path / "dead.db") == orders_of(tmp_path / "quiet.db")
    assert len(orders_of(tmp_path / "quiet.db")) == 14
