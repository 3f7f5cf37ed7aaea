"""A downloaded folder (`<root>/<SYMBOL>/<YYYY-MM>.parquet`) as one symbol's validated bars.

The months are checked as one table, so a bar repeated or out of order across two files is
caught like one within a file, and a problem is reported against the file and row it is in.
Pre- and after-market bars (a download with --extended-hours) are accepted and left out: the
detector and backtests work on regular hours.

The engine trades one symbol (a bar carries no symbol), so a folder with several symbols is
loaded one symbol at a time: the caller names it, or the folder must hold only one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from ict_trader.barfile import (
    BarDataError,
    BarFile,
    Columns,
    Problems,
    read_columns,
    validated_bars,
)
from ict_trader.marketdata.layout import Month, symbols_in


def load_folder(
    root: Path,
    symbols: Sequence[str] = (),
    *,
    first: date | None = None,
    last: date | None = None,
    extended_hours: bool = False,
) -> BarFile:
    """The bars of the one symbol chosen by `symbols` (or the folder's only symbol), from the
    months that overlap `first`..`last` (New York dates; all months without them)."""
    found = symbols_in(root)
    if not found:
        raise BarDataError(
            root,
            "no <SYMBOL>/<YYYY-MM>.parquet files in this folder (the layout "
            "`ict-trader data download` writes)",
        )
    chosen = [symbol.upper() for symbol in symbols] or sorted(found)
    missing = [symbol for symbol in chosen if symbol not in found]
    if missing:
        raise BarDataError(
            root, f"no bars for {', '.join(missing)} here (symbols: {', '.join(sorted(found))})"
        )
    if len(chosen) > 1:
        raise BarDataError(
            root,
            f"holds several symbols ({', '.join(chosen)}); the engine trades one symbol at a "
            f"time for now: choose one with --symbols {chosen[0]}",
        )
    symbol = chosen[0]
    low = Month.of(first) if first else None
    high = Month.of(last) if last else None
    files = [
        path
        for month, path in found[symbol]
        if (low is None or month >= low) and (high is None or month <= high)
    ]
    folder = files[0].parent if files else root / symbol
    if not files:
        raise BarDataError(folder, f"no monthly file between {first} and {last}")
    problems = Problems(folder)
    parts: list[Columns] = []
    start = 0
    for path in files:
        part = read_columns(path, None, problems, start)
        parts.append(part)
        start += len(part)
    bars, calendar = validated_bars(
        Columns.concat(parts),
        problems,
        extended_hours=extended_hours,
        drop_extended_hours=True,
    )
    return BarFile(path=folder, bars=bars, calendar=calendar, symbol=symbol)
