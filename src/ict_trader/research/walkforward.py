"""Walk-forward selection over a sweep's runs, and the table of every run's metrics.

Windows count sessions: fold k trains on sessions [k*test, k*test + train) and tests on the
`test` sessions after them; only whole test windows are used. On each train window the
configuration with the best metric is chosen (a missing value ranks last, ties go to the
lower configuration number) and only its following test window is reported; those test
windows, one after another, are the out-of-sample equity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ict_trader.config import AppConfig
from ict_trader.core.calendar import Session
from ict_trader.core.events import TradeView
from ict_trader.errors import ConfigError
from ict_trader.reporting.metrics import Metrics, compute_metrics
from ict_trader.research.grid import Grid
from ict_trader.research.overfitting import Overfitting, Statistic, probability_of_overfitting
from ict_trader.research.stats import deflated_sharpe, expected_max_sharpe, sharpe, skew_kurtosis
from ict_trader.research.sweep import BarSource, Run, TaskResult, load_source, sessions_of

METRICS = ("total_pnl", "sharpe_daily_annualized", "profit_factor", "expectancy", "win_rate")
COLUMNS = (
    "signals",
    "trades",
    "skipped",
    "win_rate",
    "profit_factor",
    "expectancy",
    "total_pnl",
    "max_drawdown",
    "max_drawdown_pct",
    "sharpe_daily_annualized",
    "exposure",
)


@dataclass(frozen=True)
class Fold:
    symbol: str
    index: int
    train: tuple[Session, ...]
    test: tuple[Session, ...]
    chosen: int
    train_value: float | None
    test_metrics: Metrics


@dataclass(frozen=True)
class Honesty:
    """How far to trust the choice, per symbol: the deflated Sharpe ratio of the configuration
    the metric picks over the whole period, and the probability that picking the best of the
    grid overfits (CSCV over every configuration's session returns)."""

    symbol: str
    config: int
    trials: int
    sessions: int
    sharpe: float | None  # per session
    threshold: float | None  # SR0, per session
    probability: float | None
    overfitting: Overfitting | None


@dataclass
class SweepOutcome:
    grid: Grid
    metric: str
    train: int
    test: int
    starting_equity: Decimal
    rows: list[dict[str, Any]]
    folds: list[Fold]
    oos_equity: dict[str, list[tuple[date, float]]]
    honesty: list[Honesty]
    full: dict[tuple[str, int], Metrics]


def metric_value(metrics: Metrics, name: str) -> float | None:
    value = getattr(metrics, name)
    return None if value is None else float(value)


def _window(
    run: Run, sessions: Sequence[Session], signal_days: Sequence[date], starting: Decimal
) -> Metrics:
    days = {s.day for s in sessions}
    first = sessions[0].day
    before = sum((t.pnl for t in run.trades if t.pnl is not None and _day(t) < first), Decimal(0))
    return compute_metrics(
        [t for t in run.trades if _day(t) in days],
        signals=sum(d in days for d in signal_days),
        skipped=sum(d in days for d in run.skip_days),
        sessions=sessions,
        starting_equity=starting + before,
    )


def _day(trade: TradeView) -> date:
    moment = trade.exit_time or trade.entry_time
    assert moment is not None  # closed trades have both
    return moment.date()  # regular hours: the UTC date is the New York date


def _better(value: float | None, best: float | None) -> bool:
    if value is None or math.isnan(value):
        return False
    return best is None or value > best


def analyse(
    grid: Grid,
    results: Sequence[TaskResult],
    *,
    metric: str,
    train: int,
    test: int,
    starting_equity: Decimal,
) -> SweepOutcome:
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r}: one of {', '.join(METRICS)}")
    by_symbol: dict[str, list[TaskResult]] = {}
    for result in results:
        by_symbol.setdefault(result.symbol, []).append(result)
    outcome = SweepOutcome(grid, metric, train, test, starting_equity, [], [], {}, [], {})
    for symbol in sorted(by_symbol):
        group = by_symbol[symbol]
        sessions = group[0].sessions
        runs = sorted((r for g in group for r in g.runs), key=lambda r: r.config)
        signal_days = {r.config: g.signal_days for g in group for r in g.runs}
        folds = _folds(len(sessions), train, test, symbol)
        for run in runs:
            full = _window(run, sessions, signal_days[run.config], starting_equity)
            outcome.full[(symbol, run.config)] = full
            outcome.rows.append(_row(grid, symbol, run.config, -1, "full", sessions, full, False))
        equity = float(starting_equity)
        curve: list[tuple[date, float]] = []
        for index, (train_range, test_range) in enumerate(folds):
            train_sessions = sessions[train_range[0] : train_range[1]]
            test_sessions = sessions[test_range[0] : test_range[1]]
            best: float | None = None
            chosen = runs[0].config
            scored = []
            for run in runs:
                train_metrics = _window(
                    run, train_sessions, signal_days[run.config], starting_equity
                )
                test_metrics = _window(run, test_sessions, signal_days[run.config], starting_equity)
                value = metric_value(train_metrics, metric)
                if _better(value, best):
                    best, chosen = value, run.config
                scored.append((run, train_metrics, test_metrics))
            for run, train_metrics, test_metrics in scored:
                picked = run.config == chosen
                outcome.rows.append(
                    _row(
                        grid,
                        symbol,
                        run.config,
                        index,
                        "train",
                        train_sessions,
                        train_metrics,
                        picked,
                    )
                )
                outcome.rows.append(
                    _row(
                        grid, symbol, run.config, index, "test", test_sessions, test_metrics, picked
                    )
                )
                if picked:
                    outcome.folds.append(
                        Fold(
                            symbol, index, train_sessions, test_sessions, chosen, best, test_metrics
                        )
                    )
                    daily = {s.day: 0.0 for s in test_sessions}
                    for trade in run.trades:
                        if _day(trade) in daily and trade.pnl is not None:
                            daily[_day(trade)] += float(trade.pnl)
                    for day in sorted(daily):
                        equity += daily[day]
                        curve.append((day, round(equity, 2)))
        outcome.oos_equity[symbol] = curve
        outcome.honesty.append(_honesty(symbol, runs, sessions, starting_equity, outcome, metric))
    return outcome


def check_sources(
    sources: Sequence[BarSource], settings: AppConfig, *, train: int, test: int
) -> None:
    """Load every source here, before any work is sent out, so that bad data, or too few
    sessions for one train and one test window, is refused in one line and not after the
    whole grid has run (or inside a worker)."""
    for source in sources:
        symbol, _ = load_source(source)
        _folds(len(sessions_of(source)), train, test, symbol or settings.engine.symbols[0])


def _folds(
    sessions: int, train: int, test: int, symbol: str
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    if train < 1 or test < 1:
        raise ConfigError("--train and --test must be at least 1 session")
    if sessions == 0:
        raise ConfigError(f"{symbol}: no sessions between --from and --to")
    if train + test > sessions:
        raise ConfigError(
            f"--train {train} --test {test} needs at least {train + test} sessions, "
            f"{symbol} has {sessions}"
        )
    folds = []
    start = 0
    while start + train + test <= sessions:
        folds.append(((start, start + train), (start + train, start + train + test)))
        start += test
    return folds


def daily_returns(run: Run, sessions: Sequence[Session], starting: Decimal) -> list[float]:
    daily = {s.day: Decimal(0) for s in sessions}
    for trade in run.trades:
        if trade.pnl is not None and _day(trade) in daily:
            daily[_day(trade)] += trade.pnl
    equity = starting
    returns = []
    for day in sorted(daily):
        returns.append(float(daily[day] / equity) if equity > 0 else 0.0)
        equity += daily[day]
    return returns


def _honesty(  # noqa: PLR0917
    symbol: str,
    runs: Sequence[Run],
    sessions: Sequence[Session],
    starting: Decimal,
    outcome: SweepOutcome,
    metric: str,
) -> Honesty:
    best: float | None = None
    position = 0
    for index, run in enumerate(runs):
        value = metric_value(outcome.full[(symbol, run.config)], metric)
        if _better(value, best):
            best, position = value, index
    chosen = runs[position]
    every = [daily_returns(run, sessions, starting) for run in runs]
    overfitting = probability_of_overfitting(every, statistic=pbo_statistic(metric))
    ratios = [sharpe(returns) for returns in every]
    known = [r for r in ratios if r is not None]
    returns = every[position]
    ratio = sharpe(returns)
    if ratio is None or len(known) < 1:
        return Honesty(
            symbol, chosen.config, len(runs), len(sessions), ratio, None, None, overfitting
        )
    mean = sum(known) / len(known)
    variance = sum((r - mean) ** 2 for r in known) / (len(known) - 1) if len(known) > 1 else 0.0
    skewness, kurtosis = skew_kurtosis(returns)
    return Honesty(
        symbol,
        chosen.config,
        len(runs),
        len(sessions),
        ratio,
        expected_max_sharpe(len(runs), variance),
        deflated_sharpe(
            ratio,
            trials=len(runs),
            trial_variance=variance,
            observations=len(returns),
            skewness=skewness,
            kurtosis=kurtosis,
        ),
        overfitting,
    )


def pbo_statistic(metric: str) -> Statistic:
    """What CSCV ranks configurations by, from session returns: the mean return for
    `total_pnl` (its P&L relative to each session's starting equity), the Sharpe ratio
    for every other metric (those of trades — profit factor, expectancy, win rate — have no
    session-return form; the Sharpe ratio is the paper's own example)."""
    return "mean" if metric == "total_pnl" else "sharpe"


def _row(  # noqa: PLR0917
    grid: Grid,
    symbol: str,
    config: int,
    fold: int,
    part: str,
    sessions: Sequence[Session],
    metrics: Metrics,
    chosen: bool,
) -> dict[str, Any]:
    configuration = grid.configurations[config]
    row: dict[str, Any] = {"symbol": symbol, "config": config}
    for name, value in configuration.values:
        row[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    if grid.trades_options:  # where each row's option premiums came from ("" for shares)
        row["premiums"] = configuration.premiums or ""
    row.update(
        fold=fold,
        part=part,
        chosen=chosen,
        first_session=sessions[0].day.isoformat(),
        last_session=sessions[-1].day.isoformat(),
        sessions=len(sessions),
    )
    for column in COLUMNS:
        value = getattr(metrics, column)
        row[column] = (
            None if value is None else (value if isinstance(value, int) else round(float(value), 8))
        )
    return row
