"""The dashboard's layout in a real browser, on a phone (390 px wide) and on a desktop.

Served from replayed stores of the bundled real sample (and of real IWM and DIA bars, for the
per-symbol table and columns): the page must never scroll sideways, wide tables scroll inside
their own box, the kill switch stays reachable, and the equity curve runs on market time (no
flat line across nights and weekends) with dollar ticks even when flat.
Screenshots for people land in test-output/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize, expect, sync_playwright

from ict_trader.core.calendar import NEW_YORK
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.dashboard.views import equity_view
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from tests.browser import OUTPUT, launch_chromium
from tests.test_dashboard_symbols import replay_two_symbols
from tests.test_replay import replay_all

TOKEN = DashboardToken("layout-test-token-0123456789", "environment")
PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=900)
DOLLARS = re.compile(r"^\$\d{1,3}(,\d{3})*$")  # "$100,010", never "100.0005k"


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


@pytest.fixture(scope="module")
def ten_sessions(sample: BarFile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 10 sessions of the sample replayed: 6 trades on 3 days, a weekend in between."""
    db = tmp_path_factory.mktemp("layout") / "ten.db"
    replay_all(sample, db)
    return db


@pytest.fixture(scope="module")
def quiet_day(sample: BarFile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only 2024-07-29, a session without a signal: the equity curve is flat at $100,000."""
    db = tmp_path_factory.mktemp("layout") / "quiet.db"
    bars = [bar for bar in sample.bars if bar.time.date().isoformat() == "2024-07-29"]
    replay_all(BarFile(sample.path, bars, sample.calendar), db)
    return db


@pytest.fixture(scope="module")
def two_symbols(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IWM and DIA: the per-symbol table, the symbol columns and the chart's symbol picker show."""
    db = tmp_path_factory.mktemp("layout") / "two.db"
    replay_two_symbols(db)
    return db


@contextmanager
def page_on(db: Path, viewport: ViewportSize) -> Iterator[Page]:
    dashboard = Dashboard(db, TOKEN, port=0)
    dashboard.start()
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport=viewport)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(dashboard.url)
            expect(page.locator("#equity-chart .main-svg").first).to_be_visible()
            yield page
            browser.close()
    finally:
        dashboard.stop()
    assert errors == []


def horizontal_overflow(page: Page) -> int:
    return int(
        page.evaluate(
            "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
    )


def y_tick_labels(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("#equity-chart .ytick text").all_text_contents()]


def in_viewport_horizontally(page: Page, selector: str, width: int) -> bool:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["x"] >= 0 and box["x"] + box["width"] <= width


def fits_the_width(page: Page, width: int, tables: int) -> None:
    """No sideways scrolling; every section and each of the `tables` shown inside the screen."""
    assert horizontal_overflow(page) == 0
    for section in page.locator("main > section:visible, header").all():
        box = section.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width
    # Every table sits inside the screen; one wider than its box scrolls there, not the page.
    assert page.locator(".table-scroll").count() == page.locator("main table").count() == 9
    assert page.locator(".table-scroll table").count() == 9  # the audit's four and Symbols too
    boxes = page.locator(".table-scroll:visible")
    assert boxes.count() == tables
    for index in range(boxes.count()):
        assert in_viewport_horizontally(page, f".table-scroll:visible >> nth={index}", width)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_page_never_scrolls_sideways(ten_sessions: Path, viewport: ViewportSize) -> None:
    width = viewport["width"]
    with page_on(ten_sessions, viewport) as page:
        expect(page.locator("[data-testid=trades] tbody tr[data-trade-id]")).to_have_count(6)
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"dashboard-{width}.png"), full_page=True)
        # One symbol: the page as before, without the per-symbol table, columns and picker.
        fits_the_width(page, width, tables=8)
        for hidden in ("symbols-section", "symbol"):
            expect(page.get_by_test_id(hidden)).to_be_hidden()
        expect(page.locator("[data-testid=trades] th:visible")).to_have_count(11)
        trades = page.locator(".table-scroll:has([data-testid=trades])")
        sizes = trades.evaluate("box => [box.scrollWidth, box.clientWidth]")
        if width == PHONE["width"]:
            assert sizes[0] > sizes[1]  # eleven columns do not fit 390 px ...
            scrolled = trades.evaluate("box => { box.scrollLeft = 10000; return box.scrollLeft; }")
            assert scrolled > 0  # ... so the box scrolls,
            assert page.evaluate("window.scrollX") == 0  # and the page does not
        else:
            assert sizes[0] == sizes[1]


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_two_symbols_fit_the_width_too(two_symbols: Path, viewport: ViewportSize) -> None:
    width = viewport["width"]
    with page_on(two_symbols, viewport) as page:
        expect(page.locator("[data-testid=symbols] tbody tr[data-symbol]")).to_have_count(2)
        expect(page.locator("[data-testid=trades] th:visible")).to_have_count(12)
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"dashboard-symbols-{width}.png"), full_page=True)
        fits_the_width(page, width, tables=9)
        for part in ("symbol", "day"):
            assert in_viewport_horizontally(page, f"[data-testid={part}]", width), part


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_buttons_are_reachable(ten_sessions: Path, viewport: ViewportSize) -> None:
    width = viewport["width"]
    with page_on(ten_sessions, viewport) as page:
        for button in ("kill", "resume"):
            locator = page.get_by_test_id(button)
            locator.scroll_into_view_if_needed()
            expect(locator).to_be_in_viewport(ratio=1)
            assert in_viewport_horizontally(page, f"[data-testid={button}]", width)
            assert page.evaluate("window.scrollX") == 0
        page.get_by_test_id("kill").click()
        expect(page.get_by_test_id("confirm")).to_be_visible()
        for part in ("[data-testid=confirm]", "#confirm-reason", "#confirm-token", "#confirm-go"):
            assert in_viewport_horizontally(page, part, width), part
        assert horizontal_overflow(page) == 0
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_test_id("confirm")).to_be_hidden()


def market_minute(moment: datetime, sessions: list[str]) -> float:
    """Independently of the page: the session's slot * 390 + minutes since 09:30 New York."""
    local = moment.astimezone(NEW_YORK)
    minutes = local.hour * 60 + local.minute - (9 * 60 + 30)
    return sessions.index(local.date().isoformat()) * 390 + min(max(minutes, 0), 390)


def test_the_equity_curve_runs_on_market_time(ten_sessions: Path) -> None:
    store = Store(ten_sessions, reader=True)
    try:
        points = equity_view(store)
        sessions = store.bar_days()
    finally:
        store.close()
    assert len(sessions) == 10
    with page_on(ten_sessions, PHONE) as page:
        plotted: dict[str, Any] = page.evaluate(
            "(() => { const c = document.getElementById('equity-chart');"
            " return { x: c.data[0].x, y: c.data[0].y, range: c.layout.xaxis.range,"
            " ticks: c.layout.xaxis.ticktext }; })()"
        )
        labels = y_tick_labels(page)
        page.locator("#equity-chart").screenshot(path=str(OUTPUT / "equity-390.png"))
    expected = [
        market_minute(datetime.fromisoformat(p["t"].replace("Z", "+00:00")), sessions)
        for p in points
    ]
    # Every snapshot where its market minute says, then the line runs on to the last bar.
    assert plotted["x"][: len(expected)] == expected
    assert plotted["x"][len(expected) :] == [10 * 390]
    assert plotted["y"][-1] == float(points[-1]["equity"])
    assert plotted["range"] == [0, 10 * 390]  # ten sessions, and nothing for nights or weekends
    # Dates under their sessions (as many as 390 px hold), the year once.
    assert plotted["ticks"][0] == "Jul 29<br>2024"
    assert 3 <= len(plotted["ticks"]) <= 5
    assert all(re.fullmatch(r"(Jul|Aug) \d\d", tick) for tick in plotted["ticks"][1:])
    assert labels and all(DOLLARS.match(label) for label in labels), labels


def test_a_flat_equity_curve_gets_dollar_ticks(quiet_day: Path) -> None:
    with page_on(quiet_day, PHONE) as page:
        labels = y_tick_labels(page)
        page.locator("#equity-chart").screenshot(path=str(OUTPUT / "equity-flat-390.png"))
    assert "$100,000" in labels
    assert len(labels) >= 3
    assert all(DOLLARS.match(label) for label in labels), labels
    assert len(set(labels)) == len(labels)  # distinct ticks, not one value printed five times
