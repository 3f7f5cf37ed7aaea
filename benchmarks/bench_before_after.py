"""The dev-year backtest, this tree against an earlier commit, in the same run.

Issue #11 asks that the redesign keep the backtest's figures or improve them, both sides
reported from one run. The earlier commit's `src/` is read from this repository's git history
(`git archive`) into a temporary folder; each side runs in its own Python process (the same
interpreter and installed libraries, only `ict_trader` differs), the sides alternate, and each
process reports its best of `--repeats`: loading the year, and the backtest with the SQLite
store on preloaded bars. Both must book the same trades, or the figures are not comparable.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEV_YEAR = REPO / "tests" / "data" / "qqq_1min_dev.csv.gz"
BEFORE = "237de12"  # main before issue #11's instruments, several symbols and the kernel

# Run inside each side's process; `sys.path[0]` is that side's src/.
PROBE = """
import json, sys, tempfile, time
from pathlib import Path
from ict_trader.config import AppConfig
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.backtest import run_backtest

path, repeats = Path(sys.argv[1]), int(sys.argv[2])
loads = []
for _ in range(repeats):
    start = time.perf_counter()
    bar_file = load_bars(path)
    loads.append(time.perf_counter() - start)
runs = []
with tempfile.TemporaryDirectory() as folder:
    for index in range(repeats):
        store = Store(Path(folder) / f"run{index}.db")
        start = time.perf_counter()
        result = run_backtest(bar_file.bars, bar_file.calendar, AppConfig(), store=store)
        runs.append(time.perf_counter() - start)
        store.close()
trades = sorted(
    (t.entry_time.isoformat(), t.profile, t.qty, str(t.pnl)) for t in result.closed_trades()
)
print(json.dumps({"load": min(loads), "backtest": min(runs), "trades": trades}))
"""


def side(src: Path, data: Path, repeats: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(src)!r})\n{PROBE}",
            str(data),
            str(repeats),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"the earlier commit (default {BEFORE})")
    parser.add_argument("--data", type=Path, default=DEV_YEAR)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    args = parser.parse_args()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", args.before, "src"], capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        sides = {"before": Path(folder) / "src", "now": REPO / "src"}
        best: dict[str, dict[str, float]] = {}
        trades: dict[str, object] = {}
        for _ in range(args.rounds):
            for name, src in sides.items():
                figures = side(src, args.data, args.repeats)
                trades[name] = figures["trades"]
                mine = best.setdefault(name, {"load": float("inf"), "backtest": float("inf")})
                mine["load"] = min(mine["load"], figures["load"])
                mine["backtest"] = min(mine["backtest"], figures["backtest"])
    if trades["before"] != trades["now"]:
        print("the two sides booked different trades: not comparable", file=sys.stderr)
        return 1
    print(f"dev year ({args.data.name}), best of {args.rounds} x {args.repeats}, seconds:")
    print(f"{'':10}{'load':>10}{'backtest':>10}{'total':>10}")
    for name, figures in best.items():
        total = figures["load"] + figures["backtest"]
        print(f"{name:10}{figures['load']:>10.3f}{figures['backtest']:>10.3f}{total:>10.3f}")
    print(f"same trades on both sides: {len(trades['now'])}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
