"""The live path end to end: alpaca-py against the loopback emulator, the same engine inside."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from alpaca.data.enums import DataFeed
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.engine import Engine
from ict_trader.core.exits import StopMode
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime import control
from ict_trader.runtime.backtest import run_backtest
from ict_trader.runtime.live import STORE_RETRY_SECONDS, LiveEndpoints, LiveShell
from ict_trader.signals import IctDetector
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    backtest_like,
    data_client,
    every_minute,
    running_emulator,
)

SESSION_START = 390  # index of 2024-07-30 09:30 in the sample: one full session before it


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def make_shell(
    server: EmulatorServer,
    calendar: NyseCalendar,
    store: Store,
    stale_after: timedelta = timedelta(seconds=90),
    *,
    config: AppConfig | None = None,
    stale_data_after: timedelta | None = timedelta(minutes=5),
) -> LiveShell:
    config = config or AppConfig()
    engine = Engine(
        config.engine,
        {symbol: IctDetector(calendar, config.signal) for symbol in config.engine.symbols},
    )
    broker = AlpacaBroker(KEY, SECRET, url_override=server.base_url, sleep=lambda s: None)
    endpoints = LiveEndpoints(
        rest_url=server.base_url,
        data_stream_url=f"ws://127.0.0.1:{server.port}/v2/iex",
        trade_stream_url=f"ws://127.0.0.1:{server.port}/stream",
        feed=DataFeed.IEX,
    )
    return LiveShell(
        engine,
        broker,
        store,
        data_client(server),
        calendar,
        api_key=KEY,
        secret_key=SECRET,
        endpoints=endpoints,
        stale_after=stale_after,
        stale_data_after=stale_data_after,
    )


def wait_until(condition: object, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("timed out")


def drive(server: EmulatorServer, shell: LiveShell, bars: int) -> None:
    """Complete `bars` bars one at a time, each once the shell has handled the previous one
    and the exchange of orders it caused has come to rest — as in real time, where a minute is
    long enough for an entry's fill and the protective orders it triggers to land in the bar."""
    for _ in range(bars):
        (bar,) = server.call(server.advance(1))
        if server.feed.has(bar.time, "iex"):  # IEX may have no bar for a minute
            wait_until(
                lambda b=bar: shell.stats.last_bar is not None and shell.stats.last_bar >= b.time
            )
        settled(server, shell)


def settled(server: EmulatorServer, shell: LiveShell) -> None:
    """Wait until neither side has work in flight: no pending order work at the emulator, no
    bar or trade update queued in the shell, and no new request for a few polls."""
    quiet = 0
    seen = len(server.requests)
    deadline = time.monotonic() + 10
    while quiet < 4 and time.monotonic() < deadline:
        time.sleep(0.005)
        busy = server.account.has_pending_work() or not shell._bars.empty()
        count = len(server.requests)
        quiet = 0 if busy or count != seen else quiet + 1
        seen = count


def trades_of(db: Path) -> list[tuple[object, ...]]:
    """Trades as stored, with prices and P&L compared as numbers (not as decimal strings)."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT trade_id, qty, entry_price, entry_time, exit_price, exit_time, exit_reason, pnl"
            " FROM trades ORDER BY trade_id"
        ).fetchall()
    return [
        (r[0], r[1], Decimal(r[2]), r[3], Decimal(r[4]), r[5], r[6], Decimal(r[7])) for r in rows
    ]


def test_a_session_through_the_live_path_equals_the_backtest(
    sample: BarFile, tmp_path: Path
) -> None:
    db = tmp_path / "live.db"
    shell, _ = run_session(sample, db)
    got = trades_of(db)
    assert len(got) == 2  # the 2024-07-30 11:01 short signal, both profiles
    assert got == backtest_rows(sample)
    assert shell.stats.duplicates == 0


@contextmanager
def trading(server: EmulatorServer, shell: LiveShell, start: datetime) -> Iterator[None]:
    """The shell warmed up to `start`, its streams connected, trading in a thread until exit."""
    shell.warm_up(start)
    shell.start_streams()
    wait_until(lambda: server.call(_clients(server)) == (1, 1))
    runner = threading.Thread(target=shell.run, args=(lambda: False,), daemon=True)
    runner.start()
    try:
        yield
    finally:
        shell.stop()
        runner.join(10)


async def _clients(server: EmulatorServer) -> tuple[int, int]:
    return len(server._trade_sockets), len(server._data_sockets)


def test_a_signal_bar_is_never_processed_twice(sample: BarFile, tmp_path: Path) -> None:
    with running_emulator(sample, start_bar=SESSION_START) as server:
        store = Store(tmp_path / "dup.db")
        shell = make_shell(server, sample.calendar, store)
        shell.warm_up(sample.bars[SESSION_START].time)
        bar = sample.bars[SESSION_START]
        server.call(server.advance(1))
        shell.on_bar(bar)
        shell.on_bar(bar)
        assert (shell.stats.bars, shell.stats.duplicates) == (1, 1)
        # A gap: the next bar arrives three minutes later; the two missing are fetched first.
        server.call(server.advance(3))
        shell.on_bar(sample.bars[SESSION_START + 3])
        assert (shell.stats.bars, shell.stats.backfilled) == (4, 2)
        assert shell.stats.last_bar == datetime(2024, 7, 30, 13, 33, tzinfo=UTC)
        store.close()


def run_session(
    sample: BarFile,
    db: Path,
    *,
    faults: Faults | None = None,
    options: EmulatorOptions | None = None,
    start: int = SESSION_START,
    before: Callable[[EmulatorServer], None] | None = None,
    config: AppConfig | None = None,
) -> tuple[LiveShell, EmulatorServer]:
    """One whole session through the live shell; `before` may act on the account first."""
    options = options or backtest_like()
    with running_emulator(
        sample, start_bar=start, faults=faults, options=options, data=every_minute()
    ) as server:
        if before is not None:
            before(server)
        store = Store(db)
        shell = make_shell(
            server, sample.calendar, store, stale_after=timedelta(seconds=0.3), config=config
        )
        shell.reconcile(sample.bars[start].time)
        with trading(server, shell, sample.bars[start].time):
            drive(server, shell, 390)
        store.close()
    return shell, server


def backtest_rows(
    sample: BarFile, start: int = SESSION_START, config: AppConfig | None = None
) -> list[tuple[object, ...]]:
    """The backtest's trades of the session at `start` (it runs from the data's first bar)."""
    result = run_backtest(sample.bars[: start + 390], sample.calendar, config or AppConfig())
    session_open = sample.bars[start].time
    expected = [t for t in result.closed_trades() if t.entry_time and t.entry_time >= session_open]
    return sorted(
        (
            t.trade_id,
            t.qty,
            Decimal(str(t.entry_price)),
            t.entry_time.strftime("%Y-%m-%dT%H:%M:%SZ") if t.entry_time else None,
            Decimal(str(t.exit_price)),
            t.exit_time.strftime("%Y-%m-%dT%H:%M:%SZ") if t.exit_time else None,
            t.exit_reason.value if t.exit_reason else None,
            Decimal(str(t.pnl)),
        )
        for t in expected
    )


def signals_of(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT time, direction FROM signals ORDER BY time").fetchall()


def test_dropped_data_sockets_lose_no_bar(sample: BarFile, tmp_path: Path) -> None:
    """The emulator drops the data socket every 40 bars; REST backfill keeps every bar, once."""
    shell, _ = run_session(sample, tmp_path / "drops.db", faults=Faults(drop_data_socket_every=40))
    assert shell.stats.reconnects >= 1 and shell.stats.backfilled >= 9
    assert shell.stats.bars == 390  # every bar of the session processed exactly once
    assert signals_of(tmp_path / "drops.db") == [("2024-07-30T15:01:00Z", "short")]
    assert trades_of(tmp_path / "drops.db") == backtest_rows(sample)


def test_error_bursts_lose_and_duplicate_no_order(sample: BarFile, tmp_path: Path) -> None:
    """500s and 429s on a third of the requests, and a 504 after half of the order creations."""
    faults = Faults(error_500_rate=0.2, error_429_rate=0.1, order_504_rate=0.5, seed=5)
    _, server = run_session(sample, tmp_path / "errors.db", faults=faults)
    client_ids = [o.client_order_id for o in server.account.orders.values()]
    # 2 entries and 2 targets (both trades end at their target), each created exactly once, and
    # no submission was ever refused as a duplicate: unknown outcomes were looked up, not re-sent.
    assert len(client_ids) == len(set(client_ids)) == 4
    assert [e for e in server.api_errors if "must be unique" in e[2]] == []
    assert server.injected[("POST", "/v2/orders", 504)] >= 1  # created, but answered 504
    assert sum(server.injected.values()) >= 50  # a real burst, on reads and writes
    assert trades_of(tmp_path / "errors.db") == backtest_rows(sample)
    with sqlite3.connect(tmp_path / "errors.db") as connection:
        rejected = connection.execute("SELECT COUNT(*) FROM orders WHERE status = 'rejected'")
        assert rejected.fetchone() == (0,)


def test_a_rejected_order_is_recorded_and_the_engine_stays_consistent(
    sample: BarFile, tmp_path: Path
) -> None:
    shell, server = run_session(
        sample, tmp_path / "reject.db", options=backtest_like(reject_rate=1.0)
    )
    with sqlite3.connect(tmp_path / "reject.db") as connection:
        orders = connection.execute("SELECT leg, status FROM orders").fetchall()
        trades = connection.execute("SELECT status FROM trades").fetchall()
        notices = connection.execute(
            "SELECT COUNT(*) FROM audit WHERE message LIKE '%rejected%'"
        ).fetchone()
    assert orders == [("entry", "rejected"), ("entry", "rejected")]
    assert trades == [("canceled",), ("canceled",)]
    assert notices == (2,)
    assert shell.engine.open_trades == []
    assert server.account.position == 0


def test_time_exits_with_two_resting_targets_on_one_position(
    sample: BarFile, tmp_path: Path
) -> None:
    """2024-08-08: both profiles short, two buy targets resting on one net position; the time
    exit cancels each profile's own target and buys back only its shares (held quantity)."""
    start = 8 * 390  # 2024-08-08 09:30
    db = tmp_path / "time.db"
    run_session(sample, db, start=start)
    rows = trades_of(db)
    assert [r[6] for r in rows] == ["time", "time"]
    assert rows == backtest_rows(sample, start)


def test_duplicated_fill_messages_are_counted_once(sample: BarFile, tmp_path: Path) -> None:
    db = tmp_path / "dups.db"
    run_session(sample, db, options=backtest_like(duplicate_fill_rate=1.0))
    assert trades_of(db) == backtest_rows(sample)


def test_a_position_ict_trader_did_not_open_blocks_entries_and_is_left_alone(
    sample: BarFile, tmp_path: Path
) -> None:
    def foreign_position(server: EmulatorServer) -> None:
        client = TradingClient(KEY, SECRET, url_override=server.base_url)
        client.submit_order(
            MarketOrderRequest(
                symbol="QQQ", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
        server.call(server.settle())  # filled before the bot starts

    db = tmp_path / "foreign.db"
    shell, server = run_session(sample, db, before=foreign_position)
    assert shell.engine.state == "reducing"
    with sqlite3.connect(db) as connection:
        skips = connection.execute("SELECT reason FROM skips").fetchall()
        audit = connection.execute("SELECT message FROM audit WHERE kind = 'reconcile.mismatch'")
        mismatch = audit.fetchone()[0]
    assert len(skips) == 2 and all(
        r[0].startswith("entries blocked: broker position 5") for r in skips
    )
    assert "never touched" in mismatch
    assert server.account.position == 5  # untouched


@pytest.mark.parametrize(
    ("mode", "multiple", "start"),
    [
        (StopMode.ATR, "0.1", SESSION_START),  # 2024-07-30: stopped out by the OCO stop leg
        (StopMode.SWEEP, "2", 8 * 390),  # 2024-08-08: the stop rests, the time exit cancels it
    ],
)
def test_stops_travel_as_alpaca_oco_orders(
    sample: BarFile, tmp_path: Path, mode: StopMode, multiple: str, start: int
) -> None:
    base = AppConfig()
    config = replace(
        base,
        engine=replace(
            base.engine,
            exits=replace(base.engine.exits, stop=mode, stop_atr_multiple=Decimal(multiple)),
        ),
    )
    db = tmp_path / "oco.db"
    # Alpaca's own behaviour: stream updates carry no `legs` (the stop leg's ids come from a
    # nested read), and a stop-out reports the take-profit `replaced` (alpaca-py #198).
    options = backtest_like()
    _, server = run_session(sample, db, config=config, start=start, options=options)
    rows = trades_of(db)
    assert rows == backtest_rows(sample, start, config)
    oco = [o for o in server.account.orders.values() if o.order_class == "oco"]
    assert len(oco) == 4  # a take-profit parent and its stop leg, for each profile
    assert all(not o.open for o in oco)
    if mode is StopMode.ATR:
        assert {r[6] for r in rows} == {"stop"}


def test_kill_while_trading_live_flattens_at_alpaca(sample: BarFile, tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    # no random partial fills: the rest of a partly filled exit fills a bar later, after the
    # 3 bars this test gives the flatten (the bot waits for it correctly; no bot bug)
    options = EmulatorOptions(partial_fill_rate=0.0)
    # IEX bars equal to the file's: the backtest's 11:01 signal forms live too
    with running_emulator(
        sample, start_bar=SESSION_START, options=options, data=every_minute()
    ) as server:
        store = Store(db)
        shell = make_shell(server, sample.calendar, store, stale_after=timedelta(seconds=0.3))
        with trading(server, shell, sample.bars[SESSION_START].time):
            drive(server, shell, 100)  # to 11:10: both trades open, targets resting at Alpaca
            assert server.account.position == -14
            other = Store(db)  # what `ict-trader kill` does, from another connection
            control.request(other, "kill", "live test", "cli")
            other.close()
            drive(server, shell, 3)
        store.close()
        position = server.account.position
        working = [o for o in server.account.orders.values() if o.open]
    assert position == 0
    assert working == []
    with sqlite3.connect(db) as connection:
        reasons = connection.execute("SELECT exit_reason FROM trades").fetchall()
        state = connection.execute("SELECT value FROM state WHERE key = 'trading_state'").fetchone()
    assert reasons == [("kill",), ("kill",)]
    assert '"halted"' in state[0]


def test_stale_data_blocks_entries_until_bars_return(sample: BarFile, tmp_path: Path) -> None:
    with running_emulator(sample, start_bar=SESSION_START) as server:
        store = Store(tmp_path / "stale.db")
        shell = make_shell(
            server,
            sample.calendar,
            store,
            stale_after=timedelta(seconds=0.2),
            stale_data_after=timedelta(seconds=0.6),
        )
        with trading(server, shell, sample.bars[SESSION_START].time):
            drive(server, shell, 2)
            wait_until(lambda: shell.engine.state == "reducing", timeout=10)  # the feed went quiet
            assert (shell.engine.state_reason or "").startswith("stale data: no new bar for")
            drive(server, shell, 1)
            assert shell.engine.state == "active"  # bars are back
        store.close()


def test_the_stale_data_breaker_can_be_switched_off(sample: BarFile, tmp_path: Path) -> None:
    """`[risk] stale_data_minutes = 0`: a quiet feed is backfilled but never blocks entries."""
    with running_emulator(sample, start_bar=SESSION_START) as server:
        store = Store(tmp_path / "off.db")
        shell = make_shell(
            server,
            sample.calendar,
            store,
            stale_after=timedelta(seconds=0.2),
            stale_data_after=None,
        )
        with trading(server, shell, sample.bars[SESSION_START].time):
            drive(server, shell, 2)
            time.sleep(1.5)  # well past the 0.6 s that trips the breaker when it is on
            assert shell.engine.state == "active"
        store.close()


def test_the_dashboard_shows_a_live_session_as_the_broker_saw_it(
    sample: BarFile, tmp_path: Path
) -> None:
    """Equity and cash are the broker's; each trade's order ids are the broker's own ids."""
    db = tmp_path / "dash.db"
    _, server = run_session(sample, db)
    account = server.account
    dashboard = Dashboard(db, DashboardToken("t" * 20, "environment"), port=0)
    dashboard.start()
    try:
        status = requests.get(dashboard.url + "api/status", timeout=10).json()
        trades = requests.get(dashboard.url + "api/trades", timeout=10).json()
    finally:
        dashboard.stop()
    assert Decimal(status["account"]["equity"]) == account.equity().quantize(Decimal("0.01"))
    assert Decimal(status["account"]["cash"]) == account.cash.quantize(Decimal("0.01"))
    by_client_id = {o.client_order_id: o.id for o in account.orders.values()}
    assert len(trades) == 2
    for trade in trades:
        assert trade["entry_order"] == by_client_id[f"{trade['trade_id']}-entry"]
        assert trade["exit_orders"] and all(
            order_id in by_client_id.values() for order_id in trade["exit_orders"]
        )


def test_a_full_disk_stops_entries_but_never_the_exits(sample: BarFile, tmp_path: Path) -> None:
    """The store cannot be written mid-trade (disk full): the bot keeps managing the open trades
    — their targets fill, the account ends flat — takes no new entry, and once the store takes
    writes again it records what it missed and lifts the block by itself."""
    db = tmp_path / "full.db"
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=every_minute()
    ) as server:
        store = Store(db)
        shell = make_shell(server, sample.calendar, store, stale_after=timedelta(seconds=0.3))
        with trading(server, shell, sample.bars[SESSION_START].time):
            drive(server, shell, 95)  # 11:05: both trades open, targets resting
            assert server.account.position == -14
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages}")  # full from now on
            drive(server, shell, 40)  # 11:45: the targets filled at 11:38
            position_while_full = server.account.position
            state_while_full = shell.engine.state
            reason_while_full = shell.engine.state_reason or ""
            store._db.execute("PRAGMA max_page_count = 1073741823")  # space again
            time.sleep(STORE_RETRY_SECONDS)  # the store is retried at most this often
            drive(server, shell, 3)
            state_after = shell.engine.state
        store.close()
    assert position_while_full == 0, "the exits went out although nothing could be recorded"
    assert state_while_full == "reducing" and reason_while_full.startswith("store cannot be")
    assert state_after == "active"
    assert trades_of(db) == backtest_rows(sample), "the ledger caught up with what happened"
