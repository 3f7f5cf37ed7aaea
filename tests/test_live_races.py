"""Bars that arrive before the orders of the last one have come to rest.

The other live tests let each bar's order exchange settle before the next bar, as a minute of real
time does. Here the emulator moves on as soon as the shell has read a bar, so an OCO's stop may
reach Alpaca after the bar that would have triggered it. Which exit the broker then makes depends
on timing — the stop at 15:02 or the take-profit at 15:38 — and either is legitimate. What may not
depend on timing is the booking: every trade must close with the exit the broker actually made, at
the broker's price, and every order's filled quantity must equal the broker's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.adapters.alpaca.emulator.paper import EmuOrder
from ict_trader.config import AppConfig
from ict_trader.core.exits import StopMode
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests import test_live
from tests.alpaca_emulator import backtest_like, every_order


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


@pytest.mark.parametrize("attempt", range(4))
def test_a_racing_oco_is_booked_as_the_broker_filled_it(
    sample: BarFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempt: int
) -> None:
    monkeypatch.setattr(test_live, "settled", lambda server, shell: None)
    base = AppConfig()
    exits = replace(base.engine.exits, stop=StopMode.ATR, stop_atr_multiple=Decimal("0.1"))
    config = replace(base, engine=replace(base.engine, exits=exits))
    db = tmp_path / "race.db"
    _, server = test_live.run_session(sample, db, config=config, options=backtest_like())
    broker = every_order(server.account)
    with sqlite3.connect(db) as connection:
        orders = connection.execute(
            "SELECT client_order_id, broker_order_id, trade_id, leg FROM orders"
        ).fetchall()
        filled = dict(
            connection.execute("SELECT client_order_id, SUM(qty) FROM fills GROUP BY 1").fetchall()
        )
        trades = connection.execute(
            "SELECT trade_id, status, exit_reason, exit_price, qty FROM trades"
        ).fetchall()
    assert len(trades) == 2  # the 15:01 short, both profiles
    exit_legs: dict[str, list[tuple[str, EmuOrder]]] = {}
    for client_order_id, broker_id, trade_id, role in orders:
        at_broker = broker[broker_id]
        assert filled.get(client_order_id, 0) == at_broker.filled_qty, client_order_id
        if role in {"target", "stop"} and at_broker.filled_qty:
            exit_legs.setdefault(trade_id, []).append((role, at_broker))
    for trade_id, status, reason, price, qty in trades:
        ((role, leg),) = exit_legs[trade_id]  # exactly one leg of the OCO filled
        assert status == "closed"
        assert reason == role
        assert leg.filled_qty == qty
        assert Decimal(price) == leg.filled_value / leg.filled_qty
    assert server.account.position == 0
