"""The dashboard in a real browser (headless Chromium via Playwright) during a real replay.

`ict-trader run` runs as a subprocess exactly as a user starts it, serving its dashboard; the
browser watches a trade appear without a reload, engages the kill switch through the page's
confirmation dialog, and the store then shows the position flat and no entry after the kill.
A store of two symbols (real IWM and DIA) shows each symbol's figures and charts either.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.dashboard.views import bars_view, status_view, trades_view
from ict_trader.persistence.store import Store
from tests.browser import OUTPUT, launch_chromium
from tests.test_dashboard_symbols import DAY, replay_two_symbols

TOKEN = "browser-test-token-42"
# From 10:30 New York on 2024-07-30: 31 bars before the 11:01 short signal (the detector is warm
# by then), so at 120 market minutes per minute the trade opens ~16 s in and stays open ~18 s.
START = "2024-07-30T14:30"
SPEED = "120"
BOT = [sys.executable, "-m", "ict_trader", "run"]


@pytest.fixture
def bot(sample_csv: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    data = tmp_path / "session.csv"
    with sample_csv.open() as source, data.open("w", newline="") as target:
        rows = list(csv.reader(source))
        kept = [r for r in rows[1:] if START <= r[0] < "2024-07-31"]
        csv.writer(target).writerows([rows[0], *kept])
    db = tmp_path / "bot.db"
    env = {**os.environ, "ICT_TRADER_DASHBOARD_TOKEN": TOKEN, "COLUMNS": "200"}
    process = subprocess.Popen(
        [*BOT, "--data", str(data), "--db", str(db), "--speed", SPEED, "--dashboard-port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    url = ""
    for line in iter(process.stderr.readline, ""):
        assert TOKEN not in line  # a token from the environment is never printed
        if line.startswith("dashboard: "):
            url = line.removeprefix("dashboard: ").strip()
            break
    assert url.startswith("http://127.0.0.1:")
    try:
        yield url, db
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=60)[1]
        assert "Traceback" not in rest
        assert TOKEN not in rest


def store_figures(db: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    store = Store(db, reader=True)
    try:
        return status_view(store), trades_view(store)
    finally:
        store.close()


def figure(page: Page, test_id: str) -> str:
    return page.get_by_test_id(test_id).get_attribute("data-value") or ""


def test_dashboard_in_a_real_browser(bot: tuple[str, Path]) -> None:
    url, db = bot
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            # the one refused request is the wrong token this test sends on purpose
            lambda message: (
                errors.append(message.text)
                if message.type == "error" and "401" not in message.text
                else None
            ),
        )
        page.on(
            "request",
            lambda request: None if request.url.startswith(url) else foreign.append(request.url),
        )
        page.goto(url)
        page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads
        expect(page.get_by_test_id("state")).to_have_text("active")

        # A new trade appears without a reload, with its broker order id.
        rows = page.locator("[data-testid=trades] tbody tr[data-trade-id]")
        expect(rows).to_have_count(2, timeout=60_000)
        assert page.evaluate("window.__sameDocument") is True
        expect(page.locator("[data-testid=positions] tbody tr")).to_have_count(2)
        expect(page.get_by_test_id("candles").locator(".main-svg").first).to_be_visible()
        expect(page.get_by_test_id("day")).to_have_value("2024-07-30")
        # One symbol: no per-symbol table, symbol column or chart picker; the chart names it.
        for hidden in ("symbols-section", "symbol"):
            expect(page.get_by_test_id(hidden)).to_be_hidden()
        expect(page.locator("[data-testid=positions] th:visible")).to_have_count(9)
        assert page.evaluate("document.getElementById('candles').data[0].name") == "QQQ 1m"

        # A kill without the token is refused by the server and changes nothing.
        refused = page.request.post(url + "api/kill", data={"reason": "no token"})
        assert refused.status == 401
        status, _ = store_figures(db)
        assert status["state"] == "active"

        # The kill switch through the page: dialog, reason, wrong token first, then the right one.
        page.get_by_test_id("kill").click()
        dialog = page.get_by_test_id("confirm")
        expect(dialog).to_be_visible()
        page.fill("#confirm-reason", "browser test")
        page.fill("#confirm-token", "wrong")
        page.click("#confirm-go")
        expect(page.locator("#confirm-error")).to_contain_text("401")
        page.fill("#confirm-token", TOKEN)
        page.click("#confirm-go")
        expect(dialog).to_be_hidden()
        expect(page.get_by_test_id("state")).to_have_text("halted", timeout=30_000)
        expect(page.locator("[data-testid=positions] tbody tr td.empty")).to_have_text(
            "flat", timeout=30_000
        )

        # Flat and halted, the figures stop moving: the page shows the store's, to the cent.
        status, trades = store_figures(db)
        account = status["account"]
        pnl = status["pnl"]
        assert isinstance(account, dict) and isinstance(pnl, dict)
        expect(page.get_by_test_id("equity")).to_have_attribute("data-value", account["equity"])
        expect(page.get_by_test_id("pnl-total")).to_have_attribute("data-value", pnl["total"])
        expect(page.get_by_test_id("pnl-today")).to_have_attribute("data-value", pnl["today"])
        assert figure(page, "cash") == account["cash"]
        trades_text = page.get_by_test_id("trades").inner_text()
        for trade in trades:
            assert trade["exit_reason"] == "kill"
            assert str(trade["entry_order"]) in trades_text
            assert str(trade["exit_orders"][0]) in trades_text  # type: ignore[index]
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        assert page.evaluate("window.__sameDocument") is True
        browser.close()
    assert errors == []
    assert foreign == []  # every asset from the local server: works offline

    # The store: halted, every order done (target cancelled, position closed at market).
    store = Store(db, reader=True)
    try:
        halted = json.loads(store.state("trading_state") or "{}")
        orders = store.orders()
        closed = store.trades()
    finally:
        store.close()
    assert halted["state"] == "halted"
    assert halted["actor"] == "dashboard"
    assert all(o["status"] in {"filled", "canceled"} for o in orders)
    assert sorted(o["leg"] for o in orders) == ["entry"] * 2 + ["exit"] * 2 + ["target"] * 2
    assert {(t.status, t.exit_reason) for t in closed} == {("closed", "kill")}


def chart(page: Page) -> dict[str, Any]:
    """The candle chart as plotted: the candles' name and closes, the signals' y values."""
    result: dict[str, Any] = page.evaluate(
        "(() => { const d = document.getElementById('candles').data;"
        " return { name: d[0].name, close: d[0].close, signals: d[1].y, entries: d[2].y }; })()"
    )
    return result


def money(text: str, signed: bool = True) -> str:
    """As the page writes money: +$1,234.56, $0.00, and a minus sign (U+2212) before a loss."""
    value = Decimal(text).quantize(Decimal("0.01"))
    sign = "\N{MINUS SIGN}" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${abs(value):,}"


def test_each_symbol_in_a_real_browser(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    replay_two_symbols(db)
    store = Store(db, reader=True)
    try:
        status = status_view(store)
        bars = {symbol: bars_view(store, DAY, symbol) for symbol in ("IWM", "DIA")}
    finally:
        store.close()
    dashboard = Dashboard(db, DashboardToken(TOKEN, "environment"), port=0)
    dashboard.start()
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            page.goto(dashboard.url)
            expect(page.get_by_test_id("symbols")).to_be_visible()
            expect(page.locator("#mode")).to_have_text("replay · file · IWM, DIA")

            # A row per symbol, in the settings' order, with the store's figures.
            rows = page.locator("[data-testid=symbols] tbody tr")
            expect(rows).to_have_count(2)
            assert [r.get_attribute("data-symbol") for r in rows.all()] == ["IWM", "DIA"]
            symbols = status["symbols"]
            assert isinstance(symbols, dict)
            held = {"IWM": "long 28", "DIA": "flat"}
            for row, (symbol, figures) in zip(rows.all(), symbols.items(), strict=True):
                cells = [text.strip() for text in row.locator("td").all_inner_texts()]
                assert cells == [
                    symbol,
                    held[symbol],
                    f"{Decimal(figures['last_close']):.2f}",
                    money(figures["realized"]),
                    money(figures["unrealized"]),
                ]
            assert money(symbols["DIA"]["realized"]) == "+$24.08"

            # The open positions and the trades name their symbol.
            positions = page.locator("[data-testid=positions] tbody tr")
            expect(positions).to_have_count(2)
            for row in positions.all():
                expect(row.locator("td").first).to_have_text("IWM")
            trade_symbols = page.locator("[data-testid=trades] tbody tr td:nth-child(2)")
            assert sorted(trade_symbols.all_inner_texts()) == ["DIA", "DIA", "IWM", "IWM"]

            # The chart shows the first symbol, then the one picked, with its own marks.
            picker = page.get_by_test_id("symbol")
            expect(picker).to_have_value("IWM")
            assert picker.locator("option").all_inner_texts() == ["IWM", "DIA"]
            legend = page.locator("#candles .legendtext").first
            expect(legend).to_have_text("IWM 1m")
            shown = chart(page)
            assert shown["close"] == [b["c"] for b in bars["IWM"]["bars"]]
            assert shown["signals"] == [float(s["close"]) for s in bars["IWM"]["signals"]]
            picker.select_option("DIA")
            expect(legend).to_have_text("DIA 1m")  # redrawn (Plotly.react: data and legend)
            shown = chart(page)
            assert shown["close"] == [b["c"] for b in bars["DIA"]["bars"]]
            assert shown["signals"] == [float(s["close"]) for s in bars["DIA"]["signals"]]
            assert len(shown["entries"]) == len(bars["DIA"]["entries"]) == 2
            assert shown["close"] != [b["c"] for b in bars["IWM"]["bars"]]
            # A live update keeps the symbol picked.
            drawn = page.locator("body").get_attribute("data-version") or ""
            page.evaluate("refresh()")
            expect(page.locator("body")).not_to_have_attribute("data-version", drawn)
            expect(picker).to_have_value("DIA")
            assert chart(page)["name"] == "DIA 1m"
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "dashboard-symbols.png"), full_page=True)
            browser.close()
    finally:
        dashboard.stop()
    assert errors == []
