"""Several symbols live (issue #11 item 6): the bot trades IWM and DIA at once through alpaca-py
against the emulator, which serves both on its streams and positions — and books what the
backtest of the same bars books."""

from __future__ import annotations

import heapq
import sqlite3
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.backtest import run_backtest
from ict_trader.runtime.live import LiveShell
from tests.alpaca_emulator import (
    backtest_like,
    every_minute,
    running_emulator,
)
from tests.test_live import make_shell, settled, trading, wait_until

DATA = Path(__file__).parent / "data"
SYMBOLS = ("IWM", "DIA")
# 2025-10-17: both symbols signal; the session before (the warm-up) has no signal, so the
# backtest of the two sessions starts the traded one with the same equity as the live account.
DAYS = (date(2025, 10, 16), date(2025, 10, 17))


def two_sessions() -> dict[str, BarFile]:
    files = {}
    for symbol in SYMBOLS:
        whole = load_bars(DATA / f"{symbol.lower()}_1min_2025q3.csv.gz")
        bars = [
            bar._replace(symbol=symbol)
            for bar in whole.bars
            if bar.time.astimezone(NEW_YORK).date() in DAYS
        ]
        files[symbol] = replace(whole, bars=bars)
    return files


def settings() -> AppConfig:
    base = AppConfig()
    return replace(base, engine=replace(base.engine, symbols=SYMBOLS))


def drive_minutes(server: EmulatorServer, shell: LiveShell, minutes: int) -> None:
    """Complete the clock a minute at a time, waiting for the bot to handle every symbol's bar
    the stream sent for it (a symbol with no trade in a minute sends none)."""
    for _ in range(minutes):
        (minute,) = server.call(server.advance_minutes(1))
        moment = next(iter(minute.values())).time
        for symbol in server.feed.streamed(moment, "iex"):
            wait_until(
                lambda s=symbol, m=moment: (
                    shell._last_by_symbol.get(s, m - timedelta(minutes=1)) >= m
                )
            )
        settled(server, shell)


def test_two_symbols_trade_live_as_in_the_backtest(tmp_path: Path) -> None:
    files = two_sessions()
    calendar = NyseCalendar.covering(files["IWM"].bars[0].time, files["IWM"].bars[-1].time)
    merged = list(heapq.merge(*(f.bars for f in files.values()), key=lambda b: (b.time, b.symbol)))
    expected = run_backtest(merged, calendar, settings())
    session_open = files["IWM"].bars[390].time
    wanted = sorted(
        (t.trade_id, t.symbol, t.qty, t.entry_price, t.exit_price, t.exit_reason, t.pnl)
        for t in expected.closed_trades()
        if t.entry_time is not None and t.entry_time >= session_open
    )
    assert {row[1] for row in wanted} == set(SYMBOLS)  # both symbols trade that session

    db = tmp_path / "two.db"
    with running_emulator(
        files, start_bar=390, options=backtest_like(), data=every_minute()
    ) as server:
        store = Store(db)
        shell = make_shell(
            server, calendar, store, stale_after=timedelta(seconds=0.3), config=settings()
        )
        assert shell.reconcile(session_open) == (0, 0)
        with trading(server, shell, session_open):
            drive_minutes(server, shell, 390)
        # Alpaca's view at the close: flat in both symbols, every order one of ours.
        assert all(server.account.position_of(symbol) == 0 for symbol in SYMBOLS)
        at_alpaca = {o.client_order_id: o.symbol for o in server.account.orders.values()}
        store.close()

    got = sorted(
        (t.trade_id, t.symbol, t.qty, t.entry_price, t.exit_price, t.exit_reason, t.pnl)
        for t in Store(db, reader=True).trades()
        if t.status == "closed"
    )
    assert got == wanted
    with sqlite3.connect(db) as connection:
        stored = dict(connection.execute("SELECT client_order_id, symbol FROM orders").fetchall())
        bars = dict(connection.execute("SELECT symbol, count(*) FROM bars GROUP BY 1").fetchall())
    assert stored == at_alpaca  # every order reached Alpaca once, in its own symbol
    assert set(stored.values()) == set(SYMBOLS)
    assert bars == {"IWM": 780, "DIA": 780}  # the warm-up session and the traded one
    assert shell.stats.duplicates == 0
    assert shell.disputed is None
