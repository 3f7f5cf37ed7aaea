"""A backtest detects first and then skips the bars the engine is flat through (issue #13):
the same trades, signals, skips and equity curve as the engine shown every bar."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.engine import Engine
from ict_trader.core.events import AccountUpdated
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.runtime.backtest import run_backtest
from ict_trader.signals import IctDetector, detect_signals
from ict_trader.signals.detector import SignalReplay

DEV_YEAR = Path(__file__).parent / "data" / "qqq_1min_dev.csv.gz"


@pytest.fixture(scope="module")
def dev_year() -> BarFile:
    return load_bars(DEV_YEAR)


def _every_bar(bar: Bar) -> None:
    """An `on_bar` callback: the shell then shows the engine every bar (no skipping)."""


def _configs() -> list[AppConfig]:
    base = AppConfig()
    risk = base.engine.risk
    return [
        base,
        # shorter holds and a nearer target: more trades, more exits of every kind
        replace(
            base,
            engine=replace(
                base.engine,
                exits=replace(
                    base.engine.exits, target_atr_multiple=Decimal(1), max_hold_minutes=15
                ),
            ),
        ),
        # loss limits that trip: a halt and the entries it skips
        replace(
            base,
            engine=replace(
                base.engine,
                risk=replace(risk, daily_loss_limit=Decimal(40), rapid_loss=Decimal(25)),
            ),
        ),
    ]


def _same(skipped: BacktestResult, full: BacktestResult) -> None:
    assert skipped.closed_trades() == full.closed_trades()
    assert skipped.signals == full.signals
    assert skipped.skips == full.skips
    assert skipped.equity_curve == full.equity_curve
    assert skipped.metrics == full.metrics


@pytest.mark.parametrize("index", range(3))
def test_skipping_flat_bars_changes_nothing(dev_year: BarFile, index: int) -> None:
    config = _configs()[index]
    skipped = run_backtest(dev_year.bars, dev_year.calendar, config)
    full = run_backtest(dev_year.bars, dev_year.calendar, config, on_bar=_every_bar)
    assert len(full.closed_trades()) > 20
    _same(skipped, full)
    if index == 2:  # the limits did trip, and halted trading
        assert any("loss" in skip.reason for skip in full.skips)


@pytest.mark.parametrize("index", range(4))
def test_a_run_without_an_equity_curve_decides_the_same(dev_year: BarFile, index: int) -> None:
    """A sweep's runs show the engine the account only when it may use it (an entry, a new
    peak, a drawdown at the limit): the same trades, signals and skips, and no curve."""
    configs = _configs()
    base = configs[0]
    drawdown = replace(base.engine.risk, max_drawdown_pct=Decimal("0.1"))
    configs.append(replace(base, engine=replace(base.engine, risk=drawdown)))
    config = configs[index]
    lean = run_backtest(dev_year.bars, dev_year.calendar, config, equity_curve=False)
    full = run_backtest(dev_year.bars, dev_year.calendar, config, on_bar=_every_bar)
    assert lean.closed_trades() == full.closed_trades()
    assert lean.signals == full.signals
    assert lean.skips == full.skips
    assert lean.metrics == full.metrics
    assert lean.equity_curve == [] and full.equity_curve
    if index == 3:  # the drawdown limit tripped, at the same minute on both sides
        assert any("drawdown" in skip.reason for skip in full.skips)


def test_the_engine_needs_every_bar_unless_it_knows_the_signals(dev_year: BarFile) -> None:
    config = AppConfig()
    bars, calendar = dev_year.bars, dev_year.calendar
    detecting = Engine(config.engine, IctDetector(calendar, config.signal))
    first = bars[0].time
    assert detecting.next_needed_bar(first) == first  # a live detector must see each bar

    signals = detect_signals(bars, calendar, config.signal)
    replaying = Engine(config.engine, SignalReplay(calendar, signals))
    assert replaying.next_needed_bar(first) == signals[0].time  # flat: the next signal's bar
    assert replaying.next_needed_bar(signals[0].time) == signals[0].time
    after_last = signals[-1].time + timedelta(minutes=1)
    assert replaying.next_needed_bar(after_last) is None  # no signal ahead: no bar needed

    # with a trade open it needs every bar again
    equity = config.simulation.starting_equity
    replaying.handle(AccountUpdated(first, equity, equity, equity))
    for bar in bars:
        if bar.time > signals[0].time:
            break
        replaying.on_bar(bar)
    assert replaying.open_trades
    moment = signals[0].time + timedelta(minutes=1)
    assert replaying.next_needed_bar(moment) == moment


def test_several_symbols_skip_the_same_way() -> None:
    """IWM and DIA together (real bars, DIA with missing minutes): each symbol's signals are
    detected first; the minutes both are flat through are skipped; the same results."""
    data = Path(__file__).parent / "data"
    own = {}
    calendar = None
    for symbol in ("IWM", "DIA"):
        bar_file = load_bars(data / f"{symbol.lower()}_1min_2025q3.csv.gz")
        calendar = bar_file.calendar
        own[symbol] = [bar._replace(symbol=symbol) for bar in bar_file.bars]
    assert calendar is not None
    merged = sorted([*own["IWM"], *own["DIA"]], key=lambda bar: (bar.time, bar.symbol))
    base = AppConfig()
    config = replace(base, engine=replace(base.engine, symbols=("IWM", "DIA")))
    skipped = run_backtest(merged, calendar, config)
    full = run_backtest(merged, calendar, config, on_bar=_every_bar)
    assert {trade.symbol for trade in full.closed_trades()} == {"IWM", "DIA"}
    _same(skipped, full)


def test_a_bar_of_a_symbol_not_traded_is_still_refused(dev_year: BarFile) -> None:
    """Detecting first must not let such a bar slip through unseen among the skipped ones."""
    config = AppConfig()  # trades QQQ
    bars = list(dev_year.bars[:2000])
    bars[1000] = bars[1000]._replace(symbol="SPY")
    with pytest.raises(ValueError, match="a bar of SPY"):
        run_backtest(bars, dev_year.calendar, config)


def test_progress_counts_every_bar_skipped_or_not(dev_year: BarFile) -> None:
    """The command line's progress bar: every bar is counted once, skipped or traded."""
    told: list[int] = []
    result = run_backtest(dev_year.bars, dev_year.calendar, AppConfig(), progress=told.append)
    assert sum(told) == len(dev_year.bars)
    assert len(told) > 10  # reported as it goes, not only at the end
    shown: list[int] = []
    run_backtest(
        dev_year.bars[:10_000],
        dev_year.calendar,
        AppConfig(),
        on_bar=_every_bar,
        progress=shown.append,
    )
    assert sum(shown) == 10_000
    assert result.closed_trades()
