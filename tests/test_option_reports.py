"""Backtest reports with option trades: the JSON, the terminal summary and the HTML report name
each contract, count contracts, give premiums in dollars (x 100) and the greeks at entry, split
shares from options, and say "model-priced" wherever a modelled premium made a figure — and a
share-only backtest reports exactly as before (issue #12).

The share trades are the bundled sample's real backtest; beside them two option profiles, one
priced by the model and one by a quote file, each with a put bought on 2024-07-30 (the day the
sample signals short at 11:01 New York).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from ict_trader.config import AppConfig
from ict_trader.core.contracts import OptionDetails, PremiumSource
from ict_trader.core.events import ExitReason, TradeView
from ict_trader.core.strategy import InstrumentChoice, StrategyProfile
from ict_trader.marketdata.barfile import load_bars
from ict_trader.reporting.backtest_result import BacktestResult, all_metrics
from ict_trader.reporting.backtest_summary import summary_table
from ict_trader.reporting.report_html import _trades_figure, render_html_report
from ict_trader.runtime.backtest import run_backtest

PUT = "QQQ240730P00460000"
PUT_NAME = "QQQ 2024-07-30 460 put"
ENTRY = datetime(2024, 7, 30, 15, 2, tzinfo=UTC)
EXIT = datetime(2024, 7, 30, 15, 40, tzinfo=UTC)
SHARE_KEYS = {
    "trade_id",
    "signal_id",
    "profile",
    "symbol",
    "direction",
    "shares",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "target_price",
    "stop_price",
    "pnl",
    "commission",
    "entry_order_id",
}


def put(profile: str, source: PremiumSource) -> TradeView:
    """4 puts bought at 1.25 and sold at 1.90: +260.00."""
    return TradeView(
        trade_id=f"ict-QQQ-202407301501s-{profile}",
        signal_id="s",
        profile=profile,
        symbol=PUT,
        direction="short",
        status="closed",
        planned_qty=4,
        qty=4,
        entry_order_id=f"alpaca-{profile}-entry",
        entry_price=Decimal("1.25"),
        entry_time=ENTRY,
        target_price=None,
        stop_price=None,
        exit_price=Decimal("1.90"),
        exit_time=EXIT,
        exit_reason=ExitReason.TARGET,
        pnl=Decimal("260.00"),
        commission=Decimal(0),
        option=OptionDetails(
            source,
            Decimal("1.22"),
            Decimal("1.28"),
            -0.45,
            0.31,
            Decimal("460.10"),
            Decimal("455.00"),
        ),
    )


@pytest.fixture(scope="module")
def shares_only(sample_csv: Path) -> BacktestResult:
    bar_file = load_bars(sample_csv)
    return run_backtest(bar_file.bars, bar_file.calendar, AppConfig())


@pytest.fixture(scope="module")
def mixed(shares_only: BacktestResult) -> BacktestResult:
    config = shares_only.config
    options = tuple(
        StrategyProfile(name, Decimal("0.02"), instrument=InstrumentChoice.OPTION)
        for name in ("puts", "fileputs")
    )
    config = replace(
        config, engine=replace(config.engine, profiles=(*config.engine.profiles, *options))
    )
    trades = dict(shares_only.trades)
    for name, source in (("puts", PremiumSource.MODEL), ("fileputs", PremiumSource.FILE)):
        trade = put(name, source)
        trades[trade.trade_id] = trade
    result = BacktestResult(
        config=config,
        bars=shares_only.bars,
        sessions=shares_only.sessions,
        signals=shares_only.signals,
        skips=shares_only.skips,
        trades=trades,
        equity_curve=shares_only.equity_curve,
    )
    result.metrics = all_metrics(result)
    return result


def test_the_json_gives_option_trades_their_contract_and_premiums(mixed: BacktestResult) -> None:
    report = json.loads(json.dumps(mixed.to_json()))
    by_profile = {t["profile"]: t for t in report["trades"]}
    model = by_profile["puts"]
    assert (model["symbol"], model["shares"], model["contracts"]) == (PUT, None, 4)
    option = model["option"]
    assert option["contract"] == PUT_NAME
    assert (option["premium_paid"], option["premium_received"]) == (500.0, 760.0)
    assert option["premium_paid_per_contract"] == 125.0
    assert (option["delta"], option["iv"]) == (-0.45, 0.31)
    assert (option["source"], option["label"]) == ("model", "model-priced")
    assert by_profile["fileputs"]["option"]["label"] is None
    assert set(by_profile["conservative"]) == SHARE_KEYS  # a share trade's keys, as before
    assert report["options"] == {
        "trades": 2,
        "premium_sources": {"file": 1, "model": 1},
        "label": "model-priced",
        "model_priced": ["puts", "all", "all options"],
    }
    # shares and options side by side: each kind's totals apart
    assert report["metrics"]["all options"]["trades"] == 2
    assert report["metrics"]["all options"]["total_pnl"] == 520.0
    shares = report["metrics"]["all shares"]
    assert shares["trades"] == report["metrics"]["all"]["trades"] - 2


def test_a_share_only_json_has_no_option_fields(shares_only: BacktestResult) -> None:
    report = shares_only.to_json()
    assert "options" not in report
    assert set(report["metrics"]) == {"conservative", "aggressive", "all"}
    assert all(set(trade) == SHARE_KEYS for trade in report["trades"])


def summary_text(result: BacktestResult) -> str:
    console = Console(file=io.StringIO(), width=400, color_system=None)
    console.print(summary_table(result))
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def test_the_summary_labels_the_modelled_columns(mixed: BacktestResult) -> None:
    text = summary_text(mixed)
    assert (
        "2 option trades, premiums from a quote file and the pricing model (model-priced)" in text
    )
    header = next(line for line in text.splitlines() if "conservative" in line)
    assert "puts (model-priced)" in header
    assert "all (model-priced)" in header and "all options (model-priced)" in header
    assert "fileputs (model-priced)" not in header and "fileputs" in header
    assert "conservative (model-priced)" not in header
    assert "all shares (model-priced)" not in header and "all shares" in header


def test_a_share_only_summary_says_nothing_of_options(shares_only: BacktestResult) -> None:
    text = summary_text(shares_only)
    assert "model-priced" not in text and "option" not in text


def test_the_html_report_shows_the_contracts_and_labels_modelled_figures(
    mixed: BacktestResult,
) -> None:
    page = render_html_report(mixed)
    assert f"{PUT_NAME} ({PUT})" in page
    assert "<th>premium paid $</th>" in page and "<th>delta, IV at entry</th>" in page
    rows = {
        name: next(row for row in page.split("<tr>") if f"ict-QQQ-202407301501s-{name}<" in row)
        for name in ("puts", "fileputs")
    }
    assert "<td>500.00" in rows["puts"] and "<td>760.00" in rows["puts"]
    assert "delta -0.45, IV 31.0%" in rows["puts"]
    assert rows["puts"].count('<span class="modelled">model-priced</span>') == 5
    assert "model-priced" not in rows["fileputs"] and "<td>file</td>" in rows["fileputs"]
    assert 'id="premiums"' in page and "come from modelled premiums" in page
    assert "<th>puts (model-priced)</th>" in page and "<th>fileputs</th>" in page


def test_option_trades_are_drawn_at_the_underlyings_price(mixed: BacktestResult) -> None:
    figure = _trades_figure(mixed)
    assert figure is not None
    entries = [t for t in figure.data if t.name == "entry" and PUT_NAME in " ".join(t.text)]
    [day] = entries
    marks = {text.split(" ")[0]: y for text, y in zip(day.text, day.y, strict=True)}
    assert marks["puts"] == marks["fileputs"] == 460.10  # the underlying, not the premium 1.25
    assert any("4 contracts @ 1.25 premium (model-priced)" in text for text in day.text)
    targets = next(t for t in figure.data if t.name == "target" and 455.0 in (t.y or ()))
    assert targets is not None


def test_a_share_only_html_report_has_no_option_columns(shares_only: BacktestResult) -> None:
    page = render_html_report(shares_only)
    assert "model-priced" not in page and "premium paid" not in page
    assert 'id="premiums"' not in page
