"""A grid of 200 configurations on the dev year: `ict-trader sweep`'s engine vs backtesting.py's
`Backtest.optimize` on the same grid, and our sweep on a local Dask cluster of 1 and 2 workers.

The grid is what backtesting.py's model can express: the exits (20 target multiples x 10 time
limits) for one profile. Its strategy (benchmarks/backtesting_peer.py) trades signals it is
given; it cannot vary the detector, so the signals are detected once, by us, and its time is
added to the peer's as in bench_backtest.py (our sweep detects once per signal group too). A
grid that varies the detector is timed on our side alone.

Both sides must agree before any figure means something: backtesting.py's final equity for
every one of the 200 configurations equals ours (starting equity + the P&L of our trades) to
the cent, and for one configuration the trades themselves are the same (entry and exit bar,
reason, shares, P&L). Timed:
- ours: the grid's backtests (`execute`), and with the walk-forward analysis (`analyse`: every
  window's metrics, the deflated Sharpe ratio, PBO), inline (1 process) and over 2 processes;
- backtesting.py: `Backtest.optimize(maximize="Equity Final [$]", return_heatmap=True)` with
  its own process pool of 1 and of 2 processes (its default is every core);
- our sweep on a `distributed.LocalCluster` of 1 and then 2 worker processes (each started
  fresh, so each worker's loading of the bars is included), and the speed-up, beside the
  speed-up the machine itself gave two plain Python processes just before and after (on a
  machine shared with other work a core may not be free).
One-process runs are also timed in CPU seconds (the peer then runs in a thread of this
process), which other work on the machine disturbs far less than the wall clock.
Prints figures; asserts nothing about time; exits 1 if the two sides disagree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.dummy
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import backtesting  # noqa: E402
from backtesting import Backtest  # noqa: E402

from benchmarks import backtesting_peer  # noqa: E402
from benchmarks.backtesting_peer import IctPeerStrategy, PeerTrade, frame_of  # noqa: E402
from ict_trader.config import AppConfig  # noqa: E402
from ict_trader.core.bars import Bar  # noqa: E402
from ict_trader.core.calendar import NyseCalendar  # noqa: E402
from ict_trader.core.events import TradeView  # noqa: E402
from ict_trader.marketdata.barfile import load_bars  # noqa: E402
from ict_trader.research.grid import Grid, parse_grid  # noqa: E402
from ict_trader.research.sweep import BarSource, TaskResult, execute, tasks_for  # noqa: E402
from ict_trader.research.walkforward import analyse  # noqa: E402
from ict_trader.signals import Signal, detect_signals  # noqa: E402

DEV_YEAR = REPO / "tests" / "data" / "qqq_1min_dev.csv.gz"
TARGETS = [Decimal(10 + 5 * i) / 10 for i in range(20)]  # 1.0, 1.5, ... 10.5
HOLDS = [10 * (i + 1) for i in range(10)]  # 10 ... 100 minutes
PROFILE = backtesting_peer.PROFILES[0]  # conservative, 3 %: the peer trades one profile here
GOAL_RATIO = 10.0
# A grid the peer cannot express: the detector's parameters vary too (2 x 2 x 2 x 5 x 5 = 200).
DETECTOR_GRID: dict[str, Any] = {
    "signal": {
        "displacement_atr": [1.25, 1.5],
        "swing_length": [3, 4],
        "mss_window": [15, 20],
    },
    "exits": {"target_atr_multiple": [2, 3, 4, 5, 6], "max_hold_minutes": [20, 40, 60, 80, 100]},
    "profiles": [{"name": PROFILE[0], "allocation": float(PROFILE[1])}],
}


def exit_grid() -> Grid:
    return parse_grid(
        {
            "exits": {
                "target_atr_multiple": [float(t) for t in TARGETS],
                "max_hold_minutes": HOLDS,
            },
            "profiles": [{"name": PROFILE[0], "allocation": float(PROFILE[1])}],
        },
        AppConfig(),
    )


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


@dataclass
class Took:
    """Wall-clock seconds, and this process's CPU seconds: on a machine shared with other work
    the CPU time of a one-process run is the steadier figure (it does not count waiting for a
    core); work done in other processes does not show in it."""

    wall: float
    cpu: float


@contextmanager
def clock() -> Iterator[Took]:
    took = Took(0.0, 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    yield took
    took.wall, took.cpu = time.perf_counter() - wall, time.process_time() - cpu


def _spin(_: int) -> float:
    total = 0
    for i in range(30_000_000):
        total += i
    return float(total)


def free_parallelism() -> float:
    """How many cores this run can really use at the moment: the speed-up of two plain Python
    loops in 2 processes over the same loop alone (2.0 on an idle 2-core machine; about 1.0
    when other work holds a core). A speed-up from 1 to 2 workers can be no better."""
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        pool.map(_spin, [0, 1])  # the processes started
        alone, _ = timed(lambda: _spin(0))
        both, _ = timed(lambda: pool.map(_spin, [0, 1]))
    return 2 * alone / both


# ---------------------------------------------------------------------------- ours


def ours(grid: Grid, source: BarSource, **where: Any) -> tuple[Took, Took, list[TaskResult]]:
    """The time of the backtests, the time with the walk-forward analysis, the results."""
    tasks = tasks_for(grid, [source], AppConfig())
    with clock() as everything:
        with clock() as runs:
            results = execute(tasks, **where)
        analyse(
            grid,
            results,
            metric="total_pnl",
            train=60,
            test=20,
            starting_equity=AppConfig().simulation.starting_equity,
        )
    return runs, everything, results


def on_cluster(grid: Grid, source: BarSource, workers: int) -> float:
    from distributed import Client, LocalCluster  # noqa: PLC0415 - the bench group has it

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),  # type: ignore[no-untyped-call]
    ):
        runs, _, _ = ours(grid, source, cluster=cluster.scheduler_address)
    return runs.wall


# ---------------------------------------------------------------------------- backtesting.py


class SweepPeer(IctPeerStrategy):
    """The peer with its fixed inputs as class attributes, set before `optimize` forks its
    workers, so that only the exit parameters travel with each run."""

    signals: ClassVar[dict[int, Signal]] = {}
    flatten_at: ClassVar[list[datetime]] = []
    bar_times: ClassVar[list[datetime]] = []
    next_open: ClassVar[list[float]] = []


def peer_backtest(bars: Sequence[Bar], calendar: NyseCalendar, signals: Sequence[Signal]) -> Any:
    """backtesting.py set up as `backtesting_peer.run_peer` sets it up, for one profile."""
    backtesting_peer.PROFILES = (PROFILE,)
    flatten: list[datetime] = []
    closes: dict[date, datetime] = {}
    for bar in bars:
        day = bar.time.date()
        if day not in closes:
            session = calendar.session_at(bar.time)
            assert session is not None
            closes[day] = session.close - timedelta(minutes=5)
        flatten.append(closes[day])
    index_of = {bar.time: i for i, bar in enumerate(bars)}
    SweepPeer.signals = {index_of[s.time]: s for s in signals}
    SweepPeer.flatten_at = flatten
    SweepPeer.bar_times = [bar.time for bar in bars]
    SweepPeer.next_open = [bar.open for bar in bars[1:]]
    return Backtest(
        frame_of(bars),
        SweepPeer,
        cash=100_000,
        commission=0.0,
        margin=1.0,
        trade_on_close=False,
        hedging=False,
        exclusive_orders=False,
        finalize_trades=True,
    )


@contextmanager
def peer_processes(count: int) -> Iterator[None]:
    """backtesting.py's optimize takes its pool from `backtesting.Pool` (every core by
    default, forked): here `count` forked processes, or with 1 a single thread of this
    process (backtesting.py's own fallback), so that its CPU time is counted here."""
    default = backtesting.Pool

    def pool(processes: int | None = None, *args: Any) -> Any:
        if count == 1:
            return multiprocessing.dummy.Pool(1, *args)
        return multiprocessing.get_context("fork").Pool(count, *args)

    backtesting.Pool = pool
    try:
        yield
    finally:
        backtesting.Pool = default


def peer_optimize(backtest: Any, processes: int) -> tuple[Took, Any]:
    with warnings.catch_warnings(), peer_processes(processes), clock() as took:
        warnings.simplefilter("ignore")  # its own progress-bar warnings
        _, heatmap = backtest.optimize(
            target_multiple=TARGETS,
            max_hold=[timedelta(minutes=m) for m in HOLDS],
            maximize="Equity Final [$]",
            return_heatmap=True,
        )
    return took, heatmap


def peer_trades(backtest: Any, bars: Sequence[Bar], target: Decimal, hold: int) -> list[PeerTrade]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest.run(target_multiple=target, max_hold=timedelta(minutes=hold))
    trades = []
    for row in stats._trades.itertuples():
        size = int(row.Size)
        entry = Decimal(repr(float(row.EntryPrice))).quantize(Decimal("0.0001"))
        exit_ = Decimal(repr(float(row.ExitPrice))).quantize(Decimal("0.0001"))
        key = (int(row.EntryBar), str(row.Tag))
        trades.append(
            PeerTrade(
                profile=str(row.Tag),
                direction="long" if size > 0 else "short",
                shares=abs(size),
                entry_time=bars[int(row.EntryBar)].time,
                exit_time=bars[int(row.ExitBar)].time,
                entry_price=entry,
                exit_price=exit_,
                exit_reason=stats._strategy.exit_requests.get(key, "target"),
                pnl=(exit_ - entry) * size,
            )
        )
    return trades


def same_trade(mine: TradeView, theirs: PeerTrade) -> bool:
    assert mine.exit_reason is not None
    return (
        mine.direction,
        mine.qty,
        mine.entry_time,
        mine.exit_time,
        mine.exit_reason.value,
        mine.pnl,
    ) == (
        theirs.direction,
        theirs.shares,
        theirs.entry_time,
        theirs.exit_time,
        theirs.exit_reason,
        theirs.pnl,
    )


# ---------------------------------------------------------------------------- main


@dataclass
class Check:
    equal_final_equity: int
    configurations: int
    worst_difference: float
    trades_compared: int
    trades_equal: bool


def check(
    grid: Grid, results: list[TaskResult], heatmap: Any, backtest: Any, bars: Sequence[Bar]
) -> Check:
    runs = {run.config: run for result in results for run in result.runs}
    starting = float(AppConfig().simulation.starting_equity)
    equal, worst = 0, 0.0
    for configuration in grid.configurations:
        chosen = dict(configuration.values)
        target = TARGETS[[float(t) for t in TARGETS].index(chosen["exits.target_atr_multiple"])]
        hold = timedelta(minutes=chosen["exits.max_hold_minutes"])
        pnl = sum(float(t.pnl) for t in runs[configuration.index].trades if t.pnl is not None)
        difference = abs(float(heatmap[(target, hold)]) - (starting + pnl))
        worst = max(worst, difference)
        equal += difference < 0.005
    # one configuration trade by trade: the defaults (5 x ATR, 60 minutes)
    default = next(
        c
        for c in grid.configurations
        if dict(c.values)
        == {
            "exits.target_atr_multiple": 5.0,
            "exits.max_hold_minutes": 60,
            "profile": PROFILE[0],
        }
    )
    mine = runs[default.index].trades
    theirs = peer_trades(backtest, bars, Decimal(5), 60)
    same = len(mine) == len(theirs) and all(
        same_trade(a, b)
        for a, b in zip(
            sorted(mine, key=lambda t: str(t.entry_time)),
            sorted(theirs, key=lambda t: str(t.entry_time)),
            strict=True,
        )
    )
    return Check(equal, len(grid.configurations), worst, len(mine), same)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV_YEAR)
    parser.add_argument("--no-cluster", action="store_true", help="skip the Dask figures")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    source = BarSource(args.data, None, None, None, None)
    grid = exit_grid()
    bar_file = load_bars(args.data)
    bars, calendar = bar_file.bars, bar_file.calendar
    detect, signals = timed(lambda: detect_signals(bars, calendar))
    count = len(grid.configurations)

    load_before = os.getloadavg()
    inline, inline_all, results = ours(grid, source, workers=1)
    pooled, pooled_all, _ = ours(grid, source, workers=2)
    backtest = peer_backtest(bars, calendar, signals)
    peer_one, heatmap = peer_optimize(backtest, 1)
    peer_two, _ = peer_optimize(backtest, 2)
    agreed = check(grid, results, heatmap, backtest, bars)
    detector_grid = parse_grid(DETECTOR_GRID, AppConfig())
    detector, detector_all, _ = ours(detector_grid, source, workers=2)

    figures: dict[str, Any] = {
        "bars": len(bars),
        "configurations": count,
        "signals": len(signals),
        "detect_s": round(detect, 3),
        "ours_1_process_runs_wall_s": round(inline.wall, 2),
        "ours_1_process_runs_cpu_s": round(inline.cpu, 2),
        "ours_1_process_with_walk_forward_wall_s": round(inline_all.wall, 2),
        "ours_2_processes_runs_wall_s": round(pooled.wall, 2),
        "ours_2_processes_with_walk_forward_wall_s": round(pooled_all.wall, 2),
        "backtesting_py_optimize_1_process_wall_s": round(peer_one.wall, 2),
        "backtesting_py_optimize_1_process_cpu_s": round(peer_one.cpu, 2),
        "backtesting_py_optimize_2_processes_wall_s": round(peer_two.wall, 2),
        "final_equity_equal": f"{agreed.equal_final_equity}/{agreed.configurations}",
        "worst_final_equity_difference": round(agreed.worst_difference, 4),
        "trades_equal_at_defaults": agreed.trades_equal,
        "trades_at_defaults": agreed.trades_compared,
        "detector_grid_configurations": len(detector_grid.configurations),
        "detector_grid_2_processes_runs_wall_s": round(detector.wall, 2),
        "detector_grid_2_processes_with_walk_forward_wall_s": round(detector_all.wall, 2),
    }
    print(f"{len(bars):,} bars, {len(signals)} signals, {count} configurations (exits x 1 profile)")
    print(
        f"same results: final equity equal to the cent in {agreed.equal_final_equity} of "
        f"{count} configurations (worst difference ${agreed.worst_difference:.4f}); at the "
        f"defaults {agreed.trades_compared} trades, "
        f"{'the same' if agreed.trades_equal else 'NOT the same'} on both sides"
    )
    # the peer is given our signals: their detection, once, is added to its time
    one_wall, one_cpu, two_wall = (
        peer_one.wall + detect,
        peer_one.cpu + detect,
        peer_two.wall + detect,
    )
    print(
        f"1 process each: ours {count / inline.wall:.1f} configurations/s ({inline.wall:.2f} s, "
        f"CPU {inline.cpu:.2f} s; {inline_all.wall:.2f} s with the walk-forward analysis), "
        f"backtesting.py optimize {count / one_wall:.1f}/s ({one_wall:.2f} s, CPU "
        f"{one_cpu:.2f} s, with {detect:.2f} s of our detection): "
        f"{one_wall / inline.wall:.1f}x wall clock, {one_cpu / inline.cpu:.1f}x CPU "
        f"({one_wall / inline_all.wall:.1f}x with our analysis)"
    )
    print(
        f"2 processes each: ours {count / pooled.wall:.1f} configurations/s ({pooled.wall:.2f} s;"
        f" {pooled_all.wall:.2f} s with the analysis), backtesting.py optimize "
        f"{count / two_wall:.1f}/s ({two_wall:.2f} s): {two_wall / pooled.wall:.1f}x "
        f"({two_wall / pooled_all.wall:.1f}x with our analysis)"
    )
    figures.update(
        ratio_1_process_wall=round(one_wall / inline.wall, 2),
        ratio_1_process_cpu=round(one_cpu / inline.cpu, 2),
        ratio_2_processes_wall=round(two_wall / pooled.wall, 2),
    )
    print(
        f"a grid varying the detector too ({len(detector_grid.configurations)} configurations, "
        f"8 signal groups), ours on 2 processes: "
        f"{len(detector_grid.configurations) / detector.wall:.1f} configurations/s "
        f"({detector.wall:.2f} s; {detector_all.wall:.2f} s with the analysis); backtesting.py "
        "cannot vary the detector"
    )
    if not args.no_cluster:
        free_before = free_parallelism()
        one = on_cluster(grid, source, 1)
        two = on_cluster(grid, source, 2)
        free_after = free_parallelism()
        figures.update(
            cluster_1_worker_s=round(one, 2),
            cluster_2_workers_s=round(two, 2),
            cluster_speedup=round(one / two, 2),
            free_parallelism_before=round(free_before, 2),
            free_parallelism_after=round(free_after, 2),
        )
        print(
            f"Dask LocalCluster, fresh, each worker loading the bars once: 1 worker {one:.2f} s "
            f"({count / one:.1f}/s), 2 workers {two:.2f} s ({count / two:.1f}/s): "
            f"{one / two:.2f}x; the machine's own speed-up from 1 to 2 processes of plain "
            f"Python just before and after: {free_before:.2f}x, {free_after:.2f}x"
        )
    load_after = os.getloadavg()
    figures.update(load_average_before=load_before[0], load_average_after=load_after[0])
    print(
        f"machine: {os.cpu_count()} cores, 1-minute load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (above the core count, other work competed for them)"
    )
    best = max(figures["ratio_1_process_cpu"], figures["ratio_2_processes_wall"])
    print(f"goal >= {GOAL_RATIO:.0f}x backtesting.py: {'yes' if best >= GOAL_RATIO else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    same = agreed.trades_equal and agreed.equal_final_equity == count
    if not same:
        print("the two sides disagree: the figures compare different work", file=sys.stderr)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
