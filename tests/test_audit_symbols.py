"""`ict-trader audit` of a store that traded two symbols at once (issue #11 item 6).

The live runner (`run_live`, what `ict-trader run` runs) trades IWM and DIA on 2025-10-17
against the emulator, through alpaca-py (tests/test_live_symbols.py's session), and the store is
audited against the same emulator: the orders and fills of both symbols at once, each symbol's
live bars and signals against its own SIP bars (fetched in one request, paged across the
symbols), and the live trades against a backtest of both symbols' SIP bars together.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import MarketOrderRequest
from playwright.sync_api import expect, sync_playwright

from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.audit import AuditReport, run_audit
from ict_trader.audit.run import connect
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.persistence.store import Store
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    backtest_like,
    every_minute,
    running_emulator,
    trading_client,
)
from tests.browser import launch_chromium
from tests.test_live_days import Runner, _clients, wait
from tests.test_live_restart import quiet_exchange
from tests.test_live_symbols import DAYS, SYMBOLS, settings, two_sessions

TRADED = DAYS[1]  # 2025-10-17; DAYS[0] is the warm-up session
DIA_SIGNAL = datetime(2025, 10, 17, 15, 39, tzinfo=UTC)  # 11:39 New York, long
IWM_SIGNAL = datetime(2025, 10, 17, 15, 40, tzinfo=UTC)  # 11:40 New York, long
SESSION_MINUTES = 390
AUDIT = [sys.executable, "-m", "ict_trader", "audit"]


def stored_until(db: Path, symbol: str) -> str:
    """The newest bar of `symbol` the bot kept ('' if none yet)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        try:
            row = connection.execute(
                "SELECT max(time) FROM bars WHERE symbol = ?", (symbol,)
            ).fetchone()
        except sqlite3.OperationalError:  # the store is not created yet
            return ""
    return str(row[0] or "")


def trade_the_session(server: EmulatorServer, db: Path) -> Runner:
    """`run_live` on IWM and DIA for one session, the clock completed a minute at a time; each
    minute waits until the bot kept every bar the stream sent for it."""
    runner = Runner(server, db, sessions=1, config=settings())
    wait(lambda: server.call(_clients(server)) == (1, 1), runner, "streams")
    for _ in range(SESSION_MINUTES):
        (minute,) = server.call(server.advance_minutes(1))
        moment = next(iter(minute.values())).time
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        for symbol in server.feed.streamed(moment, "iex"):
            wait(
                lambda s=symbol, t=stamp: stored_until(db, s) >= t, runner, f"{symbol} bar {stamp}"
            )
        quiet_exchange(server)
    runner.thread.join(60)
    assert runner.error is None, repr(runner.error)
    assert not runner.thread.is_alive(), runner.said[-3:]
    return runner


def audit(server: EmulatorServer, db: Path) -> AuditReport:
    store = Store(db, reader=True)
    try:
        clients = connect(KEY, SECRET, paper=True, url=server.base_url)
        return run_audit(store, clients, first_day=TRADED, last_day=TRADED)
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


@dataclass
class Session:
    server: EmulatorServer
    db: Path
    folder: Path
    report: AuditReport  # the traded session, audited by the function
    done: subprocess.CompletedProcess[str]  # the command, the store's whole period
    written: dict[str, Any]  # its --json


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """IEX bars equal to SIP's and fills as the backtest models them: everything should match.
    The emulator pages its bars 500 at a time, so one SIP request's pages cross from DIA's bars
    to IWM's. Both audits run before any test changes anything at the emulator."""
    folder = tmp_path_factory.mktemp("symbols")
    db = folder / "two.db"
    with running_emulator(
        two_sessions(),
        start_bar=SESSION_MINUTES,
        options=backtest_like(),
        data=every_minute(updated_bar_rate=0.0),
        max_page_size=500,
    ) as server:
        trade_the_session(server, db)
        report = audit(server, db)
        copy = folder / "copy.db"
        copy.write_bytes(db.read_bytes())
        out = folder / "audit.json"
        done = command(server, "--db", str(copy), "--json", str(out), cwd=folder)
        written = json.loads(out.read_text()) if out.exists() else {}
        yield Session(server, db, folder, report, done, written)


def test_a_two_symbol_session_is_audited_clean(session: Session) -> None:
    report = session.report
    assert report.errors == [] and report.exit_code == 0
    assert report.verdict() == (
        "OK: 10 of 10 orders and 8 fills match Alpaca, 0 foreign orders; "
        "IEX bars gave the same 2 signals as SIP (IWM 1, DIA 1)"
    )
    assert report.symbols == SYMBOLS and report.symbol is None
    # Orders and fills of both symbols, one comparison.
    # DIA's trades exit at their targets; IWM's at the time limit: the target canceled, then a
    # market exit.
    matched = sorted(
        (m.client_order_id, m.ledger_status, m.broker_status) for m in report.orders.matched
    )
    legs = {"DIA": ("entry", "target"), "IWM": ("entry", "exit", "target")}
    assert matched == sorted(
        (
            f"ict-{symbol}-{stamp}-{profile}-{leg}",
            "canceled" if (symbol, leg) == ("IWM", "target") else "filled",
            "canceled" if (symbol, leg) == ("IWM", "target") else "filled",
        )
        for symbol, stamp in (("DIA", "202510171539l"), ("IWM", "202510171540l"))
        for profile in ("aggressive", "conservative")
        for leg in legs[symbol]
    )
    assert report.orders.fills_matched == 8 and report.orders.foreign == []
    # Each symbol's bars against its own SIP bars, up to the free plan's cut-off.
    assert report.sip_cut_short and report.sip_until == datetime(2025, 10, 17, 19, 45, tzinfo=UTC)
    assert list(report.by_symbol) == list(SYMBOLS)
    for symbol in SYMBOLS:
        part = report.by_symbol[symbol]
        assert part.sessions == [TRADED]
        bars = part.bars
        assert (bars.minutes, bars.missing_live, bars.live_only, bars.different) == (375, 0, 0, 0)
        assert bars.volume_share == 1.0 and bars.max_close_difference == 0.0
    total = report.bars
    assert total is not None and (total.minutes, total.missing_live) == (750, 0)
    assert total.volume_share == 1.0
    # The signals, symbol by symbol, side by side.
    assert [(p.symbol, p.status, p.direction, p.live, p.sip) for p in report.signals.pairs] == [
        ("DIA", "same", "long", DIA_SIGNAL, DIA_SIGNAL),
        ("IWM", "same", "long", IWM_SIGNAL, IWM_SIGNAL),
    ]
    assert report.signals.unreproduced == []
    # The live trades are the backtest's of both symbols' SIP bars: the same entries (each on
    # its own symbol's next SIP bar), the same exits for the same reasons.
    rows = sorted((r.symbol, r.trade_id) for r in report.slippage)
    assert rows == sorted(
        (symbol, f"ict-{symbol}-{stamp}-{profile}")
        for symbol, stamp in (("DIA", "202510171539l"), ("IWM", "202510171540l"))
        for profile in ("aggressive", "conservative")
    )
    for row in report.slippage:
        assert row.entry is not None and row.entry.per_share == 0 and row.entry.total == 0
        assert row.exit is not None and row.exit.per_share == 0
        reason = "target" if row.symbol == "DIA" else "time"
        assert (row.live_exit_reason, row.backtest_exit_reason) == (reason, reason)
    # Expectation in all and per symbol.
    live, backtest = report.live, report.backtest
    assert live is not None and backtest is not None
    assert (live.signals, backtest.signals) == (2, 2)
    assert live.signals_per_week == backtest.signals_per_week == 14.0  # one session: 1/7 week
    for profile in ("conservative", "aggressive"):
        assert (live.target_hit[profile].hits, live.target_hit[profile].trials) == (1, 2)
        assert live.win[profile].value == backtest.win[profile].value == 1.0
        for symbol, hits in (("DIA", 1), ("IWM", 0)):
            part = report.by_symbol[symbol]
            assert (part.live.signals, part.backtest.signals) == (1, 1)
            assert (
                part.live.target_hit[profile].hits == hits == part.backtest.target_hit[profile].hits
            )
            assert part.live.target_hit[profile].trials == 1


def test_the_command_shows_each_symbol(session: Session) -> None:
    """The command's default period is the store's: the warm-up session too (the bot kept both
    symbols' bars of it), with no signal on either feed."""
    done, written = session.done, session.written
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines()[0] == written["verdict"]
    assert written["verdict"] == (
        "OK: 10 of 10 orders and 8 fills match Alpaca, 0 foreign orders; "
        "IEX bars gave the same 2 signals as SIP (IWM 1, DIA 1)"
    )
    assert written["symbol"] is None and written["symbols"] == ["IWM", "DIA"]
    assert written["sessions"] == ["2025-10-16", "2025-10-17"]
    assert list(written["by_symbol"]) == ["IWM", "DIA"]
    for symbol in SYMBOLS:
        part = written["by_symbol"][symbol]
        assert part["sessions"] == ["2025-10-16", "2025-10-17"]
        assert part["bars"]["minutes"] == 390 + 375 and part["bars"]["missing_live"] == 0
        assert part["signals"] == {"same": 1, "shifted": 0, "missing": 0, "extra": 0}
        assert part["expectation"]["live"]["signals"] == 1
        assert part["expectation"]["backtest_sip"]["signals"] == 1
    # The overall figures keep the one-symbol shape (the dashboard reads them).
    assert written["bars"]["minutes"] == 2 * (390 + 375)
    assert [(p["symbol"], p["status"]) for p in written["signals"]["pairs"]] == [
        ("DIA", "same"),
        ("IWM", "same"),
    ]
    assert written["expectation"]["live"]["signals"] == 2
    assert {row["symbol"] for row in written["slippage"]} == {"IWM", "DIA"}
    assert "(paper, IWM, DIA)" in done.stdout
    bars_header = next(line for line in done.stdout.splitlines() if "SIP minutes compared" in line)
    cells = [cell.strip() for cell in bars_header.split("│") if cell.strip()]
    assert cells == ["SIP minutes compared", "765", "765", "1530"]  # IWM, DIA, all
    assert "IWM signals / week" in done.stdout and "DIA aggressive: target hit" in done.stdout


def test_one_symbol_differing_is_named(session: Session, tmp_path: Path) -> None:
    """DIA only: its live feed lost the minutes up to its signal (as IEX loses minutes with no
    IEX trade) and an order placed by hand at the broker in DIA. IWM's part stays clean."""
    by_hand = trading_client(session.server).submit_order(
        MarketOrderRequest(
            symbol="DIA",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id="dia-by-hand",
        )
    )
    assert isinstance(by_hand, Order)
    copy = tmp_path / "lossy.db"
    copy.write_bytes(session.db.read_bytes())
    lost = [DIA_SIGNAL - timedelta(minutes=n) for n in range(5)]
    with closing(sqlite3.connect(copy)) as connection, connection:
        for moment in lost:
            deleted = connection.execute(
                "DELETE FROM bars WHERE symbol = 'DIA' AND time = ?",
                (moment.strftime("%Y-%m-%dT%H:%M:%SZ"),),
            ).rowcount
            assert deleted == 1
    report = audit(session.server, copy)
    assert report.status == "RECORDS DIFFER" and report.exit_code == 1
    (foreign,) = report.orders.foreign
    assert (foreign.client_order_id, foreign.symbol) == ("dia-by-hand", "DIA")
    assert report.errors == [
        f"Alpaca order {by_hand.id} (dia-by-hand: buy 1 DIA market, accepted) was not placed "
        "by ict-trader"
    ]
    assert len(report.orders.matched) == 10  # the bot's own orders still all match
    assert report.verdict() == (
        "RECORDS DIFFER: 10 of 10 orders and 8 fills match Alpaca, 1 foreign order, "
        "1 difference; IEX bars vs SIP: 1 same, 0 shifted, 1 missing, 0 extra "
        "(differ on DIA: 1 missing)"
    )
    dia, iwm = report.by_symbol["DIA"], report.by_symbol["IWM"]
    assert (dia.bars.minutes, dia.bars.missing_live) == (375, 5)
    assert (iwm.bars.minutes, iwm.bars.missing_live) == (375, 0)
    assert report.signals.counts("IWM") == {"same": 1, "shifted": 0, "missing": 0, "extra": 0}
    assert report.signals.counts("DIA") == {"same": 0, "shifted": 0, "missing": 1, "extra": 0}
    assert report.signals.unreproduced == [
        "DIA-20251017T1539Z-long: recorded by the bot, not found again on the stored bars"
    ]
    assert (dia.live.signals, dia.backtest.signals) == (0, 1)
    # The trades the bot made on its DIA signal are still compared with the backtest's.
    assert {row.symbol for row in report.slippage} == {"IWM", "DIA"}
    assert all(row.entry is not None and row.entry.per_share == 0 for row in report.slippage)


def test_a_day_one_symbol_has_no_bars_of_is_named(session: Session, tmp_path: Path) -> None:
    """The store has IWM's bars of the warm-up session and not DIA's (its stream down that day,
    say): that session is compared for IWM only, and a note says so. DIA's detectors, live and
    SIP, both start at its first stored bar."""
    copy = tmp_path / "no-dia-day.db"
    copy.write_bytes(session.db.read_bytes())
    with closing(sqlite3.connect(copy)) as connection, connection:
        deleted = connection.execute(
            "DELETE FROM bars WHERE symbol = 'DIA' AND time < '2025-10-17'"
        ).rowcount
    assert deleted == SESSION_MINUTES
    store = Store(copy, reader=True)
    try:
        clients = connect(KEY, SECRET, paper=True, url=session.server.base_url)
        report = run_audit(store, clients, first_day=DAYS[0], last_day=TRADED)
    finally:
        store.close()
    assert report.sessions == list(DAYS)
    assert report.by_symbol["IWM"].sessions == list(DAYS)
    assert report.by_symbol["DIA"].sessions == [TRADED]
    assert (
        "DIA: no live bars recorded on 2025-10-16, when other symbols have some: not compared "
        "on that day" in report.notes
    )
    dia, iwm = report.by_symbol["DIA"].bars, report.by_symbol["IWM"].bars
    assert (dia.minutes, dia.missing_live, iwm.minutes, iwm.missing_live) == (375, 0, 765, 0)
    assert not report.signals.differ_on("DIA") and not report.signals.differ_on("IWM")


def test_the_dashboard_audit_view_names_each_symbol(session: Session) -> None:
    """The Audit view of a two-symbol report, in a real browser: each signal row names its
    symbol, and each symbol has its rows of bars and signals."""
    token = DashboardToken("audit-symbols-token-01", "environment")
    dashboard = Dashboard(session.folder / "copy.db", token, port=0, poll_seconds=0.05)
    dashboard.start()
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(dashboard.url + "#audit")
            expect(page.get_by_test_id("audit-verdict")).to_have_text(session.written["verdict"])
            signals = page.get_by_test_id("audit-signals")
            expect(signals).to_contain_text("DIA long")
            expect(signals).to_contain_text("IWM long")
            expectation = page.get_by_test_id("audit-expectation")
            for symbol in SYMBOLS:
                expect(expectation).to_contain_text(f"{symbol}: signals")
                expect(page.get_by_test_id("audit-bars")).to_contain_text(
                    f"{symbol}: minutes without a live bar"
                )
            browser.close()
    finally:
        dashboard.stop()
    assert errors == []
