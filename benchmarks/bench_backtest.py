"""The dev year through detector + engine + simulated broker + SQLite store, vs backtesting.py.

ict-trader is timed end to end (loading and validating the file, detecting, trading, recording
every signal, order, fill and trade in a SQLite file) and without the loading. backtesting.py
(the peer) trades the same signals by the same rules (benchmarks/backtesting_peer.py); it cannot
detect them itself, so it is timed on the trading alone and, for the like-for-like figure, with
our detector's time added. Both must produce the same trades or the figures are meaningless.

Loading the year is timed on its own too, before and after the Arrow loader, in the same run:
"before" is the pandas-only loader as it was at commit BEFORE, read from this repository's git
history and run beside the current one (the same calendar cache, the same file, alternated), and
both must give the same bars. From Parquet too, and from a folder of monthly Parquet files as
`ict-trader data download` writes them.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.backtesting_peer import run_peer  # noqa: E402
from ict_trader.config import AppConfig  # noqa: E402
from ict_trader.core.bars import Bar  # noqa: E402
from ict_trader.core.calendar import NEW_YORK  # noqa: E402
from ict_trader.marketdata.barfile import BarFile, load_bars  # noqa: E402
from ict_trader.marketdata.folder import load_folder  # noqa: E402
from ict_trader.marketdata.layout import Month, month_file, write_atomically  # noqa: E402
from ict_trader.persistence.store import Store  # noqa: E402
from ict_trader.runtime.backtest import run_backtest  # noqa: E402
from ict_trader.signals import detect_signals  # noqa: E402

DEV_YEAR = REPO / "tests" / "data" / "qqq_1min_dev.csv.gz"
GOAL_SECONDS = 0.5  # issue #13: the dev year end to end
GOAL_RATIO = 3.0
GOAL_LOAD_SECONDS = 0.15
BEFORE = "6799d63"  # the last commit whose loader parsed every file with pandas


def best_and_median(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def loader_before(before: str = BEFORE) -> Callable[[Path], BarFile] | None:
    """`load_bars` as it was at commit `before` (None without git or that commit).

    The module lived at `src/ict_trader/barfile.py` then, beside `bars.py` and `calendar.py`,
    which are in `core/` now: its imports are pointed there (the same Bar and calendar)."""
    source = None
    for path in ("src/ict_trader/marketdata/barfile.py", "src/ict_trader/barfile.py"):
        try:
            source = subprocess.run(
                ["git", "-C", str(REPO), "show", f"{before}:{path}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            break
        except (OSError, subprocess.CalledProcessError):
            continue
    if source is None:
        return None
    for old, new in (
        ("ict_trader.bars ", "ict_trader.core.bars "),
        ("ict_trader.calendar ", "ict_trader.core.calendar "),
    ):
        source = source.replace(f"from {old}", f"from {new}")
    module = types.ModuleType("barfile_before")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{before}:barfile.py", "exec"), module.__dict__)
    load: Callable[[Path], BarFile] = module.load_bars
    return load


def as_parquet_and_folder(bar_file: BarFile, folder: Path) -> tuple[Path, Path]:
    """The bars as one Parquet file and as a downloaded folder (one file per month)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    def table(bars: list[Bar]) -> pa.Table:
        return pa.table(
            {
                "timestamp": pa.array([b.time for b in bars], pa.timestamp("us", tz="UTC")),
                **{
                    name: pa.array([getattr(b, name) for b in bars], pa.float64())
                    for name in ("open", "high", "low", "close", "volume")
                },
            }
        )

    single = folder / "year.parquet"
    pq.write_table(table(bar_file.bars), single)
    by_month: dict[Month, list[Bar]] = {}
    for bar in bar_file.bars:
        by_month.setdefault(Month.of(bar.time.astimezone(NEW_YORK).date()), []).append(bar)
    root = folder / "download"
    for month, bars in by_month.items():
        write_atomically(table(bars), month_file(root, "QQQ", month))
    return single, root


def loading(path: Path, repeats: int, commit: str = BEFORE) -> dict[str, Any]:
    """Loading the year: before (the loader of `commit`) and now, alternated in one run."""
    before = loader_before(commit)
    now_bars = load_bars(path).bars
    # a folder's bars name their symbol; otherwise the same bars
    named_bars = load_bars(path, symbol="QQQ").bars
    figures: dict[str, Any] = {"before_commit": commit}
    with tempfile.TemporaryDirectory() as folder:
        parquet, download = as_parquet_and_folder(load_bars(path), Path(folder))
        cases: dict[str, tuple[Callable[[], BarFile], Callable[[], BarFile] | None]] = {
            "csv_gz": (lambda: load_bars(path), (lambda: before(path)) if before else None),
            "parquet": (lambda: load_bars(parquet), (lambda: before(parquet)) if before else None),
            "folder": (lambda: load_folder(download), None),
        }
        for name, (current, old) in cases.items():
            expected = named_bars if name == "folder" else now_bars
            if current().bars != expected or (old is not None and old().bars != now_bars):
                raise SystemExit(f"loading {name}: the loaders disagree on the bars")
            now_times: list[float] = []
            old_times: list[float] = []
            for _ in range(repeats):
                now_times.append(best_and_median(current, 1)[0])
                if old is not None:
                    old_times.append(best_and_median(old, 1)[0])
            figures[f"{name}_now_best_s"] = round(min(now_times), 3)
            figures[f"{name}_now_median_s"] = round(statistics.median(now_times), 3)
            if old_times:
                figures[f"{name}_before_best_s"] = round(min(old_times), 3)
                figures[f"{name}_before_median_s"] = round(statistics.median(old_times), 3)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV_YEAR)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--before", default=BEFORE, help=f"the commit whose loader is 'before' (default {BEFORE})"
    )
    parser.add_argument(
        "--loading-only", action="store_true", help="time loading alone, before and now"
    )
    args = parser.parse_args()
    if args.loading_only:
        figures = loading(args.data, max(args.repeats, 7), args.before)
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        return 0
    config = AppConfig()
    bar_file = load_bars(args.data)
    bars, calendar = bar_file.bars, bar_file.calendar
    load = loading(args.data, max(args.repeats, 7), args.before)

    with tempfile.TemporaryDirectory() as folder:
        counter = iter(range(10**6))

        def ours_end_to_end() -> int:
            loaded = load_bars(args.data)
            store = Store(Path(folder) / f"run{next(counter)}.db")
            try:
                result = run_backtest(loaded.bars, loaded.calendar, config, store=store)
            finally:
                store.close()
            return len(result.closed_trades())

        def ours_preloaded() -> int:
            store = Store(Path(folder) / f"run{next(counter)}.db")
            try:
                result = run_backtest(bars, calendar, config, store=store)
            finally:
                store.close()
            return len(result.closed_trades())

        def ours_in_memory() -> int:
            return len(run_backtest(bars, calendar, config).closed_trades())

        ours_trades = ours_preloaded()
        e2e = best_and_median(ours_end_to_end, args.repeats)
        pre = best_and_median(ours_preloaded, args.repeats)
        memory = best_and_median(ours_in_memory, args.repeats)

    signals = detect_signals(bars, calendar)
    detect = best_and_median(lambda: detect_signals(bars, calendar), args.repeats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_trades = len(run_peer(bars, calendar, signals)[0])
        peer = best_and_median(lambda: run_peer(bars, calendar, signals), args.repeats)
    if peer_trades != ours_trades:
        print(f"different work: ours {ours_trades} trades, peer {peer_trades}", file=sys.stderr)
        return 1

    like_for_like = peer[0] + detect[0]
    # Same work: detection + trading, no persistence on either side (backtesting.py keeps
    # nothing); the figure with our SQLite store is printed too.
    ratio = like_for_like / memory[0]
    ratio_with_store = like_for_like / pre[0]
    figures = {
        "bars": len(bars),
        "trades": ours_trades,
        "ours_end_to_end_best_s": round(e2e[0], 3),
        "ours_end_to_end_median_s": round(e2e[1], 3),
        "ours_preloaded_best_s": round(pre[0], 3),
        "ours_preloaded_median_s": round(pre[1], 3),
        "ours_in_memory_best_s": round(memory[0], 3),
        "detector_best_s": round(detect[0], 3),
        "backtesting_py_trading_best_s": round(peer[0], 3),
        "backtesting_py_trading_median_s": round(peer[1], 3),
        "ratio_peer_trading_only": round(peer[0] / pre[0], 2),
        "ratio_same_work": round(ratio, 2),
        "ratio_ours_with_store": round(ratio_with_store, 2),
        "goal_under_0_5_s_end_to_end": e2e[0] < GOAL_SECONDS,
        "goal_3x_faster": ratio_with_store >= GOAL_RATIO,  # issue #13: "with our store included"
        "loading": load,
        "goal_load_under_0_15_s": load["csv_gz_now_best_s"] < GOAL_LOAD_SECONDS,
    }
    print(f"{len(bars):,} bars, {ours_trades} trades on both sides")
    print(
        f"ict-trader end to end (load + detect + engine + broker + SQLite): "
        f"best {e2e[0]:.3f} s, median {e2e[1]:.3f} s"
    )
    print(f"ict-trader without loading: best {pre[0]:.3f} s, median {pre[1]:.3f} s")
    print(f"ict-trader without loading or store: best {memory[0]:.3f} s, median {memory[1]:.3f} s")
    print(
        f"backtesting.py trading the same signals: best {peer[0]:.3f} s, median {peer[1]:.3f} s"
        f" (+ {detect[0]:.3f} s for the signals it needs = {like_for_like:.3f} s)"
    )
    print(
        f"ratio backtesting.py / ict-trader: {ratio:.1f}x on the same work (signals + trading, "
        f"nothing persisted); {ratio_with_store:.1f}x with our SQLite store included; "
        f"{peer[0] / pre[0]:.1f}x if the peer got its signals for free"
    )
    for name, label in (
        ("csv_gz", args.data.name),
        ("parquet", "the same bars as one Parquet file"),
        ("folder", "a downloaded folder (12 monthly Parquet files)"),
    ):
        line = (
            f"loading the year from {label}: now best {load[f'{name}_now_best_s']:.3f} s, "
            f"median {load[f'{name}_now_median_s']:.3f} s"
        )
        if f"{name}_before_best_s" in load:
            line += (
                f"; before (loader of {args.before}) best {load[f'{name}_before_best_s']:.3f}"
                f" s, median {load[f'{name}_before_median_s']:.3f} s"
            )
        print(line)
    under = "yes" if figures["goal_under_0_5_s_end_to_end"] else "NO"
    faster = "yes" if figures["goal_3x_faster"] else "NO"
    quick = "yes" if figures["goal_load_under_0_15_s"] else "NO"
    print(
        f"goals: end to end < {GOAL_SECONDS:g} s: {under}; >= {GOAL_RATIO:.0f}x faster with "
        f"our store included: "
        f"{faster}; loading the year < {GOAL_LOAD_SECONDS} s: {quick}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
