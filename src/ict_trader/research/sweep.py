"""Run a grid over symbols, select by walk-forward, and tabulate every run.

Each configuration is backtested once per symbol over the whole period; its windows are
scored from the trades that closed in their sessions, starting from the equity the run had
when the window began. The signals of one set of signal parameters are detected once and
replayed to every exit and profile variant (`SignalReplay`), and each run skips the bars its
engine is flat through.

Work goes out in tasks of one symbol, one signal-parameter group and at most
`VARIANTS_PER_TASK` of its configurations, which carry only settings: each worker process
loads a symbol's bars the first time it needs them and keeps them (`load_source`), and
detects a group's signals the first time it needs them and keeps them too (`signals_of`), so a
group split over many tasks (to keep every worker busy) is still detected once per worker.
Locally the tasks run in a process pool on every core; with a cluster address on Dask
distributed workers, which must see the same data path.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from ict_trader.config import AppConfig
from ict_trader.core.calendar import Session
from ict_trader.core.events import TradeView
from ict_trader.errors import ConfigError
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.marketdata.folder import load_folder
from ict_trader.research.grid import Configuration, Grid
from ict_trader.runtime.backtest import run_backtest, select_bars
from ict_trader.signals import Signal, SignalParams, detect_signals
from ict_trader.signals.detector import SignalReplay

METRICS = ("total_pnl", "sharpe_daily_annualized", "profit_factor", "expectancy", "win_rate")


@dataclass(frozen=True)
class BarSource:
    """Where a worker finds one symbol's bars: a file, or a symbol of a downloaded folder."""

    path: Path
    symbol: str | None
    tz: str | None
    first: date | None
    last: date | None


@dataclass(frozen=True)
class Task:
    source: BarSource
    settings: AppConfig  # what the grid does not set: the symbol, for one
    signal: SignalParams
    variants: tuple[Configuration, ...]  # all with `signal`: one detection for them all


@dataclass(frozen=True)
class Run:
    config: int
    trades: tuple[TradeView, ...]
    skip_days: tuple[date, ...]


@dataclass(frozen=True)
class TaskResult:
    symbol: str
    sessions: tuple[Session, ...]
    signal_days: tuple[date, ...]
    runs: tuple[Run, ...]


_LOADED: dict[BarSource, tuple[str, BarFile]] = {}
_LOCK = threading.Lock()
LOADS: list[BarSource] = []  # every load this process made: the tests count them


def load_source(source: BarSource) -> tuple[str, BarFile]:
    with _LOCK:
        if source not in _LOADED:
            LOADS.append(source)
            if source.path.is_dir():
                chosen = [source.symbol] if source.symbol else []
                bar_file = load_folder(source.path, chosen, first=source.first, last=source.last)
            else:
                bar_file = load_bars(source.path, tz=source.tz)
            bars = select_bars(bar_file.bars, source.first, source.last)
            bar_file = replace(bar_file, bars=bars)
            _LOADED[source] = (bar_file.symbol or source.symbol or "", bar_file)
        return _LOADED[source]


_DETECTED: dict[tuple[BarSource, SignalParams], tuple[Signal, ...]] = {}


def signals_of(source: BarSource, params: SignalParams) -> tuple[Signal, ...]:
    """The signals of `params` in `source`'s bars, detected once per process."""
    key = (source, params)
    with _LOCK:
        found = _DETECTED.get(key)
    if found is None:
        _, bar_file = load_source(source)
        found = tuple(detect_signals(bar_file.bars, bar_file.calendar, params))
        with _LOCK:
            found = _DETECTED.setdefault(key, found)
    return found


def loads() -> int:
    """How many bar sets this process has loaded (for the once-per-worker test)."""
    return len(LOADS)


def sessions_of(source: BarSource) -> tuple[Session, ...]:
    """Every session of `source`'s bars, computed once per process."""
    with _LOCK:
        found = _SESSIONS.get(source)
    if found is None:
        _, bar_file = load_source(source)
        days = sorted({bar.time.date() for bar in bar_file.bars})  # regular hours: NY dates
        found = tuple(s for s in map(bar_file.calendar.session_on, days) if s is not None)
        with _LOCK:
            found = _SESSIONS.setdefault(source, found)
    return found


_SESSIONS: dict[BarSource, tuple[Session, ...]] = {}


def run_task(task: Task) -> TaskResult:
    symbol, bar_file = load_source(task.source)
    calendar = bar_file.calendar
    signals = signals_of(task.source, task.signal)
    bars = bar_file.bars  # the shell skips every bar the engine is flat through
    base = task.settings
    if symbol:
        base = replace(base, engine=replace(base.engine, symbols=(symbol,)))
    runs = []
    for variant in task.variants:
        settings = replace(
            base,
            signal=task.signal,
            engine=replace(
                base.engine, exits=variant.exits, profiles=(variant.profile,), risk=variant.risk
            ),
            simulation=variant.simulation,
        )
        result = run_backtest(
            bars,
            calendar,
            settings,
            detector=SignalReplay(calendar, signals),
            equity_curve=False,  # a sweep scores trades; no run's equity curve is shown
        )
        runs.append(
            Run(
                config=variant.index,
                trades=tuple(result.closed_trades()),
                skip_days=tuple(s.time.date() for s in result.skips),
            )
        )
    return TaskResult(
        symbol=symbol or base.engine.symbols[0],
        sessions=sessions_of(task.source),
        signal_days=tuple(s.time.date() for s in signals),
        runs=tuple(runs),
    )


VARIANTS_PER_TASK = 8  # small enough to spread one signal group over every worker


def tasks_for(
    grid: Grid,
    sources: Sequence[BarSource],
    settings: AppConfig,
    *,
    per_task: int = VARIANTS_PER_TASK,
) -> list[Task]:
    tasks = []
    for source in sources:
        for signal, configurations in grid.signal_groups():
            for start in range(0, len(configurations), per_task):
                chunk = tuple(configurations[start : start + per_task])
                tasks.append(Task(source, settings, signal, chunk))
    return tasks


def execute(
    tasks: Sequence[Task],
    *,
    workers: int | None = None,
    cluster: str | None = None,
    on_start: Callable[[], None] | None = None,
) -> list[TaskResult]:
    """Every task's result, in the tasks' order: inline with one worker, in a local process
    pool, or on the Dask cluster at `cluster`. `on_start` is called once the workers are
    there (the cluster reached), so that a refusal is still the only line a user sees."""
    if cluster is not None:
        return _on_cluster(tasks, cluster, on_start)
    if on_start is not None:
        on_start()
    count = workers or os.cpu_count() or 1
    if count == 1 or len(tasks) == 1:
        return [run_task(task) for task in tasks]
    with ProcessPoolExecutor(max_workers=min(count, len(tasks)), mp_context=_context()) as pool:
        return list(pool.map(run_task, tasks))


def _context() -> multiprocessing.context.BaseContext:
    """Worker processes that start fast and safely: on Linux forked from a fork server that
    imported this module once (a second of imports saved per worker; Python 3.14's default
    there), never from this process, which may run threads (a progress bar's); elsewhere
    spawned (macOS's system libraries are not safe to fork; Windows cannot)."""
    if sys.platform != "linux":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


CONNECT_TIMEOUT = 10  # seconds to reach the scheduler


def _on_cluster(
    tasks: Sequence[Task], address: str, on_start: Callable[[], None] | None
) -> list[TaskResult]:
    try:
        from distributed import Client  # noqa: PLC0415 - optional: `pip install ict-trader[cluster]`
    except ImportError:
        raise ConfigError(
            "--cluster needs Dask distributed: pip install 'ict-trader[cluster]'"
        ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]
    except ValueError as exc:  # Dask's address parser: no port, an unknown scheme
        raise ConfigError(
            f"--cluster {address!r}: not a scheduler address like tcp://HOST:8786 ({exc})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"--cluster {address}: cannot reach the scheduler: {exc}") from None
    try:
        if on_start is not None:
            on_start()
        futures = [client.submit(run_task, task, pure=False) for task in tasks]
        results: list[TaskResult] = client.gather(futures)  # type: ignore[no-untyped-call]
        return results
    finally:
        client.close()  # type: ignore[no-untyped-call]
