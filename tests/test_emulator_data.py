"""The emulator's market data and clock behave as Alpaca's, seen through the unmodified alpaca-py:
extended-hours bars, the closed-market clock and queued orders, IEX gaps, updated bars, stream
errors, subscription replies, aggregated REST bars, and paged account activities."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp import ClientSession, WSMsgType
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.models import BarSet
from alpaca.data.requests import OptionChainRequest, StockBarsRequest, StockLatestBarRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Clock, Order, TradeAccount
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ict_trader.adapters.alpaca.emulator.feed import DataOptions, Timeframe, aggregate, minute_bar
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.cli.app import app
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK
from ict_trader.marketdata.barfile import BarDataError, BarFile, load_bars
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    data_client,
    every_minute,
    running_emulator,
    trading_client,
)
from tests.conftest import REPO

ETH_SAMPLE = REPO / "src" / "ict_trader" / "data" / "qqq_1min_sample_eth.csv.gz"
FIRST_REGULAR = 269  # index of 2024-07-29 09:30 New York in the extended-hours sample
FIRST_AFTER_HOURS = 659  # 2024-07-29 16:00 New York
NEXT_PRE_MARKET = 835  # 2024-07-30 04:00 New York
NEXT_OPEN = 1091  # 2024-07-30 09:30 New York
SESSION = 390  # bars of a full regular session


@pytest.fixture(scope="module")
def eth() -> BarFile:
    return load_bars(ETH_SAMPLE, extended_hours=True)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def ny(day: int, hour: int, minute: int, month: int = 7) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=NEW_YORK)


def market(cid: str, side: OrderSide, qty: int) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="QQQ", qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def clock(server: EmulatorServer) -> Clock:
    answer = trading_client(server).get_clock()
    assert isinstance(answer, Clock)
    return answer


def order(server: EmulatorServer, cid: str) -> Order:
    answer = trading_client(server).get_order_by_client_id(cid)
    assert isinstance(answer, Order)
    return answer


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll `condition` until it holds (the streams run in their own threads)."""
    deadline = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        deadline.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _counts(server: EmulatorServer) -> tuple[int, int]:
    return len(server._data_sockets), len(server._trade_sockets)


def subscribed(server: EmulatorServer, data: int = 1, trades: int = 0) -> Callable[[], bool]:
    return lambda: server.call(_counts(server)) >= (data, trades)


@pytest.fixture
def streams() -> Iterator[list[Any]]:
    """alpaca-py streams started by a test, each run in its own thread, stopped at the end."""
    started: list[Any] = []
    yield started
    for stream in started:
        stream.stop()


def run(stream: Any, started: list[Any]) -> threading.Thread:
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    started.append(stream)
    return thread


def data_stream(server: EmulatorServer, feed: DataFeed = DataFeed.IEX) -> StockDataStream:
    url = f"ws://127.0.0.1:{server.port}/v2/{feed.value}"
    return StockDataStream(KEY, SECRET, feed=feed, url_override=url)


def history(
    server: EmulatorServer,
    timeframe: TimeFrame,
    start: datetime,
    end: datetime,
    *,
    feed: DataFeed | None = DataFeed.IEX,
    limit: int | None = None,
) -> list[Any]:
    answer = data_client(server).get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols="QQQ",
            timeframe=timeframe,
            start=start,
            end=end,
            feed=feed,
            limit=limit,
        )
    )
    assert isinstance(answer, BarSet)
    return list(answer.data.get("QQQ", []))


# ---------------------------------------------------------------------- extended hours


def test_extended_hours_file_loads_only_when_asked(eth: BarFile, sample: BarFile) -> None:
    with pytest.raises(BarDataError, match=r"row 1 \(line 2\): .*04:00 New York.*regular hours"):
        load_bars(ETH_SAMPLE)
    assert len(eth.bars) == 8987
    regular = [b for b in eth.bars if eth.calendar.session_at(b.time) is not None]
    assert regular == sample.bars  # the regular-hours bars are the sample's, exactly
    assert eth.bars[0].time == ny(29, 4, 0) and eth.bars[-1].time == ny(9, 19, 58, month=8)


@pytest.mark.parametrize(
    ("stamp", "problem"),
    [
        (
            "2024-07-29T07:59:00Z",
            "row 2 (line 3): bar 2024-07-29T07:59:00Z (03:59 New York) is "
            "outside extended hours 04:00-20:00 of 2024-07-29",
        ),
        (
            "2024-07-30T00:00:00Z",
            "row 2 (line 3): bar 2024-07-30T00:00:00Z (20:00 New York) is "
            "outside extended hours 04:00-20:00 of 2024-07-29",
        ),
        (
            "2024-07-27T14:00:00Z",
            "row 2 (line 3): bar 2024-07-27T14:00:00Z is on 2024-07-27, not an NYSE trading day",
        ),
    ],
)
def test_extended_hours_file_refuses_bars_outside_them(
    tmp_path: Path, stamp: str, problem: str
) -> None:
    path = tmp_path / "bars.csv"
    rows = sorted(["2024-07-29T08:00:00Z", stamp])
    path.write_text(
        "timestamp,open,high,low,close,volume\n" + "".join(f"{t},1,1,1,1,1\n" for t in rows)
    )
    if rows[0] == stamp:  # the offending row sorts first
        problem = problem.replace("row 2 (line 3)", "row 1 (line 2)")
    with pytest.raises(BarDataError) as caught:
        load_bars(path, extended_hours=True)
    assert str(caught.value) == f"{path}: {problem}"


def test_pre_market_bars_stream_and_orders_wait_for_the_open(
    eth: BarFile, streams: list[Any]
) -> None:
    with running_emulator(eth, data=every_minute()) as server:
        before = clock(server)
        assert not before.is_open
        assert before.timestamp == ny(29, 4, 0)
        assert (before.next_open, before.next_close) == (ny(29, 9, 30), ny(29, 16, 0))

        bars: queue.Queue[Any] = queue.Queue()
        updates: queue.Queue[Any] = queue.Queue()
        data = data_stream(server)
        trades = TradingStream(KEY, SECRET, url_override=f"ws://127.0.0.1:{server.port}/stream")

        async def on_bar(bar: Any) -> None:
            bars.put(bar)

        async def on_update(update: Any) -> None:
            updates.put(update)

        data.subscribe_bars(on_bar, "QQQ")
        trades.subscribe_trade_updates(on_update)
        run(data, streams)
        run(trades, streams)
        wait_until(subscribed(server, 1, 1), "both streams")

        server.call(server.advance(3))
        received = [bars.get(timeout=10) for _ in range(3)]
        assert [b.timestamp for b in received] == [b.time for b in eth.bars[:3]]
        assert [(b.open, b.close, b.volume) for b in received] == [
            (b.open, b.close, b.volume) for b in eth.bars[:3]
        ]

        submitted = trading_client(server).submit_order(market("pre", OrderSide.BUY, 5))
        assert isinstance(submitted, Order) and submitted.status is OrderStatus.ACCEPTED
        assert updates.get(timeout=10).event == "accepted"

        server.call(server.advance(FIRST_REGULAR - 4))  # the 09:29 bar in progress: closed
        assert order(server, "pre").status is OrderStatus.ACCEPTED
        assert not clock(server).is_open
        assert updates.empty()
        server.call(server.advance(1))  # 09:29 completes, 09:30 opens: routed, filled
        events = [updates.get(timeout=10) for _ in range(3)]
        assert [e.event for e in events] == ["pending_new", "new", "fill"]
        # a market buy fills at the open's ask: the price + half the default 2-cent spread
        assert events[-1].price == round(eth.bars[FIRST_REGULAR].open + 0.01, 2)
        assert events[-1].timestamp == ny(29, 9, 30)
        now = clock(server)
        assert now.is_open and now.timestamp == ny(29, 9, 30)
        wait_until(lambda: bars.qsize() == FIRST_REGULAR - 3, "every pre-market bar streamed")


def test_after_hours_clock_day_expiry_and_no_fills_outside_regular_hours(eth: BarFile) -> None:
    with running_emulator(eth, start_bar=FIRST_AFTER_HOURS - 1) as server:  # 15:59 in progress
        client = trading_client(server)
        post = [b for b in eth.bars[FIRST_AFTER_HOURS:NEXT_PRE_MARKET]]
        reach = max(b.high for b in post)
        assert reach > eth.bars[FIRST_AFTER_HOURS - 1].high  # only an after-hours bar gets there
        for cid, tif in (("day-limit", TimeInForce.DAY), ("gtc-limit", TimeInForce.GTC)):
            client.submit_order(
                LimitOrderRequest(
                    symbol="QQQ",
                    qty=1,
                    side=OrderSide.SELL,
                    time_in_force=tif,
                    limit_price=reach,
                    client_order_id=cid,
                )
            )
        server.call(server.advance(1))  # 15:59 completes: the session is over
        after = clock(server)
        assert not after.is_open and after.timestamp == ny(29, 16, 0)
        assert (after.next_open, after.next_close) == (ny(30, 9, 30), ny(30, 16, 0))
        expired = order(server, "day-limit")
        assert expired.status is OrderStatus.EXPIRED and expired.expired_at == ny(29, 16, 0)
        server.call(server.advance(len(post)))  # through 19:59, to 04:00 next morning
        assert clock(server).timestamp == ny(30, 4, 0) and not clock(server).is_open
        resting = order(server, "gtc-limit")  # done for the day until the next open
        assert resting.status is OrderStatus.DONE_FOR_DAY and resting.filled_qty == "0"
        server.call(server.advance(NEXT_OPEN - NEXT_PRE_MARKET))  # 09:30 opens above the limit
        assert clock(server).is_open and clock(server).timestamp == ny(30, 9, 30)
        filled = order(server, "gtc-limit")  # working again, and filled at the open's bid
        assert filled.status is OrderStatus.FILLED and filled.filled_at == ny(30, 9, 30)
        assert filled.filled_avg_price == str(round(eth.bars[NEXT_OPEN].open - 0.01, 2))


def test_the_clock_is_closed_between_sessions_by_default(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=SESSION - 1) as server:
        server.call(server.advance(1))  # the 15:59 bar of 2024-07-29 completes
        between = clock(server)
        assert not between.is_open and between.timestamp == ny(29, 16, 0)
        assert (between.next_open, between.next_close) == (ny(30, 9, 30), ny(30, 16, 0))
        queued = trading_client(server).submit_order(market("overnight", OrderSide.BUY, 3))
        assert isinstance(queued, Order) and queued.status is OrderStatus.ACCEPTED
        server.call(server.advance(1))  # the next session opens, its first bar completes
        filled = order(server, "overnight")
        assert filled.status is OrderStatus.FILLED
        # at the open's ask: the price + half the default 2-cent spread
        assert filled.filled_avg_price == str(round(sample.bars[SESSION].open + 0.01, 2))
        assert filled.filled_at == ny(30, 9, 30)
        assert clock(server).timestamp == ny(30, 9, 31)


def test_the_old_behaviour_opens_the_next_session_at_once(sample: BarFile) -> None:
    options = EmulatorOptions(closed_between_sessions=False)
    with running_emulator(sample, start_bar=SESSION - 1, options=options) as server:
        server.call(server.advance(1))
        now = clock(server)
        assert now.is_open and now.timestamp == ny(30, 9, 30)


# ---------------------------------------------------------------------- IEX gaps, revisions


def test_missing_minutes_and_updated_bars(sample: BarFile, streams: list[Any]) -> None:
    # the paid plan, so recent SIP history can be compared with the IEX stream
    data_options = DataOptions(plan="sip", missing_minute_rate=0.2, updated_bar_rate=0.3, seed=5)
    minutes = 40
    with running_emulator(sample, start_bar=100, data=data_options) as server:
        messages: list[tuple[str, Any]] = []  # in arrival order: alpaca-py calls one at a time
        stream = data_stream(server)

        async def on_bar(bar: Any) -> None:
            messages.append(("b", bar))

        async def on_updated(bar: Any) -> None:
            messages.append(("u", bar))

        stream.subscribe_bars(on_bar, "QQQ")
        stream.subscribe_updated_bars(on_updated, "QQQ")
        run(stream, streams)
        wait_until(subscribed(server), "the data stream")
        server.call(server.advance(minutes))
        first, last = sample.bars[100].time, sample.bars[100 + minutes - 1].time
        iex = history(server, TimeFrame.Minute, first, last)
        sip = history(server, TimeFrame.Minute, first, last, feed=DataFeed.SIP)
        wait_until(lambda: sum(k == "b" for k, _ in messages) >= len(iex), "the streamed bars")

    file_minutes = [b.time for b in sample.bars[100 : 100 + minutes]]
    streamed = [bar for kind, bar in messages if kind == "b"]
    assert [b.timestamp for b in sip] == file_minutes  # SIP has every minute
    assert [b.timestamp for b in streamed] == [b.timestamp for b in iex]  # stream = IEX history
    assert 0 < len(streamed) < minutes  # some minutes had no IEX trade
    revisions = [(i, bar) for i, (kind, bar) in enumerate(messages) if kind == "u"]
    assert revisions, "no updated bar with this seed"
    by_time = {b.timestamp: b for b in iex}
    for position, revised in revisions:
        kind, original = messages[position - 1]
        assert kind == "b" and original.timestamp == revised.timestamp  # revises the bar just sent
        assert (revised.open, revised.close) == (original.open, original.close)
        assert revised.volume > original.volume and revised.trade_count > original.trade_count
        assert revised.low <= original.low and revised.high >= original.high
        assert revised.low <= revised.vwap <= revised.high
        assert by_time[revised.timestamp].volume == revised.volume  # history holds the revision


def test_by_default_iex_bars_are_thin_inside_sips_range_a_few_missing_and_revised(
    sample: BarFile,
) -> None:
    paid = DataOptions(plan="sip")  # both feeds, to compare them; the rates are the defaults
    with running_emulator(sample, start_bar=390, data=paid) as server:
        first, last = sample.bars[0].time, sample.bars[389].time
        got = history(server, TimeFrame.Minute, first, last)
        sip = history(server, TimeFrame.Minute, first, last, feed=DataFeed.SIP)
    file_bars = {b.time: b for b in sample.bars[:390]}
    missing = set(file_bars) - {b.timestamp for b in got}
    assert 0 < len(missing) < 12  # about 1 % of a session's minutes have no IEX bar
    assert [b.timestamp for b in sip] == list(file_bars)  # SIP has every minute
    assert [b.timestamp for b in got] == sorted(set(file_bars) - missing)
    revised = [b for b in sip if b.volume != file_bars[b.timestamp].volume]
    assert 0 < len(revised) < 60  # about 5 %
    for bar in revised:
        original = file_bars[bar.timestamp]
        assert (bar.open, bar.close) == (original.open, original.close)
        assert bar.volume > original.volume
    # IEX saw a few percent of each minute's trades: thinner bars inside the consolidated range
    by_time = {b.timestamp: b for b in sip}
    for bar in got:
        full = by_time[bar.timestamp]
        assert full.low <= bar.low <= min(bar.open, bar.close)
        assert max(bar.open, bar.close) <= bar.high <= full.high
        assert bar.low <= bar.vwap <= bar.high
        assert bar.volume < full.volume and bar.trade_count < full.trade_count
    share = sum(b.volume for b in got) / sum(by_time[b.timestamp].volume for b in got)
    assert 0.015 < share < 0.035  # the default iex_volume_share, 2.5 %
    narrower = [
        b for b in got if (b.high, b.low) != (by_time[b.timestamp].high, by_time[b.timestamp].low)
    ]
    assert len(narrower) > len(got) / 2  # most minutes' extremes never printed on IEX
    closes = [b for b in got if b.close != by_time[b.timestamp].close]
    assert len(closes) > len(got) / 2


def test_iex_bars_equal_sips_with_the_whole_volume_share(sample: BarFile) -> None:
    """`iex_volume_share=1`: IEX prints every trade, its bars are the consolidated ones (the
    emulator's behaviour before IEX prices were modelled; tests/alpaca_emulator.every_minute)."""
    whole = DataOptions(plan="sip", iex_volume_share=1.0, missing_minute_rate=0.0)
    with running_emulator(sample, start_bar=100, data=whole) as server:
        first, last = sample.bars[0].time, sample.bars[99].time
        got = history(server, TimeFrame.Minute, first, last)
        sip = history(server, TimeFrame.Minute, first, last, feed=DataFeed.SIP)
    assert got == sip and len(got) == 100


# ---------------------------------------------------------------------- stream protocol


def test_sip_on_the_free_plan_stops_alpaca_py_for_good(
    sample: BarFile, streams: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with running_emulator(sample, start_bar=10) as server:
        stream = data_stream(server, DataFeed.SIP)

        async def on_bar(bar: Any) -> None:
            raise AssertionError("no bar on a refused feed")

        stream.subscribe_bars(on_bar, "QQQ")
        thread = run(stream, streams)
        thread.join(20)
        assert not thread.is_alive()  # alpaca-py gives up on 409, it does not retry
        assert "insufficient subscription" in caplog.text
        assert server.call(_counts(server)) == (0, 0)


def test_sip_streams_on_the_paid_plan(sample: BarFile, streams: list[Any]) -> None:
    with running_emulator(sample, start_bar=10, data=DataOptions(plan="sip")) as server:
        bars: queue.Queue[Any] = queue.Queue()
        stream = data_stream(server, DataFeed.SIP)

        async def on_bar(bar: Any) -> None:
            bars.put(bar)

        stream.subscribe_bars(on_bar, "QQQ")
        run(stream, streams)
        wait_until(subscribed(server), "the SIP stream")
        server.call(server.advance(1))
        assert bars.get(timeout=10).timestamp == sample.bars[10].time


def test_a_second_data_connection_is_refused_until_the_first_ends(
    sample: BarFile, streams: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alpaca")
    with running_emulator(sample, start_bar=10) as server:
        first_bars: queue.Queue[Any] = queue.Queue()
        second_bars: queue.Queue[Any] = queue.Queue()
        first, second = data_stream(server), data_stream(server)

        async def on_first(bar: Any) -> None:
            first_bars.put(bar)

        async def on_second(bar: Any) -> None:
            second_bars.put(bar)

        first.subscribe_bars(on_first, "QQQ")
        second.subscribe_bars(on_second, "QQQ")
        run(first, streams)
        wait_until(subscribed(server), "the first stream")
        run(second, streams)
        wait_until(lambda: "connection limit exceeded" in caplog.text, "the 406")
        server.call(server.advance(1))
        assert first_bars.get(timeout=10).timestamp == sample.bars[10].time
        assert second_bars.empty()
        first.stop()
        wait_until(
            lambda: caplog.text.count("subscribed to bars") == 2,
            "the second stream, after its backoff",
            timeout=40,
        )
        server.call(server.advance(1))
        assert second_bars.get(timeout=10).timestamp == sample.bars[11].time


async def _raw_session(port: int, path: str, sends: list[dict[str, Any] | bytes]) -> list[Any]:
    """Speak the msgpack protocol by hand: what alpaca-py never sends, but Alpaca answers."""
    answers = []
    async with ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}{path}") as ws:
        answers.append(msgpack.unpackb((await ws.receive()).data))
        for message in sends:
            await ws.send_bytes(message if isinstance(message, bytes) else msgpack.packb(message))
            reply = await ws.receive(timeout=10)
            if reply.type != WSMsgType.BINARY:
                answers.append(None)
                break
            answers.append(msgpack.unpackb(reply.data))
    return answers


def test_protocol_errors_and_subscription_replies(sample: BarFile) -> None:
    auth = {"action": "auth", "key": KEY, "secret": SECRET}
    with running_emulator(sample, start_bar=10) as server:
        answers = asyncio.run(
            _raw_session(
                server.port,
                "/v2/iex",
                [
                    {"action": "subscribe", "bars": ["QQQ"]},
                    auth,
                    auth,
                    b"\xc1",  # not msgpack
                    {"action": "subscribe", "trades": ["QQQ"], "bars": ["qqq"]},
                    {"action": "subscribe", "updatedBars": ["*"], "dailyBars": ["QQQ"]},
                    {"action": "unsubscribe", "bars": ["QQQ"]},
                ],
            )
        )
        bad_key = asyncio.run(
            _raw_session(server.port, "/v2/iex", [{**auth, "secret": "wrong"}, auth])
        )
    assert answers[0] == [{"T": "success", "msg": "connected"}]
    assert answers[1] == [{"T": "error", "code": 401, "msg": "not authenticated"}]
    assert answers[2] == [{"T": "success", "msg": "authenticated"}]
    assert answers[3] == [{"T": "error", "code": 403, "msg": "already authenticated"}]
    assert answers[4] == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
    channels = "trades quotes bars updatedBars dailyBars statuses lulds corrections cancelErrors"
    empty: dict[str, list[str]] = {name: [] for name in channels.split()}
    trades = {"trades": ["QQQ"], "corrections": ["QQQ"], "cancelErrors": ["QQQ"]}
    assert answers[5] == [{"T": "subscription", **empty, **trades, "bars": ["QQQ"]}]
    assert answers[6] == [
        {
            "T": "subscription",
            **empty,
            **trades,
            "bars": ["QQQ"],
            "updatedBars": ["*"],
            "dailyBars": ["QQQ"],
        }
    ]
    assert answers[7] == [
        {"T": "subscription", **empty, **trades, "updatedBars": ["*"], "dailyBars": ["QQQ"]}
    ]
    assert bad_key[1:] == [[{"T": "error", "code": 402, "msg": "auth failed"}], None]


# ---------------------------------------------------------------------- bars REST


def test_rest_bars_honour_the_timeframe(sample: BarFile) -> None:
    day = sample.bars[:SESSION]  # 2024-07-29, all completed
    # the file's sums: every minute, unrevised, IEX bars equal to SIP's
    unrevised = DataOptions(updated_bar_rate=0.0, missing_minute_rate=0.0, iex_volume_share=1.0)
    with running_emulator(
        sample, start_bar=SESSION + 30, max_page_size=10, data=unrevised
    ) as server:
        start, end = ny(29, 0, 0), ny(29, 23, 59)
        five = history(server, TimeFrame(5, TimeFrameUnit.Minute), start, end)
        pages = sum(1 for _, path in server.requests if path == "/v2/stocks/bars")
        quarter = history(server, TimeFrame(15, TimeFrameUnit.Minute), start, end)
        hours = history(server, TimeFrame.Hour, start, end)
        daily = history(server, TimeFrame.Day, start, end)
        minutes = history(server, TimeFrame.Minute, start, end)
    assert pages == 8  # 78 bars, 10 a page: alpaca-py followed next_page_token
    assert len(five) == 78 and len(quarter) == 26 and len(hours) == 7 and len(daily) == 1
    assert five[0].timestamp == ny(29, 9, 30) and five[-1].timestamp == ny(29, 15, 55)
    assert hours[0].timestamp == ny(29, 9, 0)  # the 09:30-09:59 bars, stamped at the hour
    assert daily[0].timestamp == datetime(2024, 7, 29, 4, 0, tzinfo=UTC)  # New York midnight
    for got, span in ((five[3], day[15:20]), (hours[0], day[:30]), (daily[0], day)):
        assert got.open == span[0].open and got.close == span[-1].close
        assert got.high == max(b.high for b in span) and got.low == min(b.low for b in span)
        assert got.volume == sum(b.volume for b in span)
        assert got.trade_count == sum(m.trade_count for m in minutes if _within(m, span))
        assert got.low <= got.vwap <= got.high
    assert all(m.trade_count >= 1 and m.low <= m.vwap <= m.high for m in minutes)


def test_rest_bars_sort_descending_page_by_page(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=SESSION, max_page_size=7) as server:
        start, end = ny(29, 0, 0), ny(29, 23, 59)
        ascending = history(server, TimeFrame(5, TimeFrameUnit.Minute), start, end)
        answer = data_client(server).get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols="QQQ",
                timeframe=TimeFrame(5, TimeFrameUnit.Minute),
                start=start,
                end=end,
                feed=DataFeed.IEX,
                sort=Sort.DESC,
            )
        )
    assert isinstance(answer, BarSet)
    descending = list(answer.data["QQQ"])
    assert len(ascending) == 78 and descending == ascending[::-1]


def _within(bar: Any, span: list[Bar]) -> bool:
    return bool(span[0].time <= bar.timestamp <= span[-1].time)


def test_rest_bars_refuse_bad_input_and_recent_sip_on_the_free_plan(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=SESSION - 5) as server:  # 15:55 in progress
        with pytest.raises(APIError) as weekly:
            history(server, TimeFrame(1, TimeFrameUnit.Week), ny(29, 0, 0), ny(29, 23, 0))
        with pytest.raises(APIError) as recent:  # ends less than 15 minutes ago
            history(server, TimeFrame.Minute, ny(29, 15, 0), ny(29, 15, 41), feed=DataFeed.SIP)
        older = history(server, TimeFrame.Minute, ny(29, 15, 0), ny(29, 15, 30), feed=DataFeed.SIP)
        latest = data_client(server).get_stock_latest_bar(
            StockLatestBarRequest(symbol_or_symbols="QQQ", feed=DataFeed.IEX)
        )
    assert weekly.value.status_code == 400 and "invalid timeframe '1Week'" in str(weekly.value)
    assert recent.value.status_code == 403
    assert "subscription does not permit querying recent SIP data" in str(recent.value)
    assert len(older) == 31
    assert isinstance(latest, dict) and latest["QQQ"].timestamp == sample.bars[SESSION - 6].time


@settings(max_examples=40, deadline=None)
@given(
    amount=st.sampled_from([1, 2, 5, 7, 15, 30, 59]),
    unit=st.sampled_from(["Min", "Hour"]),
    first=st.integers(0, SESSION * 2),
    count=st.integers(1, 400),
)
def test_aggregation_conserves_the_minutes(
    sample: BarFile, amount: int, unit: str, first: int, count: int
) -> None:
    minutes = [minute_bar(b) for b in sample.bars[first : first + count]]
    amount = min(amount, 23) if unit == "Hour" else amount
    timeframe = Timeframe(amount, unit)
    bars = aggregate(minutes, timeframe, sample.calendar)
    assert sum(b.volume for b in bars) == sum(m.volume for m in minutes)
    assert sum(b.trades for b in bars) == sum(m.trades for m in minutes)
    assert [b.time for b in bars] == sorted({timeframe.start(m.time) for m in minutes})
    for bar in bars:
        members = [m for m in minutes if timeframe.start(m.time) == bar.time]
        assert bar.time <= members[0].time
        assert members[-1].time - bar.time < timedelta(
            minutes=amount * (60 if unit == "Hour" else 1)
        )
        assert (bar.open, bar.close) == (members[0].open, members[-1].close)
        assert bar.low <= bar.vwap <= bar.high


# ---------------------------------------------------------------------- account activities


ACTIVITY_FIELDS = {  # TradingActivities in trading-api.json
    "activity_type",
    "cum_qty",
    "id",
    "leaves_qty",
    "order_id",
    "order_status",
    "price",
    "qty",
    "side",
    "symbol",
    "transaction_time",
    "type",
}


def test_account_activities_newest_first_paged_and_filtered(sample: BarFile) -> None:
    options = EmulatorOptions(partial_fill_rate=1.0, seed=3)  # every fill of 2+ shares partial
    with running_emulator(sample, start_bar=100, options=options) as server:
        client = trading_client(server)
        entry = client.submit_order(market("entry", OrderSide.BUY, 10))
        for cid in ("entry", "exit-1", "exit-2"):
            if cid != "entry":
                client.submit_order(market(cid, OrderSide.SELL, 4 if cid == "exit-1" else 6))
            server.call(server.settle())
            while order(server, cid).status is not OrderStatus.FILLED:
                server.call(server.advance(1))  # the rest of a partial fill, at the next bar
        executions = len(server.account.fill_activities())
        everything = client.get("/account/activities")
        assert isinstance(everything, list)
        pages, token = [], None
        while True:
            params: dict[str, Any] = {"page_size": 2}
            if token:
                params["page_token"] = token
            page = client.get("/account/activities", params)
            assert isinstance(page, list)
            if not page:
                break
            pages.append(page)
            token = page[-1]["id"]
        oldest_first = client.get("/account/activities", {"direction": "asc"})
        fills = client.get("/account/activities", {"activity_types": "FILL"})
        by_path = client.get("/account/activities/FILL")
        dividends = client.get("/account/activities", {"activity_types": "DIV,CSD"})
        assert isinstance(entry, Order)
        of_entry = client.get("/account/activities", {"order_id": str(entry.id)})
        with pytest.raises(APIError) as bad_type:
            client.get("/account/activities", {"activity_types": "FILLS"})
        with pytest.raises(APIError) as bad_size:
            client.get("/account/activities", {"page_size": "0"})

    assert len(everything) == executions >= 6  # 10, then 4 and 6, each in two parts or more
    assert all(set(a) == ACTIVITY_FIELDS for a in everything)
    times = [
        datetime.fromisoformat(a["transaction_time"].replace("Z", "+00:00")) for a in everything
    ]
    assert times == sorted(times, reverse=True)  # newest first
    for activity, moment in zip(everything, times, strict=True):
        assert re.fullmatch(r"\d{17}::[0-9a-f-]{36}", activity["id"])
        local = moment.astimezone(NEW_YORK)
        assert activity["id"][:17] == local.strftime("%Y%m%d%H%M%S") + "000"
    assert [len(p) for p in pages] == [2] * (executions // 2) + [1] * (executions % 2)
    assert [a for page in pages for a in page] == everything
    assert oldest_first == everything[::-1]
    assert fills == by_path == everything
    assert dividends == []
    assert isinstance(of_entry, list)
    assert len(of_entry) >= 2
    assert of_entry == everything[-len(of_entry) :]  # the entry's fills, oldest, newest first
    assert sum(int(a["qty"]) for a in of_entry) == 10
    assert {a["order_id"] for a in of_entry} == {str(entry.id)}
    assert bad_type.value.status_code == 422 and "activity_types 'FILLS'" in str(bad_type.value)
    assert bad_size.value.status_code == 422 and "page_size '0'" in str(bad_size.value)


def test_activity_dates_filter_by_new_york_day(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=SESSION - 2) as server:
        client = trading_client(server)
        client.submit_order(market("monday", OrderSide.BUY, 1))
        server.call(server.advance(3))  # into 2024-07-30
        client.submit_order(market("tuesday", OrderSide.SELL, 1))
        server.call(server.settle())  # the fill settles asynchronously, as on Alpaca
        monday = client.get("/account/activities", {"date": date(2024, 7, 29).isoformat()})
        after = client.get("/account/activities", {"after": "2024-07-30T13:00:00Z"})
        until = client.get("/account/activities", {"until": "2024-07-30T13:00:00Z"})
    assert isinstance(monday, list) and isinstance(after, list) and isinstance(until, list)
    assert [a["side"] for a in monday] == ["buy"]
    assert [a["side"] for a in after] == ["sell"]
    assert until == monday


# ---------------------------------------------------------------------- the command


def test_emulate_alpaca_refuses_extended_hours_files_and_unknown_plans_in_one_line() -> None:
    without = CliRunner().invoke(app, ["emulate-alpaca", "--data", str(ETH_SAMPLE)])
    plan = CliRunner().invoke(app, ["emulate-alpaca", "--plan", "gold"])
    assert without.exit_code == 2 and plan.exit_code == 2
    assert without.output.strip().splitlines() == [
        f"error: {ETH_SAMPLE}: row 1 (line 2): bar 2024-07-29T08:00:00Z (04:00 New York) is "
        "outside regular hours 09:30-16:00 of 2024-07-29"
    ]
    assert plan.output.strip() == "error: --plan 'gold': use free or sip"


def test_emulate_alpaca_serves_extended_hours_with_a_closed_clock() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ict_trader", "emulate-alpaca", "--port", str(port)]
    options = ["--speed", "0", "--data", str(ETH_SAMPLE), "--extended-hours", "--plan", "sip"]
    process = subprocess.Popen(
        [*command, *options, "--key", KEY, "--secret", SECRET],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stderr is not None
        assert f"Alpaca emulator on http://127.0.0.1:{port}" in process.stderr.readline()
        client = TradingClient(KEY, SECRET, url_override=f"http://127.0.0.1:{port}")
        now = client.get_clock()
        assert isinstance(now, Clock)
        assert not now.is_open and now.timestamp == ny(29, 4, 0)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_emulate_alpaca_models_options_at_the_volatility_spread_and_level_given() -> None:
    """The command's option flags reach the quotes alpaca-py reads and the account's level
    (what a set volatility does to the quotes is test_emulator_options.py's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ict_trader", "emulate-alpaca", "--port", str(port)]
    flags = ["--speed", "0", "--start-bar", "100", "--key", KEY, "--secret", SECRET]
    flags += ["--option-volatility", "0.5", "--option-spread", "0.30", "--options-level", "1"]
    process = subprocess.Popen(
        [*command, *flags], stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    try:
        assert process.stderr is not None
        assert f"Alpaca emulator on http://127.0.0.1:{port}" in process.stderr.readline()
        url = f"http://127.0.0.1:{port}"
        account = TradingClient(KEY, SECRET, url_override=url).get_account()
        assert isinstance(account, TradeAccount)
        assert account.options_trading_level == 1
        data = OptionHistoricalDataClient(KEY, SECRET, url_override=url)
        chain = data.get_option_chain(OptionChainRequest(underlying_symbol="QQQ"))
        assert isinstance(chain, dict) and chain
        quotes = [snapshot.latest_quote for snapshot in chain.values()]
        bid_for = [q for q in quotes if q is not None and q.bid_price > 0]
        assert bid_for  # far out of the money the bid is 0 and the spread narrower
        for quote in bid_for:
            assert quote.ask_price - quote.bid_price >= 0.30 - 1e-9  # at least the spread given
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0
