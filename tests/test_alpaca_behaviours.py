"""The bot against Alpaca's documented behaviours, one at a time (unmodified alpaca-py, emulator).

Each test sets up what real Alpaca does (see docs/alpaca-fidelity.md) and checks what the bot
makes of it: the adapter's engine events, or a whole session through the live shell.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.core.events import OrderAccepted, OrderFilled, OrderRejected
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import KEY, SECRET, backtest_like, running_emulator
from tests.test_live import SESSION_START, run_session

NOW = datetime(2024, 7, 30, 15, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def broker_for(server: EmulatorServer) -> AlpacaBroker:
    return AlpacaBroker(KEY, SECRET, url_override=server.base_url, sleep=lambda _: None)


def order(
    cid: str,
    side: Side,
    qty: int,
    kind: OrderType,
    leg: Leg,
    *,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    oco_group: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol="QQQ",
        side=side,
        qty=qty,
        type=kind,
        trade_id="t1",
        profile="conservative",
        leg=leg,
        limit_price=limit_price,
        stop_price=stop_price,
        oco_group=oco_group,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    "flags",
    [
        {"trading_blocked": True},
        {"account_blocked": True},
        {"trade_suspended_by_user": True},
        {"status": "ACCOUNT_UPDATED"},
    ],
)
def test_a_blocked_account_takes_no_entries(
    sample: BarFile, tmp_path: Path, flags: dict[str, bool | str]
) -> None:
    def block(server: EmulatorServer) -> None:
        answer = requests.post(f"{server.base_url}/_emulator/account", json=flags, timeout=10)
        assert answer.status_code == 200, answer.text

    db = tmp_path / "blocked.db"
    _, server = run_session(sample, db, before=block)
    assert server.requests.count(("POST", "/v2/orders")) == 0
    with sqlite3.connect(db) as connection:
        skips = connection.execute("SELECT reason FROM skips").fetchall()
    assert len(skips) == 2  # the session's signal, both profiles
    assert all("blocked" in reason for (reason,) in skips)


def test_an_oco_whose_stop_is_already_crossed_is_refused_as_a_whole(sample: BarFile) -> None:
    """Alpaca answers 422 when the stop is not at least $0.01 beyond the price; both halves are
    reported rejected (the engine then closes the position at market: test_engine)."""
    with running_emulator(sample, start_bar=SESSION_START + 92, options=backtest_like()) as server:
        by_hand = TradingClient(KEY, SECRET, url_override=server.base_url)
        by_hand.submit_order(
            MarketOrderRequest(
                symbol="QQQ", qty=6, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
        server.call(server.settle())
        price = Decimal(str(server.account.mark()))
        broker = broker_for(server)
        target = order(
            "ict-x-target",
            Side.BUY,
            6,
            OrderType.LIMIT,
            Leg.TARGET,
            limit_price=price - 2,
            oco_group="t1",
        )
        crossed = order(
            "ict-x-stop",
            Side.BUY,
            6,
            OrderType.STOP,
            Leg.STOP,
            stop_price=price - Decimal("0.50"),  # a buy stop below the price: already crossed
            oco_group="t1",
        )
        broker.submit(target)
        broker.submit(crossed)
        events = broker.events()
        created = [o for o in server.account.orders.values() if o.client_order_id == "ict-x-target"]
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.client_order_id for e in rejected] == ["ict-x-target", "ict-x-stop"]
    assert all("stop" in e.reason for e in rejected)
    assert created == []  # nothing was created at Alpaca
    assert broker.working() == []


def test_a_resend_that_meets_a_duplicate_id_tracks_the_order_instead_of_rejecting_it(
    sample: BarFile,
) -> None:
    """The first POST created the order but was answered 504; the lookup by client id missed it
    (still being created: 404); the re-send is refused 422 "client_order_id must be unique".
    The order exists, so the bot must find it — never record it as rejected."""
    faults = Faults(order_504_rate=1.0)
    with running_emulator(
        sample, start_bar=SESSION_START + 92, options=backtest_like(), faults=faults
    ) as server:
        faults.fail_next = [("GET", "/v2/orders:by_client_order_id", 404)]
        broker = broker_for(server)
        entry = order("ict-y-entry", Side.SELL, 6, OrderType.MARKET, Leg.ENTRY)
        broker.submit(entry)
        server.call(server.settle())
        broker.poll_working()
        events = broker.events()
        duplicates = [e for e in server.api_errors if "must be unique" in e[2]]
        created = [
            o for o in server.account.orders.values() if o.client_order_id == entry.client_order_id
        ]
    assert len(duplicates) == 1, "the re-send met Alpaca's duplicate check"
    assert len(created) == 1
    assert not [e for e in events if isinstance(e, OrderRejected)]
    assert [type(e) for e in events if isinstance(e, OrderAccepted)] == [OrderAccepted]
    assert sum(e.qty for e in events if isinstance(e, OrderFilled)) == 6
