"""The dev year through detector + engine + simulated broker + SQLite store, vs backtesting.py.

ict-trader is timed end to end (loading and validating the file, detecting, trading, recording
every signal, order, fill and trade in a SQLite file) and without the loading. backtesting.py
(the peer) trades the same signals by the same rules (benchmarks/backtesting_peer.py); it cannot
detect them itself, so it is timed on the trading alone and, for the like-for-like figure, with
our detector's time added. Both must produce the same trades or the figures are meaningless.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.backtesting_peer import run_peer  # noqa: E402
from ict_trader.backtest import run_backtest  # noqa: E402
from ict_trader.barfile import load_bars  # noqa: E402
from ict_trader.config import AppConfig  # noqa: E402
from ict_trader.signals import detect_signals  # noqa: E402
from ict_trader.store import Store  # noqa: E402

DEV_YEAR = REPO / "tests" / "data" / "qqq_1min_dev.csv.gz"
GOAL_SECONDS = 1.0
GOAL_RATIO = 3.0


def best_and_median(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV_YEAR)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    config = AppConfig()
    bar_file = load_bars(args.data)
    bars, calendar = bar_file.bars, bar_file.calendar

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
        "goal_under_1_s_end_to_end": e2e[0] < GOAL_SECONDS,
        "goal_3x_faster": ratio >= GOAL_RATIO,
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
    under = "yes" if figures["goal_under_1_s_end_to_end"] else "NO"
    faster = "yes" if figures["goal_3x_faster"] else "NO"
    print(
        f"goals: end to end < {GOAL_SECONDS:.0f} s: {under}; >= {GOAL_RATIO:.0f}x faster: {faster}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
