"""A downloaded folder (`<root>/<SYMBOL>/<YYYY-MM>.parquet`) as validated bars: one symbol's
(`load_folder`) or several symbols' (`load_folder_set`).

Each symbol's months are checked as one table, so a bar repeated or out of order across two
files is caught like one within a file, and a problem is reported against the file and row it
is in. Pre- and after-market bars (a download with --extended-hours) are accepted and left out:
the detector and backtests work on regular hours. Every bar is stamped with its symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from ict_trader.marketdata.barfile import (
    BarDataError,
    BarFile,
    Columns,
    Problems,
    read_columns,
    validated_bars,
)
from ict_trader.marketdata.barset import BarSet
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
    found, chosen = _chosen(root, symbols)
    if len(chosen) > 1:
        raise BarDataError(
            root,
            f"holds several symbols ({', '.join(chosen)}) where one is expected: choose one "
            f"with --symbols {chosen[0]}",
        )
    return _load_symbol(
        root, found, chosen[0], first=first, last=last, extended_hours=extended_hours
    )


def load_folder_set(
    root: Path,
    symbols: Sequence[str] = (),
    *,
    first: date | None = None,
    last: date | None = None,
    extended_hours: bool = False,
) -> BarSet:
    """The bars of the symbols chosen by `symbols` (in that order), or of every symbol in the
    folder (alphabetically), from the months that overlap `first`..`last`."""
    found, chosen = _chosen(root, symbols)
    return BarSet.of(
        _load_symbol(root, found, symbol, first=first, last=last, extended_hours=extended_hours)
        for symbol in chosen
    )


def _chosen(
    root: Path, symbols: Sequence[str]
) -> tuple[dict[str, list[tuple[Month, Path]]], list[str]]:
    """The folder's symbols with their monthly files, and the symbols asked for (all if none)."""
    found = folder_symbols(root)
    chosen = list(dict.fromkeys(symbol.upper() for symbol in symbols)) or sorted(found)
    missing = [symbol for symbol in chosen if symbol not in found]
    if missing:
        raise BarDataError(
            root, f"no bars for {', '.join(missing)} here (symbols: {', '.join(sorted(found))})"
        )
    return found, chosen


def folder_symbols(root: Path) -> dict[str, list[tuple[Month, Path]]]:
    """The folder's symbols, each with its monthly files; refused if it has none."""
    found = symbols_in(root)
    if not found:
        raise BarDataError(
            root,
            "no <SYMBOL>/<YYYY-MM>.parquet files in this folder (the layout "
            "`ict-trader data download` writes)",
        )
    return found


def _load_symbol(
    root: Path,
    found: dict[str, list[tuple[Month, Path]]],
    symbol: str,
    *,
    first: date | None,
    last: date | None,
    extended_hours: bool,
) -> BarFile:
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
        symbol=symbol,
    )
    return BarFile(path=folder, bars=bars, calendar=calendar, symbol=symbol)
