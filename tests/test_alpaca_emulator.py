"""The loopback Alpaca emulator, driven by the unmodified alpaca-py SDK."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.models import BarSet
from alpaca.data.requests import StockBarsRequest, StockLatestBarRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, OrderType, TimeInForce
from alpaca.trading.models import Asset, Calendar, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import (
    GetCalendarRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream
from typer.testing import CliRunner

from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.cli.app import app
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    TWO_SYMBOLS,
    data_client,
    running_emulator,
    trading_client,
)

START = 100  # bars already completed when a test starts: 2024-07-29 11:10 New York


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def market(cid: str, side: OrderSide, qty: int) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="QQQ", qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def bid_at_high(bar: Any) -> Decimal:
    """The best bid while a bar traded at its high (the default spread is 0.02)."""
    return Decimal(repr(bar.high)) - Decimal("0.01")


def test_account_clock_calendar_and_asset_parse(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = trading_client(server)
        account = client.get_account()
        assert isinstance(account, TradeAccount)
        assert (account.equity, account.cash, account.status.value) == (
            "100000",
            "100000",
            "ACTIVE",
        )
        clock = client.get_clock()
        assert isinstance(clock, Clock)
        assert clock.is_open
        assert clock.timestamp == datetime(2024, 7, 29, 15, 10, tzinfo=UTC)
        assert clock.next_close == datetime(2024, 7, 29, 20, 0, tzinfo=UTC)
        answer = client.get_calendar(
            GetCalendarRequest(start=date(2024, 7, 29), end=date(2024, 8, 2))
        )
        assert isinstance(answer, list)
        days = [d for d in answer if isinstance(d, Calendar)]
        assert [d.date for d in days] == [date(2024, 7, d) for d in (29, 30, 31)] + [
            date(2024, 8, 1),
            date(2024, 8, 2),
        ]
        assert days[0].close == datetime(2024, 7, 29, 16, 0)  # New York wall clock, as Alpaca
        asset = client.get_asset("QQQ")
        assert isinstance(asset, Asset)
        assert (asset.symbol, asset.shortable, asset.easy_to_borrow) == ("QQQ", True, True)


WHOLE = EmulatorOptions(partial_fill_rate=0.0)  # realistic, but no random partial fills


def test_market_order_fills_at_the_bid_and_is_found_by_client_id(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        order = client.submit_order(market("ict-1-entry", OrderSide.SELL, 6))
        assert isinstance(order, Order)
        assert order.status is OrderStatus.PENDING_NEW  # fills come after the answer
        server.call(server.settle())
        bid = Decimal(repr(sample.bars[START].open)) - Decimal("0.01")
        again = client.get_order_by_client_id("ict-1-entry")
        assert isinstance(again, Order)
        assert (again.id, again.filled_qty, again.status) == (order.id, "6", OrderStatus.FILLED)
        assert Decimal(str(again.filled_avg_price)) == bid
        position = client.get_open_position("QQQ")
        assert isinstance(position, Position)
        assert (position.qty, position.side.value) == ("-6", "short")
        with pytest.raises(APIError) as duplicate:
            client.submit_order(market("ict-1-entry", OrderSide.SELL, 6))
        assert duplicate.value.status_code == 422
        assert duplicate.value.code == 40010001


def test_a_resting_target_holds_the_shares(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("entry", OrderSide.BUY, 10))
        server.call(server.settle())
        target = client.submit_order(
            LimitOrderRequest(
                symbol="QQQ",
                qty=10,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                limit_price=999.0,
                client_order_id="target",
            )
        )
        assert isinstance(target, Order) and target.status is OrderStatus.PENDING_NEW
        with pytest.raises(APIError) as held:
            client.submit_order(market("exit-while-held", OrderSide.SELL, 10))
        assert held.value.status_code == 403
        assert "insufficient qty available for order (requested: 10, available: 0)" in str(
            held.value
        )
        client.cancel_order_by_id(target.id)
        server.call(server.settle())  # the cancel is confirmed
        exit_order = client.submit_order(market("exit", OrderSide.SELL, 10))
        assert isinstance(exit_order, Order)
        server.call(server.settle())
        assert client.get_all_positions() == []


def test_opposite_order_is_refused_as_a_wash_trade(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = trading_client(server)
        client.submit_order(
            LimitOrderRequest(
                symbol="QQQ",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=1.0,
                client_order_id="low-bid",
            )
        )
        with pytest.raises(APIError, match="potential wash trade detected"):
            client.submit_order(market("sell", OrderSide.SELL, 1))


def test_resting_limit_fills_when_a_bar_reaches_it(sample: BarFile) -> None:
    """A sell limit above the market rests until the first completed bar whose bid (the high
    less half the 0.02 spread) reaches it, and fills at the limit."""
    upcoming = sample.bars[START : START + 60]
    target_price = max(b.high for b in upcoming[1:]) - 0.02
    assert target_price > upcoming[0].high  # not reachable by the bar in progress
    hit = next(
        i for i, b in enumerate(upcoming) if bid_at_high(b) >= Decimal(str(round(target_price, 2)))
    )
    assert upcoming[hit].open - 0.01 < target_price  # reached inside the bar, not at an open
    with running_emulator(sample, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("entry", OrderSide.BUY, 3))
        server.call(server.settle())  # filled: a sell now closes, it is no wash trade
        client.submit_order(
            LimitOrderRequest(
                symbol="QQQ",
                qty=3,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                limit_price=round(target_price, 2),
                client_order_id="target",
            )
        )
        server.call(server.advance(hit))
        target = client.get_order_by_client_id("target")
        assert isinstance(target, Order) and target.status is OrderStatus.NEW
        server.call(server.advance(1))
        target = client.get_order_by_client_id("target")
        assert isinstance(target, Order) and target.status is OrderStatus.FILLED
        assert Decimal(str(target.filled_avg_price)) == Decimal(str(round(target_price, 2)))


def test_day_orders_expire_at_the_close(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = trading_client(server)
        client.submit_order(
            LimitOrderRequest(
                symbol="QQQ",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=1.0,
                client_order_id="never",
            )
        )
        server.call(server.advance(390 - START))  # through the 16:00 close of 2024-07-29
        order = client.get_order_by_client_id("never")
        assert isinstance(order, Order) and order.status is OrderStatus.EXPIRED


def test_historical_bars_are_paginated_and_never_include_the_bar_in_progress(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=2500, max_page_size=1000) as server:
        bars = data_client(server).get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols="QQQ",
                timeframe=TimeFrame.Minute,
                start=sample.bars[0].time,
                end=sample.bars[-1].time,
                feed=DataFeed.IEX,
            )
        )
        received = bars.data["QQQ"]  # type: ignore[union-attr]
        on_iex = [b for b in sample.bars[:2500] if server.feed.has(b.time, "iex")]
        assert 2400 < len(on_iex) < 2500  # IEX has no bar for a minute without an IEX trade
        assert [b.timestamp for b in received] == [b.time for b in on_iex]
        assert received[-1].close == server.feed.history(2500, "iex")[-1].close
        assert [m for m, p in server.requests if p == "/v2/stocks/bars"] == ["GET"] * 3
        latest = data_client(server).get_stock_latest_bar(
            StockLatestBarRequest(symbol_or_symbols="QQQ", feed=DataFeed.IEX)
        )
        assert latest["QQQ"].timestamp == on_iex[-1].time


def test_injected_faults(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, faults=Faults(error_429_rate=1.0)) as server:
        with pytest.raises(APIError) as limited:
            trading_client(server).get_account()
        assert limited.value.status_code == 429
        assert server.requests.count(("GET", "/v2/account")) == 4  # the SDK retried 3 times
    with running_emulator(sample, start_bar=START, faults=Faults(order_504_rate=1.0)) as server:
        client = trading_client(server)
        client._retry = 0  # ict-trader turns retries off for submissions
        with pytest.raises(APIError) as timeout:
            client.submit_order(market("maybe", OrderSide.BUY, 1))
        assert timeout.value.status_code == 504
        server.call(server.settle())
        existing = client.get_order_by_client_id("maybe")  # the unknown outcome, resolved
        assert isinstance(existing, Order) and existing.status is OrderStatus.FILLED


def _run_stream(stream: Any) -> threading.Thread:
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    return thread


def _wait_for_clients(server: EmulatorServer, key: str) -> None:
    for _ in range(200):
        if server.call(_state(server))[key]:
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"no {key}")


async def _state(server: EmulatorServer) -> dict[str, int]:
    return {
        "trade_stream_clients": len(server._trade_sockets),
        "data_stream_clients": len(server._data_sockets),
    }


def test_streams_deliver_bars_and_trade_updates(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=WHOLE) as server:
        bars: queue.Queue[Any] = queue.Queue()
        updates: queue.Queue[Any] = queue.Queue()
        data = StockDataStream(KEY, SECRET, url_override=f"ws://127.0.0.1:{server.port}/v2/iex")
        trades = TradingStream(KEY, SECRET, url_override=f"ws://127.0.0.1:{server.port}/stream")

        async def on_bar(bar: Any) -> None:
            bars.put(bar)

        async def on_update(update: Any) -> None:
            updates.put(update)

        data.subscribe_bars(on_bar, "QQQ")
        trades.subscribe_trade_updates(on_update)
        _run_stream(data)
        _run_stream(trades)
        _wait_for_clients(server, "data_stream_clients")
        _wait_for_clients(server, "trade_stream_clients")
        server.call(server.advance(3))
        received = [bars.get(timeout=10) for _ in range(3)]
        assert [b.timestamp for b in received] == [b.time for b in sample.bars[START : START + 3]]
        sent = server.feed.sent(START, "iex")  # IEX's bar of the minute (modelled prices)
        assert sent is not None and received[0].close == sent.close
        trading_client(server).submit_order(market("streamed", OrderSide.BUY, 2))
        events = [updates.get(timeout=10) for _ in range(3)]
        assert [e.event for e in events] == ["pending_new", "new", "fill"]
        fill = events[-1]
        assert (fill.qty, fill.position_qty, fill.order.client_order_id) == (2, 2, "streamed")
        assert fill.execution_id is not None
        assert fill.price == round(sample.bars[START + 3].open + 0.01, 2)  # at the ask
        data.stop()
        trades.stop()


def test_partial_fills_and_rejections_when_asked(sample: BarFile) -> None:
    """Old behaviour on request (fill_in_post): a partial fill, then the rest a bar later; a
    rejection answered in the POST itself."""
    options = EmulatorOptions(partial_fill_rate=1.0, seed=3, fill_in_post=True)
    with running_emulator(sample, start_bar=START, options=options) as server:
        order = trading_client(server).submit_order(market("split", OrderSide.BUY, 10))
        assert isinstance(order, Order) and order.status is OrderStatus.PARTIALLY_FILLED
        server.call(server.advance(9))
        activities = server.account.fill_activities()
        kinds = [a["type"] for a in activities]
        assert (kinds[0], kinds[-1]) == ("partial_fill", "fill")
        assert sum(int(a["qty"]) for a in activities) == 10
    with running_emulator(
        sample, start_bar=START, options=EmulatorOptions(reject_rate=1.0, fill_in_post=True)
    ) as server:
        order = trading_client(server).submit_order(market("nope", OrderSide.BUY, 1))
        assert isinstance(order, Order) and order.status is OrderStatus.REJECTED
        assert server.account.position == 0


def test_wrong_keys_are_refused(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        client = TradingClient("wrong", "keys", url_override=server.base_url)
        with pytest.raises(APIError) as refused:
            client.get_account()
        assert refused.value.status_code == 401


def test_event_loop_is_not_blocked_by_a_slow_client(sample: BarFile) -> None:
    """Latency injection delays answers without stalling the replay clock."""
    with running_emulator(sample, start_bar=START, faults=Faults(latency_ms=200)) as server:

        async def advance_while_slow() -> int:
            return len(await server.advance(5))

        assert server.call(advance_while_slow()) == 5
        assert asyncio.iscoroutinefunction(server.advance)


def test_the_emulate_alpaca_command_serves_the_sdk(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ict_trader",
            "emulate-alpaca",
            "--port",
            str(port),
            "--speed",
            "0",
            "--start-bar",
            "30",
            "--key",
            KEY,
            "--secret",
            SECRET,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert f"Alpaca emulator on http://127.0.0.1:{port}" in banner
        client = TradingClient(KEY, SECRET, url_override=f"http://127.0.0.1:{port}")
        clock = client.get_clock()
        assert isinstance(clock, Clock)
        assert clock.timestamp == datetime(2024, 7, 29, 14, 0, tzinfo=UTC)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)  # also closes the pipe
    assert process.returncode == 0


def test_the_emulate_alpaca_command_serves_several_symbols(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ict_trader", "emulate-alpaca", "--port", str(port)]
    for symbol, path in TWO_SYMBOLS.items():
        command += ["--data", f"{symbol}={path}"]
    process = subprocess.Popen(
        [*command, "--speed", "0", "--start-bar", "390", "--key", KEY, "--secret", SECRET],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert "replaying IWM (iwm_1min_2025-08-25_26.csv.gz), DIA (dia_" in banner
        data = StockHistoricalDataClient(KEY, SECRET, url_override=f"http://127.0.0.1:{port}")
        answer = data.get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols=["IWM", "DIA"],
                timeframe=TimeFrame.Minute,
                start=datetime(2025, 8, 25, 13, 30, tzinfo=UTC),
                end=datetime(2025, 8, 25, 19, 29, tzinfo=UTC),  # not the latest 15 minutes
                feed=DataFeed.SIP,
            )
        )
        assert isinstance(answer, BarSet)
        counts = {symbol: len(rows) for symbol, rows in answer.data.items()}
        # the first session to 15:29: IWM has every minute, DIA misses those nothing traded in
        assert counts["IWM"] == 360 and 355 <= counts["DIA"] < 360
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_the_emulate_alpaca_command_checks_its_options() -> None:
    result = CliRunner().invoke(app, ["emulate-alpaca", "--start-bar", "99999"])
    assert result.exit_code == 2
    assert "--start-bar 99999: the data has 3900 minutes" in result.output


def test_oco_exit_pair_holds_the_shares_once_and_cancels_as_a_group(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("entry", OrderSide.BUY, 10))
        server.call(server.settle())
        price = sample.bars[START].open
        oco = client.submit_order(
            LimitOrderRequest(
                symbol="QQQ",
                qty=10,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                client_order_id="exit-pair",
                order_class=OrderClass.OCO,
                take_profit=TakeProfitRequest(limit_price=round(price + 50, 2)),
                stop_loss=StopLossRequest(stop_price=round(price - 50, 2)),
            )
        )
        assert isinstance(oco, Order) and oco.legs is not None
        (leg,) = oco.legs
        assert (oco.type, leg.type, leg.qty) == (OrderType.LIMIT, OrderType.STOP, "10")
        position = client.get_open_position("QQQ")
        assert isinstance(position, Position)
        assert position.qty_available == "0"  # held once by the pair, not twice
        with pytest.raises(APIError, match="insufficient qty available"):
            client.submit_order(market("extra-exit", OrderSide.SELL, 1))
        client.cancel_order_by_id(oco.id)  # canceling one order of the group cancels both
        server.call(server.settle())
        stop_leg = client.get_order_by_id(leg.id)
        assert isinstance(stop_leg, Order) and stop_leg.status is OrderStatus.CANCELED
        with pytest.raises(APIError, match="exit orders"):
            client.submit_order(
                LimitOrderRequest(
                    symbol="QQQ",
                    qty=10,
                    side=OrderSide.BUY,  # would open, not close: OCO is for exits only
                    time_in_force=TimeInForce.DAY,
                    order_class=OrderClass.OCO,
                    take_profit=TakeProfitRequest(limit_price=round(price - 50, 2)),
                    stop_loss=StopLossRequest(stop_price=round(price + 50, 2)),
                )
            )


def test_bracket_legs_wait_for_the_entry_then_one_cancels_the_other(sample: BarFile) -> None:
    upcoming = sample.bars[START : START + 60]
    price = upcoming[0].open
    target = round(max(b.high for b in upcoming[1:]) - 0.02, 2)
    stop = round(price - 50, 2)
    with running_emulator(sample, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        with pytest.raises(APIError, match="beyond stop_loss"):
            client.submit_order(
                MarketOrderRequest(
                    symbol="QQQ",
                    qty=5,
                    side=OrderSide.BUY,
                    time_in_force=TimeInForce.DAY,
                    order_class=OrderClass.BRACKET,
                    take_profit=TakeProfitRequest(limit_price=stop),
                    stop_loss=StopLossRequest(stop_price=target),
                )
            )
        entry = client.submit_order(
            MarketOrderRequest(
                symbol="QQQ",
                qty=5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                client_order_id="bracket",
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=target),
                stop_loss=StopLossRequest(stop_price=stop),
            )
        )
        assert isinstance(entry, Order) and entry.status is OrderStatus.PENDING_NEW
        assert entry.legs is not None
        take_leg, stop_leg = entry.legs
        server.call(server.settle())
        take_now = client.get_order_by_id(take_leg.id)
        stop_now = client.get_order_by_id(stop_leg.id)
        assert isinstance(take_now, Order) and isinstance(stop_now, Order)
        assert (take_now.status, stop_now.status) == (OrderStatus.NEW, OrderStatus.HELD)
        hit = next(i for i, b in enumerate(upcoming) if bid_at_high(b) >= Decimal(str(target)))
        server.call(server.advance(hit + 1))
        take_now = client.get_order_by_id(take_leg.id)
        stop_now = client.get_order_by_id(stop_leg.id)
        assert isinstance(take_now, Order) and isinstance(stop_now, Order)
        assert (take_now.status, stop_now.status) == (OrderStatus.FILLED, OrderStatus.CANCELED)
        assert client.get_all_positions() == []
