"""Per-period figures on data with gaps: they count the sessions the data holds, not the calendar.

A user's file may hold a few separate stretches (months from different years); its first and
last sessions then span far more calendar time than it covers. The file here is real: three
fortnights of the 2024 development year, months apart, written out and loaded like any file.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NEW_YORK
from ict_trader.marketdata.barfile import load_bars
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.reporting.metrics import TRADING_DAYS_PER_YEAR
from ict_trader.reporting.report_html import _equity_figure
from ict_trader.runtime.backtest import run_backtest

# Two weeks each, months apart: 29 sessions (2024-01-15 is a holiday) over ~10 months.
WINDOWS = [
    (date(2024, 1, 8), date(2024, 1, 19)),
    (date(2024, 6, 3), date(2024, 6, 14)),
    (date(2024, 11, 4), date(2024, 11, 15)),
]
SESSIONS = 29


def _in_windows(stamp: str) -> bool:
    day = date.fromisoformat(stamp[:10])  # regular-hours bars: UTC date == New York date
    return any(first <= day <= last for first, last in WINDOWS)


@pytest.fixture(scope="module")
def gapped_csv(dev_year: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gapped") / "qqq_three_fortnights.csv"
    with gzip.open(dev_year, "rt", newline="") as source, path.open("w", newline="") as target:
        rows = csv.reader(source)
        writer = csv.writer(target)
        writer.writerow(next(rows))
        writer.writerows(row for row in rows if _in_windows(row[0]))
    return path


@pytest.fixture(scope="module")
def gapped(gapped_csv: Path) -> BacktestResult:
    bar_file = load_bars(gapped_csv)
    return run_backtest(bar_file.bars, bar_file.calendar, AppConfig())


def test_the_file_has_gaps(gapped: BacktestResult) -> None:
    days = [s.day for s in gapped.sessions]
    assert len(days) == SESSIONS
    assert (days[-1] - days[0]).days > 300  # the calendar span is ~45 weeks; the data covers ~6
    assert len(gapped.signals) >= 5  # enough signals for a rate to mean something


def test_signals_per_week_counts_the_weeks_the_data_covers(gapped: BacktestResult) -> None:
    signals = len(gapped.signals)
    covered_weeks = SESSIONS / 5
    calendar_weeks = ((gapped.sessions[-1].day - gapped.sessions[0].day).days + 1) / 7
    for metrics in gapped.metrics.values():
        assert metrics.signals_per_week == pytest.approx(signals / covered_weeks)
        # The calendar span's rate would be ~7 times lower.
        assert metrics.signals_per_week > 5 * signals / calendar_weeks


def _daily_returns(result: BacktestResult, profile: str) -> list[float]:
    """Independently: one return per session in the data, days without exits count as 0."""
    pnl_by_day = {s.day: Decimal(0) for s in result.sessions}
    for trade in result.closed_trades():
        if trade.profile == profile and trade.exit_time and trade.pnl is not None:
            pnl_by_day[trade.exit_time.astimezone(NEW_YORK).date()] += trade.pnl
    equity = result.config.simulation.starting_equity
    returns = []
    for day in sorted(pnl_by_day):
        returns.append(float(pnl_by_day[day] / equity))
        equity += pnl_by_day[day]
    return returns


def test_sharpe_is_annualized_from_the_sessions_in_the_data(gapped: BacktestResult) -> None:
    for profile in ("conservative", "aggressive"):
        returns = _daily_returns(gapped, profile)
        assert len(returns) == SESSIONS  # not one per calendar (or business) day of the span
        mean = sum(returns) / len(returns)
        sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
        expected = mean / sd * math.sqrt(TRADING_DAYS_PER_YEAR)
        assert gapped.metrics[profile].sharpe_daily_annualized == pytest.approx(expected)


def test_exposure_is_over_the_minutes_of_the_sessions_in_the_data(
    gapped: BacktestResult,
) -> None:
    trades = [t for t in gapped.closed_trades() if t.profile == "conservative"]
    assert trades
    held = sum(
        (t.exit_time - t.entry_time).total_seconds()
        for t in trades
        if t.exit_time is not None and t.entry_time is not None
    )
    market = sum((s.close - s.open).total_seconds() for s in gapped.sessions)
    assert market == pytest.approx(SESSIONS * 390 * 60, rel=0.01)  # no early close in these
    assert gapped.metrics["conservative"].exposure == pytest.approx(held / market)


def test_the_backtest_command_reports_the_covered_rate(gapped_csv: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["backtest", "--data", str(gapped_csv), "--json", str(report)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(report.read_text())
    signals = figures["metrics"]["all"]["signals"]
    rate = figures["metrics"]["all"]["signals_per_week"]
    assert rate == pytest.approx(signals / (SESSIONS / 5))
    assert f"│ signals / week │ {rate:.2f}" in " ".join(result.output.split())


def test_report_equity_axis_skips_the_gaps(gapped: BacktestResult) -> None:
    """The HTML report's equity curve runs on market time: the months between the fortnights
    (and the nights and the holiday) take no room, and a dotted line marks each gap."""
    figure = _equity_figure(gapped)
    end = SESSIONS * 390
    assert list(figure.layout.xaxis.range) == [0, end]
    for trace in figure.data:
        assert trace.x and min(trace.x) >= 0 and max(trace.x) <= end
    # 9 sessions in January (the 15th is a holiday, inside the first fortnight: no gap), 10 in
    # June: the data skips trading days after the 9th and the 19th session.
    gaps = sorted({shape.x0 for shape in figure.layout.shapes})  # one line per subplot
    assert gaps == [9 * 390, 19 * 390]
    labels = list(figure.layout.xaxis.ticktext)
    assert labels[0] == "Jan 08<br>2024"
    assert any(label.startswith("Nov") for label in labels)
