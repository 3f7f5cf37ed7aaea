"""Fixtures for tests against the loopback Alpaca emulator with the real alpaca-py clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions, EmuOrder, PaperAccount
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.marketdata.barfile import BarFile

KEY = "test-key"
SECRET = "test-secret"


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
    bar_file: BarFile,
    *,
    options: EmulatorOptions | None = None,
    faults: Faults | None = None,
    start_bar: int = 0,
    max_page_size: int = 10_000,
    data: DataOptions | None = None,
) -> Iterator[EmulatorServer]:
    account = PaperAccount(bar_file.bars, bar_file.calendar, options=options)
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


def every_order(account: PaperAccount) -> dict[str, EmuOrder]:
    """The broker's orders by id, OCO stop legs included."""
    out: dict[str, EmuOrder] = {}
    for order in account.orders.values():
        out[order.id] = order
        out.update({leg.id: leg for leg in order.legs})
    return out
