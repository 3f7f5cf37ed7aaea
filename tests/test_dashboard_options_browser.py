"""Option trades on the dashboard in a real browser (headless Chromium via Playwright).

The stores are made by the engine (tests/option_trades.py): a share trade and 10 puts
QQQ240729P00097000 on one signal. The page must name the contract (its OCC symbol beneath),
count contracts, show the premiums paid and received in dollars and the greeks at entry, and
put a visible "modelled" label on every figure a modelled premium made — and none on the share
trade, nor anywhere when the premiums came from a quote file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Locator, Page, expect, sync_playwright

from ict_trader.core.contracts import PremiumSource
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from tests.browser import OUTPUT, launch_chromium
from tests.option_trades import PUT, PUT_NAME, option_run

TOKEN = DashboardToken("options-browser-token-0123456789", "environment")
PUTS = "ict-QQQ-202407291335s-puts"
SHARES = "ict-QQQ-202407291335s-shares"


@contextmanager
def page_of(db: Path) -> Iterator[Page]:
    dashboard = Dashboard(db, TOKEN, port=0)
    dashboard.start()
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            page.goto(dashboard.url)
            expect(page.locator("[data-testid=trades] tbody tr[data-trade-id]")).to_have_count(2)
            yield page
            browser.close()
    finally:
        dashboard.stop()
    assert errors == []


def cells(row: Locator) -> list[str]:
    return [" ".join(text.split()) for text in row.locator("td").all_inner_texts()]


def badge(row: Locator, column: int) -> Locator:
    return row.locator(f"td:nth-child({column}) .badge.modelled")


def test_a_model_priced_option_trade_in_a_real_browser(tmp_path: Path) -> None:
    db = tmp_path / "model.db"
    option_run(db, PremiumSource.MODEL, close_the_put=True).store.close()
    with page_of(db) as page:
        trades = page.get_by_test_id("trades")
        put = trades.locator(f"tbody tr[data-trade-id='{PUTS}']")
        shares = trades.locator(f"tbody tr[data-trade-id='{SHARES}']")
        # The option columns and the symbol column show once an option trade exists.
        for header in ("premium paid", "premium received", "delta / IV at entry"):
            expect(trades.locator("th", has_text=header)).to_be_visible()
        expect(trades.locator("th.sym")).to_be_visible()
        shown = cells(put)
        assert shown[1] == f"{PUT_NAME} {PUT}"  # the readable name, the OCC symbol beneath
        assert (shown[3], shown[4]) == ("bought (short signal)", "10 contracts")
        assert shown[5].startswith("0.52") and shown[7].startswith("0.78")
        assert shown[9].startswith("+$260.00")
        assert (shown[10], shown[11]) == ("alpaca-entry-2", "alpaca-target-3")
        assert shown[12].startswith("$520.00 ($52.00 each)")
        assert shown[13].startswith("$780.00 ($78.00 each)")
        assert shown[14] == "-0.42 / 20.0%"
        # entry, exit, P&L, premium paid and received: each labelled modelled, visibly
        for column in (6, 8, 10, 13, 14):
            expect(badge(put, column)).to_be_visible()
            expect(badge(put, column)).to_have_text("modelled")
        expect(badge(put, 15)).to_have_count(0)  # the greeks are the quote's, not a premium
        # The share trade beside it: shares, its ticker, no label, no option figures.
        shown = cells(shares)
        assert (shown[1], shown[3], shown[4]) == ("QQQ", "short", "30")
        assert shown[12:] == ["\N{EN DASH}"] * 3
        expect(shares.locator(".badge")).to_have_count(0)
        # The account's P&L includes the modelled trade: the cards say so.
        for card in ("pnl-today", "pnl-total", "equity"):
            label = page.locator(f".card:has([data-testid={card}]) .badge.modelled")
            expect(label).to_be_visible()
        profiles = page.get_by_test_id("profiles")
        puts_row = profiles.locator("tbody tr", has_text="puts")
        expect(puts_row.locator("td").first).to_have_text("puts (options)")
        expect(puts_row.locator(".badge.modelled").first).to_be_visible()
        expect(profiles.locator("tbody tr", has_text="shares").locator(".badge")).to_have_count(0)
        # The held share trade: positions keep their share columns, no option figures.
        position = page.locator("[data-testid=positions] tbody tr")
        expect(position).to_have_count(1)
        assert cells(position)[3] == "30"
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "dashboard-options.png"), full_page=True)


def test_a_held_contract_and_file_prices_in_a_real_browser(tmp_path: Path) -> None:
    db = tmp_path / "file.db"
    option_run(db, PremiumSource.FILE, close_the_put=False).store.close()
    with page_of(db) as page:
        positions = page.get_by_test_id("positions")
        put = positions.locator(f"tbody tr[data-trade-id='{PUTS}']")
        expect(put).to_have_count(1)
        shown = cells(put)
        assert shown[0] == f"{PUT_NAME} {PUT}"
        assert shown[3] == "10 contracts"
        assert shown[4] == "0.52" and shown[7] == "0.61"  # premium paid, its mark
        assert shown[8] == "+$90.00"  # (0.61 - 0.52) x 10 x 100
        assert shown[10] == "$520.00 ($52.00 each)" and shown[11] == "-0.42 / 20.0%"
        expect(positions.locator("th", has_text="premium paid")).to_be_visible()
        # Real (file) premiums: no modelled label anywhere on the page.
        expect(page.locator(".badge.modelled:visible")).to_have_count(0)
