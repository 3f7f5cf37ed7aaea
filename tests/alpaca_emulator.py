"""Fixtures for tests against the loopback Alpaca emulator with the real alpaca-py clients."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
from alpaca.data.historical import OptionHistoricalDataClient, StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, PositionIntent, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from alpaca.trading.stream import TradingStream

from ict_trader.adapters.alpaca.emulator.assets import Bars
from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.options import OptionSettings
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions, EmuOrder, PaperAccount
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.core.calendar import NyseCalendar
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests import alpaca_spec
from tests.conftest import REPO

KEY = "test-key"
SECRET = "test-secret"
AUTH = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
# Two real ETFs over the same two sessions (2025-08-25 and 08-26), DIA with four minutes in which
# nothing traded, so it has no bar (tests/data/PROVENANCE.md)
TWO_SYMBOLS = {
    "IWM": REPO / "tests" / "data" / "iwm_1min_2025-08-25_26.csv.gz",
    "DIA": REPO / "tests" / "data" / "dia_1min_2025-08-25_26.csv.gz",
}


def load_symbols(paths: Mapping[str, Path]) -> dict[str, BarFile]:
    """Each symbol's bar file, by symbol."""
    return {symbol: load_bars(path) for symbol, path in paths.items()}


def served(bar_files: BarFile | Mapping[str, BarFile]) -> tuple[Bars, NyseCalendar]:
    """What a PaperAccount replays: one file's bars (served as QQQ, the default symbol), or
    several symbols' bars by symbol on a calendar covering them all."""
    if isinstance(bar_files, BarFile):
        return bar_files.bars, bar_files.calendar
    first = min(f.bars[0].time for f in bar_files.values())
    last = max(f.bars[-1].time for f in bar_files.values())
    return {s: f.bars for s, f in bar_files.items()}, NyseCalendar.covering(first, last)


def backtest_like(**changes: Any) -> EmulatorOptions:
    """Alpaca's realistic behaviour, except the two paper-fill rules the backtest's fill model
    lacks: fills at traded prices (no bid/ask spread) and in one execution (no random 10 %
    partial fills). Tests that compare live trades with the backtest's to the cent use it: with
    those rules the trades differ, and that is no bug of the bot."""
    return EmulatorOptions(spread=Decimal(0), partial_fill_rate=0.0, **changes)


def every_minute(**changes: Any) -> DataOptions:
    """Alpaca's data side with IEX bars equal to the consolidated ones: a bar for every minute,
    with the file's prices and volume. Alpaca's IEX stream has minutes without a bar (no IEX
    trade) and bars built from a few percent of the trades; the backtest has every minute of the
    file, so a test comparing live trades with the backtest's needs the same bars — with IEX's
    the detector sees other bars, and that is no bug of the bot."""
    return DataOptions(**{"missing_minute_rate": 0.0, "iex_volume_share": 1.0, **changes})


@contextmanager
def running_emulator(
    bar_file: BarFile | Mapping[str, BarFile],
    *,
    options: EmulatorOptions | None = None,
    faults: Faults | None = None,
    start_bar: int = 0,
    max_page_size: int = 10_000,
    data: DataOptions | None = None,
) -> Iterator[EmulatorServer]:
    """An emulator on 127.0.0.1 replaying one bar file (served as QQQ) or several symbols' files
    (by symbol), `start_bar` minutes of its clock already completed."""
    bars, calendar = served(bar_file)
    account = PaperAccount(bars, calendar, options=options)
    for _ in range(start_bar):
        account.complete_bar()
    server = EmulatorServer(
        account, key=KEY, secret=SECRET, faults=faults, max_page_size=max_page_size, data=data
    )
    server.run_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()


def trading_client(server: EmulatorServer) -> TradingClient:
    client = TradingClient(KEY, SECRET, paper=True, url_override=server.base_url)
    client._retry_wait = 0  # the SDK would sleep 3 s between retries of 429/504
    return client


def data_client(server: EmulatorServer) -> StockHistoricalDataClient:
    client = StockHistoricalDataClient(KEY, SECRET, url_override=server.base_url)
    client._retry_wait = 0
    return client


def option_data_client(server: EmulatorServer) -> OptionHistoricalDataClient:
    client = OptionHistoricalDataClient(KEY, SECRET, url_override=server.base_url)
    client._retry_wait = 0
    return client


def checked_get(server: EmulatorServer, path: str, **params: str) -> requests.Response:
    """A raw GET with the emulator's keys, its answer checked against Alpaca's spec of the
    route (tests/alpaca_spec.py): status, schema and keys."""
    answer = requests.get(server.base_url + path, params=params, headers=AUTH, timeout=10)
    url = urlparse(answer.url)
    exchange = alpaca_spec.Exchange(
        method="GET",
        path=url.path,
        query=url.query,
        status=answer.status_code,
        content_type=answer.headers.get("Content-Type", ""),
        body=answer.content,
    )
    problems = alpaca_spec.problems(exchange)
    assert problems == [], "\n".join(problems)
    return answer


def every_order(account: PaperAccount) -> dict[str, EmuOrder]:
    """The broker's orders by id, OCO stop legs included."""
    out: dict[str, EmuOrder] = {}
    for order in account.orders.values():
        out[order.id] = order
        out.update({leg.id: leg for leg in order.legs})
    return out


@contextmanager
def trade_updates(server: EmulatorServer) -> Iterator[queue.Queue[Any]]:
    """alpaca-py's TradingStream connected to the emulator; yields the updates it receives."""
    updates: queue.Queue[Any] = queue.Queue()
    stream = TradingStream(KEY, SECRET, url_override=f"ws://127.0.0.1:{server.port}/stream")

    async def on_update(update: Any) -> None:
        updates.put(update)

    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    for _ in range(400):
        if server.call(_trade_clients(server)):
            break
        threading.Event().wait(0.025)
    else:
        raise AssertionError("the trade stream did not connect")
    try:
        yield updates
    finally:
        stream.stop()
        thread.join(10)


async def _trade_clients(server: EmulatorServer) -> int:
    return len(server._trade_sockets)


def take(updates: queue.Queue[Any], count: int) -> list[Any]:
    return [updates.get(timeout=10) for _ in range(count)]


def take_until(updates: queue.Queue[Any], done: Callable[[Any], bool]) -> list[Any]:
    got = []
    while True:
        update = updates.get(timeout=10)
        got.append(update)
        if done(update):
            return got


def advance(server: EmulatorServer, minutes: int) -> None:
    """Move the emulator's market on by `minutes` bars."""
    server.call(server.advance(minutes))


def settle(server: EmulatorServer) -> None:
    """Let the emulator finish what it owes (fills, trade updates) before asserting."""
    server.call(server.settle())


def dec(value: object) -> Decimal:
    return Decimal(str(value))


def whole_options(**settings: Any) -> EmulatorOptions:
    """Realistic defaults without random partial fills (the option tests count contracts)."""
    return EmulatorOptions(partial_fill_rate=0.0, option_settings=OptionSettings(**settings))


def buy_to_open(symbol: str, qty: float = 1, **fields: Any) -> MarketOrderRequest:
    """A day market order buying `qty` of an option contract to open."""
    return MarketOrderRequest(
        symbol=symbol,
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=fields.pop("time_in_force", TimeInForce.DAY),
        position_intent=fields.pop("position_intent", PositionIntent.BUY_TO_OPEN),
        **fields,
    )
