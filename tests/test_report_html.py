"""The HTML backtest report: self-contained, complete, and showing the same figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Route, sync_playwright

from ict_trader.config import AppConfig
from ict_trader.marketdata.barfile import load_bars
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.reporting.report_html import write_html_report
from ict_trader.runtime.backtest import run_backtest
from tests.browser import OUTPUT, launch_chromium

Report = tuple[str, BacktestResult]


@pytest.fixture(scope="module")
def report(sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    bar_file = load_bars(sample_csv)
    result = run_backtest(bar_file.bars, bar_file.calendar, AppConfig())
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html_report(result, path)
    return path.read_text(encoding="utf-8"), result


def test_nothing_is_loaded_from_the_network(report: Report) -> None:
    page, _ = report
    assert not re.search(r"<script[^>]+src=", page), "scripts must be inline"
    assert not re.search(r"<link[^>]+href=[\"']https?:", page), "no external stylesheets"
    # (plotly.js itself mentions cdn.plot.ly for geo maps' topojson, which these charts never load)


def test_plotly_is_embedded_exactly_once(report: Report) -> None:
    page, _ = report
    # The library's licence banner appears once per embedded copy.
    assert page.count("plotly.js v") == 1


def test_every_trade_and_session_chart_is_there(report: Report) -> None:
    page, result = report
    trades = result.closed_trades()
    assert len(trades) == 6
    for trade in trades:
        assert trade.trade_id in page
        assert trade.entry_order_id in page
    # One candlestick trace per session with trades (3 sessions in the sample).
    assert page.count('"type":"candlestick"') == 3
    menu = re.findall(r'"label":"(\w{3} \d{4}-\d{2}-\d{2})  \(', page)
    assert menu == ["Tue 2024-07-30", "Tue 2024-08-06", "Thu 2024-08-08"]


def test_total_pnl_and_metrics_match_the_result(report: Report) -> None:
    page, result = report
    total = result.metrics["all"].total_pnl
    assert f'<b id="total-pnl">{total:+,.2f}</b>' in page
    assert total == sum(t.pnl for t in result.closed_trades() if t.pnl is not None)
    win_rate = result.metrics["conservative"].win_rate
    assert win_rate is not None
    assert f"{win_rate:.1%}" in page


def test_figures_are_valid_json(report: Report) -> None:
    """Each figure's data is passed to Plotly.newPlot as JSON that parses."""
    page, _ = report
    calls = re.findall(r"Plotly\.newPlot\(\s*\"[\w-]+\",\s*(\[.*?\]),\s*\{", page, re.S)
    assert len(calls) == 3
    for data in calls:
        assert isinstance(json.loads(data), list)


def test_report_renders_offline_in_a_real_browser(report: Report, tmp_path: Path) -> None:
    """Chromium with every network request refused: the charts still draw, no script errors."""

    page_html, _ = report
    OUTPUT.mkdir(exist_ok=True)
    path = tmp_path / "report.html"
    path.write_text(page_html, encoding="utf-8")
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def refuse(route: Route) -> None:
            if route.request.url.startswith("file://"):
                route.continue_()
            else:
                requests.append(route.request.url)
                route.abort()

        page.route("**/*", refuse)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_selector(".main-svg")
        plots = page.locator(".js-plotly-plot").count()
        candles = page.locator(
            ".js-plotly-plot .trace.boxes, .js-plotly-plot g.candlestick"
        ).count()
        page.screenshot(path=str(OUTPUT / "report.png"), full_page=False)
        browser.close()
    assert errors == []
    assert requests == []
    assert plots == 3
    assert candles >= 1
