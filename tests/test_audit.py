"""`ict-trader audit` on stores the live runner made against the emulator, through alpaca-py.

Each session is traded by `run_live` (what `ict-trader run --alpaca-url` runs), then audited
against the same emulator: its order history, FILL activities and SIP bars, by the function and
by the command as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import MarketOrderRequest
from playwright.sync_api import expect, sync_playwright

from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.audit import AuditReport, run_audit
from ict_trader.audit.daily import daily_audit_line
from ict_trader.audit.record import load_report
from ict_trader.audit.run import connect
from ict_trader.config import AppConfig
from ict_trader.core.exits import StopMode
from ict_trader.core.strategy import InstrumentChoice, StrategyProfile
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    backtest_like,
    every_minute,
    running_emulator,
    trading_client,
)
from tests.browser import OUTPUT, launch_chromium
from tests.test_live_days import SESSION_BARS, SESSION_START, Runner, _clients, wait
from tests.test_live_restart import quiet_exchange

JULY_30 = date(2024, 7, 30)
SIGNAL = datetime(2024, 7, 30, 15, 1, tzinfo=UTC)  # the sample's 11:01 New York short
AUDIT = [sys.executable, "-m", "ict_trader", "audit"]


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def trade_one_session(server: EmulatorServer, db: Path, config: AppConfig | None = None) -> Runner:
    """`run_live` for one session (2024-07-30), stepping the emulator minute by minute; returns
    once the runner has sent its daily summary and stopped."""
    runner = Runner(server, db, sessions=1, config=config)
    wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
    for _ in range(SESSION_BARS):
        (bar,) = server.call(server.advance(1))
        stamp = bar.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        if server.feed.has(bar.time, "iex"):  # IEX may have no bar for the minute
            wait(lambda s=stamp: runner.last_bar() >= s, runner, f"bar {stamp}")
        quiet_exchange(server)
    runner.thread.join(20)
    if runner.thread.is_alive():  # the last minute had no IEX bar: the close passes on the clock
        server.call(server.advance(1))
        runner.thread.join(60)
    assert runner.error is None, repr(runner.error)
    assert not runner.thread.is_alive(), runner.said[-3:]
    return runner


def audit(server: EmulatorServer, db: Path, first: date = JULY_30) -> AuditReport:
    store = Store(db, reader=True)
    try:
        clients = connect(KEY, SECRET, paper=True, url=server.base_url)
        return run_audit(store, clients, first_day=first, last_day=JULY_30)
    finally:
        store.close()


def command(server: EmulatorServer, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUDIT, "--alpaca-url", server.base_url, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET, "COLUMNS": "200"},
        cwd=cwd,
        check=False,
        timeout=120,
    )


def copy_of(db: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    for suffix in ("", "-wal"):  # the runner closed the store: the WAL is normally gone
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{copy}{suffix}")
    return copy


@pytest.fixture(scope="module")
def clean(
    sample: BarFile, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmulatorServer, Path, Runner]]:
    """A session traded with IEX bars equal to SIP's (every minute, no late revisions) and fills
    as the backtest models them: everything should match."""
    db = tmp_path_factory.mktemp("clean") / "live.db"
    data = every_minute(updated_bar_rate=0.0)
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=data
    ) as server:
        runner = trade_one_session(server, db)
        yield server, db, runner


def test_a_clean_session_matches_alpaca_and_the_backtest(
    clean: tuple[EmulatorServer, Path, Runner],
) -> None:
    server, db, _ = clean
    report = audit(server, db)
    assert report.errors == []
    assert report.verdict() == (
        "OK: 4 of 4 orders and 4 fills match Alpaca, 0 foreign orders; "
        "IEX bars gave the same 1 signal as SIP"
    )
    assert report.exit_code == 0
    orders = report.orders
    assert sorted(m.client_order_id for m in orders.matched) == [
        "ict-QQQ-202407301501s-aggressive-entry",
        "ict-QQQ-202407301501s-aggressive-target",
        "ict-QQQ-202407301501s-conservative-entry",
        "ict-QQQ-202407301501s-conservative-target",
    ]
    for match in orders.matched:
        assert (match.ledger_status, match.broker_status) == ("filled", "filled")
        assert match.ledger_price == match.broker_price is not None
        assert match.ledger_filled == match.broker_filled == match.qty
    assert orders.fills_matched == 4 and orders.foreign == []
    # The audit ran at the close (16:00): the free plan has no SIP for the latest 15 minutes.
    assert report.sip_cut_short and report.sip_until == datetime(2024, 7, 30, 19, 45, tzinfo=UTC)
    assert any("not compared" in note for note in report.notes)
    bars = report.bars
    assert bars is not None
    assert (bars.minutes, bars.missing_live, bars.live_only, bars.different) == (375, 0, 0, 0)
    assert bars.volume_share == 1.0 and bars.max_close_difference == 0.0
    assert [(p.status, p.direction, p.live, p.sip) for p in report.signals.pairs] == [
        ("same", "short", SIGNAL, SIGNAL)
    ]
    assert report.signals.unreproduced == []
    # Fills as the backtest simulates them: no slippage, the same exits.
    assert len(report.slippage) == 2
    for row in report.slippage:
        assert row.entry is not None and row.entry.per_share == 0 and row.entry.total == 0
        assert row.exit is not None and row.exit.per_share == 0
        assert (row.live_exit_reason, row.backtest_exit_reason) == ("target", "target")
    live, backtest = report.live, report.backtest
    assert live is not None and backtest is not None
    assert (live.signals, backtest.signals) == (1, 1)
    assert live.signals_per_week == backtest.signals_per_week == 7.0  # one session: 1/7 week
    for profile in ("conservative", "aggressive"):
        assert (live.target_hit[profile].hits, live.target_hit[profile].trials) == (1, 1)
        assert live.target_hit[profile].interval == backtest.target_hit[profile].interval
        assert live.win[profile].value == backtest.win[profile].value == 1.0


def test_the_daily_summary_carries_the_audit_line(
    clean: tuple[EmulatorServer, Path, Runner],
) -> None:
    server, db, _ = clean
    with closing(sqlite3.connect(db)) as connection:
        (message,) = connection.execute(
            "SELECT message FROM audit WHERE kind = 'notify.info' AND message LIKE '%trades%'"
        ).fetchone()
    assert message.endswith("audit: 4 of 4 orders and 4 fills match Alpaca, no differences")
    store = Store(db, reader=True)
    try:
        line = daily_audit_line(store, trading_client(server), JULY_30)
        unreachable = connect(KEY, SECRET, paper=True, url="http://127.0.0.1:9").trading
        unavailable = daily_audit_line(store, unreachable, JULY_30)
    finally:
        store.close()
    assert line == "audit: 4 of 4 orders and 4 fills match Alpaca, no differences"
    assert unavailable.startswith("audit unavailable: ConnectionError")


def test_the_command_prints_the_verdict_writes_json_and_keeps_it_for_the_dashboard(
    clean: tuple[EmulatorServer, Path, Runner], tmp_path: Path
) -> None:
    server, db, _ = clean
    copy = copy_of(db, tmp_path, "copy.db")
    out = tmp_path / "audit.json"
    args = ("--db", str(copy), "--from", "2024-07-30", "--to", "2024-07-30", "--json", str(out))
    done = command(server, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    written = json.loads(out.read_text())
    assert done.stdout.splitlines()[0] == written["verdict"]
    assert written["verdict"].startswith("OK: 4 of 4 orders and 4 fills match Alpaca")
    assert written["exit_code"] == 0 and written["errors"] == []
    assert written["signals"]["pairs"][0]["status"] == "same"
    # one symbol: the shape the dashboard reads, plus each symbol's part
    assert written["symbol"] == "QQQ" and written["symbols"] == ["QQQ"]
    assert written["signals"]["pairs"][0]["symbol"] == "QQQ"
    assert list(written["by_symbol"]) == ["QQQ"]
    assert written["by_symbol"]["QQQ"]["bars"] == written["bars"]
    assert written["by_symbol"]["QQQ"]["expectation"] == written["expectation"]
    assert written["expectation"]["live"]["signals"] == 1
    assert written["expectation"]["backtest_sip"]["profiles"]["aggressive"]["target_hit"] == {
        "hits": 1,
        "trials": 1,
        "rate": 1.0,
        "ci95": [0.2065, 1.0],
    }
    assert len(written["orders"]["orders"]) == 4
    for heading in ("Orders and fills", "Bars: the live IEX bars", "Signals:", "Expectation"):
        assert heading in done.stdout
    store = Store(copy, reader=True)
    try:
        kept = load_report(store)
        events = store.audit_events(5)
    finally:
        store.close()
    assert kept == written
    assert events[0]["kind"] == "audit.run" and events[0]["message"] == written["verdict"]
    assert KEY not in done.stdout + done.stderr and SECRET not in done.stdout + done.stderr


def test_tampered_and_missing_records_are_error_lines(
    clean: tuple[EmulatorServer, Path, Runner], tmp_path: Path
) -> None:
    server, db, _ = clean
    copy = copy_of(db, tmp_path, "tampered.db")
    with closing(sqlite3.connect(copy)) as connection, connection:
        price = Decimal(
            connection.execute(
                "SELECT price FROM fills WHERE client_order_id = ?",
                ("ict-QQQ-202407301501s-conservative-entry",),
            ).fetchone()[0]
        )
        connection.execute(
            "UPDATE fills SET price = ? WHERE client_order_id = ?",
            (str(price + Decimal("0.05")), "ict-QQQ-202407301501s-conservative-entry"),
        )
        connection.execute(
            "DELETE FROM fills WHERE client_order_id = 'ict-QQQ-202407301501s-aggressive-target'"
        )
        connection.execute(
            "INSERT INTO orders (client_order_id, trade_id, profile, leg, symbol, side, qty, type,"
            " time_in_force, status, created_at, updated_at) VALUES ('ict-never-sent', 't',"
            " 'conservative', 'entry', 'QQQ', 'buy', 3, 'market', 'day', 'filled',"
            " '2024-07-30T16:00:00Z', '2024-07-30T16:00:00Z')"
        )
    report = audit(server, copy)
    assert report.status == "RECORDS DIFFER" and report.exit_code == 1
    assert report.errors == [
        "ict-QQQ-202407301501s-aggressive-target: filled shares in fills: ledger 0, Alpaca 8 in "
        "its FILL activities",
        f"ict-QQQ-202407301501s-conservative-entry: fill price (volume-weighted): ledger "
        f"{price + Decimal('0.05'):.4f}, Alpaca {price:.4f}",
        "ict-never-sent: in the ledger (buy 3 QQQ market, filled) but not in Alpaca's order "
        "history",
    ]
    assert report.verdict().startswith(
        "RECORDS DIFFER: 2 of 4 orders and 2 fills match Alpaca, 0 foreign orders, 3 differences"
    )
    done = command(server, "--db", str(copy), "--from", "2024-07-30", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("RECORDS DIFFER")
    assert "✗ ict-never-sent: in the ledger" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def realistic(
    sample: BarFile, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AuditReport, subprocess.CompletedProcess[str], Path, str]]:
    """Alpaca's defaults: IEX bars from a few percent of the trades (modelled), some minutes
    missing, late revisions; the bid/ask spread and partial fills. On 2024-07-30 the 11:01 short
    the backtest trades on SIP bars does not form on the IEX bars, so the bot trades nothing;
    after the close an order is placed by hand at the broker. Audited by the function, then by
    the command (which keeps the report in the store for the dashboard)."""
    folder = tmp_path_factory.mktemp("iex")
    db = folder / "iex.db"
    with running_emulator(sample, start_bar=SESSION_START, data=DataOptions()) as server:
        trade_one_session(server, db)
        by_hand = trading_client(server).submit_order(
            MarketOrderRequest(
                symbol="QQQ",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                client_order_id="placed-by-hand",
            )
        )
        assert isinstance(by_hand, Order)
        report = audit(server, db)
        done = command(server, "--db", str(db), cwd=folder)  # the store's days, to today
    yield report, done, db, str(by_hand.id)


def test_the_live_feed_loses_a_sip_signal_and_a_hand_order_is_foreign(
    realistic: tuple[AuditReport, subprocess.CompletedProcess[str], Path, str],
) -> None:
    report, done, _, hand_id = realistic
    assert report.status == "RECORDS DIFFER"
    (foreign,) = report.orders.foreign
    assert (foreign.client_order_id, foreign.id, foreign.status) == (
        "placed-by-hand",
        hand_id,
        "accepted",  # the market is closed: it waits for the next open
    )
    assert report.errors == [
        f"Alpaca order {hand_id} (placed-by-hand: buy 1 QQQ market, accepted) was not placed "
        "by ict-trader"
    ]
    assert report.orders.matched == []  # the bot placed nothing: no signal on its bars
    missing = [p for p in report.signals.pairs if p.status == "missing"]
    assert [(p.direction, p.sip) for p in missing] == [("short", SIGNAL)]
    bars = report.bars
    assert bars is not None and bars.minutes == 375
    assert 0 < bars.missing_live < 12  # about 1 % of IEX minutes have no bar
    assert bars.different > bars.minutes / 2  # IEX's prices come from a few percent of trades
    assert bars.volume_share is not None and 0.015 < bars.volume_share < 0.035
    live, backtest = report.live, report.backtest
    assert live is not None and backtest is not None
    assert live.signals == len([p for p in report.signals.pairs if p.live is not None])
    assert backtest.signals == len([p for p in report.signals.pairs if p.sip is not None]) >= 1
    assert live.target_hit["conservative"].trials == 0
    assert backtest.target_hit["conservative"].trials >= 1  # the backtest traded the SIP signal
    assert report.verdict().startswith(
        "RECORDS DIFFER: 0 of 0 orders and 0 fills match Alpaca, 1 foreign order, 1 difference; "
        "IEX bars vs SIP: "
    )
    # The command's default period also holds the warm-up day the store has bars of.
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith(
        "RECORDS DIFFER: 0 of 0 orders and 0 fills match Alpaca, 1 foreign"
    )
    assert "Orders and fills 2024-07-29 … 2024-07-30" in done.stdout
    assert "missing on the live feed (SIP only)" in done.stdout
    assert "placed-by-hand" in done.stdout


def test_the_dashboard_shows_the_audit(
    realistic: tuple[AuditReport, subprocess.CompletedProcess[str], Path, str],
) -> None:
    """The Audit view, in a real browser, from the report the command kept in the store."""
    _, done, db, hand_id = realistic
    store = Store(db, reader=True)
    try:
        kept = load_report(store)
    finally:
        store.close()
    assert kept is not None and done.stdout.startswith(kept["verdict"])
    token = DashboardToken("audit-test-token-0123", "environment")
    dashboard = Dashboard(db, token, port=0, poll_seconds=0.05)
    dashboard.start()
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(dashboard.url + "#audit")
            verdict = page.get_by_test_id("audit-verdict")
            expect(verdict).to_have_text(kept["verdict"])
            expect(verdict).to_have_attribute("data-status", "RECORDS DIFFER")
            expect(page.get_by_test_id("audit-lines")).to_contain_text(hand_id)
            expect(page.get_by_test_id("audit-signals")).to_contain_text(
                "missing on the live feed (SIP only)"
            )
            expect(page.get_by_test_id("audit-expectation")).to_contain_text("signals / week")
            expect(page.get_by_test_id("audit-when")).to_contain_text("2024-07-29 … 2024-07-30")
            OUTPUT.mkdir(exist_ok=True)
            page.get_by_test_id("audit").screenshot(path=str(OUTPUT / "dashboard-audit.png"))
            browser.close()
    finally:
        dashboard.stop()
    assert errors == []


def test_fills_at_alpacas_quotes_show_the_spread_as_slippage(
    sample: BarFile, tmp_path: Path
) -> None:
    """The paper account fills market orders at the bid or ask (a 2-cent spread by default):
    the short entry sells a cent below the SIP open the backtest fills at."""
    db = tmp_path / "spread.db"
    options = EmulatorOptions(partial_fill_rate=0.0)
    with running_emulator(
        sample, start_bar=SESSION_START, options=options, data=every_minute(updated_bar_rate=0.0)
    ) as server:
        trade_one_session(server, db)
        report = audit(server, db)
    assert report.errors == []
    assert len(report.slippage) == 2
    for row in report.slippage:
        entry = row.entry
        assert entry is not None
        assert entry.simulated - entry.live == Decimal("0.01")  # sold at the bid
        assert entry.per_share == Decimal("0.0100") and entry.total == Decimal("0.01") * row.shares
        assert entry.bps == (Decimal("0.01") / entry.simulated * 10_000).quantize(Decimal("0.01"))


def test_an_oco_stop_leg_alpaca_named_itself_is_matched(sample: BarFile, tmp_path: Path) -> None:
    """With a stop, each exit travels as one Alpaca OCO order whose stop leg has a client id
    Alpaca chose; the store's stop is matched by the broker id it recorded. 2024-07-30 with a
    0.1-ATR stop: both trades stopped out by the leg, the take-profits reported `replaced`."""
    base = AppConfig()
    exits = replace(base.engine.exits, stop=StopMode.ATR, stop_atr_multiple=Decimal("0.1"))
    config = replace(base, engine=replace(base.engine, exits=exits))
    db = tmp_path / "oco.db"
    with running_emulator(
        sample,
        start_bar=SESSION_START,
        options=backtest_like(),
        data=every_minute(updated_bar_rate=0.0),
    ) as server:
        trade_one_session(server, db, config)
        report = audit(server, db)
    assert report.verdict() == (
        "OK: 6 of 6 orders and 4 fills match Alpaca, 0 foreign orders; "
        "IEX bars gave the same 1 signal as SIP"
    )
    statuses = sorted((m.leg, m.ledger_status, m.broker_status) for m in report.orders.matched)
    assert statuses == [
        ("entry", "filled", "filled"),
        ("entry", "filled", "filled"),
        ("stop", "filled", "filled"),
        ("stop", "filled", "filled"),
        ("target", "canceled", "replaced"),
        ("target", "canceled", "replaced"),
    ]
    stops = sorted(m.client_order_id for m in report.orders.matched if m.leg == "stop")
    assert stops == [
        "ict-QQQ-202407301501s-aggressive-stop",
        "ict-QQQ-202407301501s-conservative-stop",
    ]  # ours; at Alpaca the legs carry client ids Alpaca chose
    for row in report.slippage:
        assert (row.live_exit_reason, row.backtest_exit_reason) == ("stop", "stop")
        assert row.exit is not None and row.exit.per_share == 0  # the run's settings, a stop


def test_a_session_with_an_options_profile_is_audited_and_its_backtest_labelled(
    sample: BarFile, tmp_path: Path
) -> None:
    """2024-07-30's signal traded by a shares profile and, as that day's put, by an options
    profile: every order of both matches Alpaca's records, and the report says the backtest's
    option figures are model-priced (live ones are Alpaca's fills)."""
    base = AppConfig()
    puts = StrategyProfile("puts", Decimal("0.01"), instrument=InstrumentChoice.OPTION)
    risk = replace(base.engine.risk, rapid_loss=Decimal(0))  # a 0DTE mark swings past $500
    engine = replace(base.engine, profiles=(base.engine.profiles[0], puts), risk=risk)
    config = replace(base, engine=engine)
    db = tmp_path / "options.db"
    with running_emulator(
        sample,
        start_bar=SESSION_START,
        options=backtest_like(),
        data=every_minute(updated_bar_rate=0.0),
    ) as server:
        trade_one_session(server, db, config)
        report = audit(server, db)
    option_orders = [m for m in report.orders.matched if "-puts-" in m.client_order_id]
    assert option_orders, "the options profile traded"
    assert not [m for m in report.orders.matched if m.problems]
    assert report.errors == [], report.errors
    assert any("puts) are model-priced" in note for note in report.notes), report.notes
