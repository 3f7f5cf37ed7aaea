"""Detector throughput on the 2024 dev year vs. the PyPI package `smartmoneyconcepts`.

ict-trader: the incremental detector (`IctDetector.update`, the call the live loop makes) over
the 97,740 preloaded bars, fresh detector per repetition. smartmoneyconcepts: swing highs/lows,
liquidity and BOS/CHoCH over the same bars as one vectorised batch (its numba code is warmed up
first, outside the timing). The two are not the same computation — smc's swings are centred
windows that look `swing_length` bars into the future, and its labels are batch results that
can change when later data arrives — so read the ratio as "what it costs to get comparable
structure information", not as a like-for-like race. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on import
    from smartmoneyconcepts import smc

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar
from ict_trader.marketdata.barfile import load_bars
from ict_trader.signals import IctDetector, SignalParams

DEV_YEAR = Path(__file__).resolve().parents[1] / "tests" / "data" / "qqq_1min_dev.csv.gz"
EXPECTED_SIGNALS = 79
GOAL_SECONDS = 0.4
GOAL_RATIO = 10.0


def run_detector(bars: list[Bar], calendar: NyseCalendar) -> int:
    detector = IctDetector(calendar, SignalParams())
    update = detector.update
    count = 0
    for bar in bars:
        if update(bar) is not None:
            count += 1
    return count


def run_smc(frame: pd.DataFrame, swing_length: int) -> None:
    swings = smc.swing_highs_lows(frame, swing_length=swing_length)
    smc.liquidity(frame, swings)
    smc.bos_choch(frame, swings)


def timed(function: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEV_YEAR)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    start = time.perf_counter()
    bar_file = load_bars(args.data)
    load_seconds = time.perf_counter() - start
    bars = bar_file.bars
    count = run_detector(bars, bar_file.calendar)
    if args.data == DEV_YEAR and count != EXPECTED_SIGNALS:
        print(f"wrong result: {count} signals, expected {EXPECTED_SIGNALS}", file=sys.stderr)
        return 1
    ours = timed(lambda: run_detector(bars, bar_file.calendar), args.repeats)

    tracemalloc.start()
    detector = IctDetector(bar_file.calendar, SignalParams())
    baseline = tracemalloc.get_traced_memory()[0]
    peak_state = 0
    for index, bar in enumerate(bars):
        detector.update(bar)
        if index % 1000 == 0:
            peak_state = max(peak_state, tracemalloc.get_traced_memory()[0] - baseline)
    tracemalloc.stop()

    frame = pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=pd.DatetimeIndex([b.time for b in bars]),
    )
    swing_length = SignalParams().swing_length  # smc looks swing_length bars each side, as we do
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_smc(frame, swing_length)  # numba warm-up, not timed
        peer = timed(lambda: run_smc(frame, swing_length), max(3, args.repeats // 2))

    best, median = min(ours), statistics.median(ours)
    peer_best, peer_median = min(peer), statistics.median(peer)
    figures = {
        "bars": len(bars),
        "signals": count,
        "load_seconds": round(load_seconds, 4),
        "ict_trader_best_seconds": round(best, 4),
        "ict_trader_median_seconds": round(median, 4),
        "ict_trader_bars_per_second": round(len(bars) / best),
        "detector_state_peak_bytes": peak_state,
        "smartmoneyconcepts_best_seconds": round(peer_best, 4),
        "smartmoneyconcepts_median_seconds": round(peer_median, 4),
        "ratio_peer_over_ours_best": round(peer_best / best, 1),
        "goal_under_0_4_s": best < GOAL_SECONDS,
        "goal_10x_faster": peer_best / best >= GOAL_RATIO,
    }
    print(f"bars: {len(bars):,} ({args.data.name}), signals: {count}, load {load_seconds:.3f} s")
    print(
        f"ict-trader detector (incremental): best {best:.3f} s, median {median:.3f} s, "
        f"{len(bars) / best:,.0f} bars/s; state peak {peak_state / 1024:.1f} KiB"
    )
    print(
        f"smartmoneyconcepts swings+liquidity+bos_choch (batch, warmed): best {peer_best:.3f} s, "
        f"median {peer_median:.3f} s"
    )
    print(f"ratio smartmoneyconcepts / ict-trader: {peer_best / best:.1f}x (best vs best)")
    print(
        f"goals: < {GOAL_SECONDS} s: {'yes' if figures['goal_under_0_4_s'] else 'NO'}; "
        f">= {GOAL_RATIO:.0f}x faster: {'yes' if figures['goal_10x_faster'] else 'NO'}"
    )
    print("note: smc's swings are centred (they use future bars); ours are known at each close.")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
