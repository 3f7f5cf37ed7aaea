"""The bars of several symbols at once: what a backtest, a replay or `signals` works on.

Each symbol's bars stay a `BarFile` of their own (validated on their own, in time order, each
bar stamped with the symbol); the set adds one NYSE calendar covering them all and `merged()`,
every bar of every symbol in (time, symbol) order: the order the engine takes them in.

One plain file that does not say its symbol (no `symbol` column, not named by the user) makes
a set of one unnamed file: `symbols` is `("",)`, its bars carry "", and the engine reads them as
its only symbol's, as it always has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar
from ict_trader.marketdata.barfile import BarFile

_TIME = itemgetter(0)  # Bar.time, as the C getter sorted() calls fastest


@dataclass(frozen=True)
class BarSet:
    """The validated bars of one or several symbols and one calendar covering all of them.

    `files` holds one BarFile per symbol (a multi-symbol file gives one per symbol, with the
    same path), in the order the symbols were asked for; symbols are distinct. Build it with
    `BarSet.of`, or load it with `ict_trader.marketdata.sources.load_bar_set`.
    """

    files: tuple[BarFile, ...]
    calendar: NyseCalendar

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError("a BarSet needs the bars of at least one symbol")
        if len(self.files) > 1 and any(f.symbol is None for f in self.files):
            raise ValueError("with several bar files each must name its symbol")
        if len(set(self.symbols)) < len(self.files):
            raise ValueError(f"a symbol is given twice: {', '.join(self.symbols)}")

    @classmethod
    def of(cls, files: Iterable[BarFile]) -> BarSet:
        """The files' bars with a calendar covering them all (the one file's own if alone)."""
        chosen = tuple(files)
        if len(chosen) == 1:
            return cls(chosen, chosen[0].calendar)
        loaded = [f.bars for f in chosen if f.bars]
        if not loaded:
            return cls(chosen, chosen[0].calendar)
        first = min(bars[0].time for bars in loaded)
        last = max(bars[-1].time for bars in loaded)
        return cls(chosen, NyseCalendar.covering(first, last))

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols, in the set's order; `("",)` for one file that does not say its own."""
        return tuple(f.symbol or "" for f in self.files)

    @property
    def named(self) -> bool:
        """Whether every bar names its symbol (False only for one plain, unnamed file)."""
        return self.files[0].symbol is not None

    @property
    def paths(self) -> tuple[Path, ...]:
        """Where the bars came from, each path once, in the set's order."""
        return tuple(dict.fromkeys(f.path for f in self.files))

    @property
    def bar_count(self) -> int:
        """Bars over every symbol."""
        return sum(len(f.bars) for f in self.files)

    def bars_of(self, symbol: str) -> list[Bar]:
        return self.file_of(symbol).bars

    def file_of(self, symbol: str) -> BarFile:
        for bar_file in self.files:
            if (bar_file.symbol or "") == symbol:
                return bar_file
        raise KeyError(f"no bars of {symbol!r} here (symbols: {', '.join(self.symbols)})")

    def only(self, symbols: Sequence[str]) -> BarSet:
        """The set of these symbols alone, in this order."""
        return BarSet.of(self.file_of(symbol) for symbol in symbols)

    def merged(self) -> list[Bar]:
        """Every bar of every symbol in (time, symbol) order, each stamped with its symbol (a
        lone unnamed file's bars as they are: the list itself, not a copy)."""
        if len(self.files) == 1:
            return self.files[0].bars
        by_symbol = sorted(self.files, key=lambda f: f.symbol or "")
        # Each file is in time order: Timsort merges the runs, and a stable sort by time alone
        # keeps the symbols' order within a minute.
        return sorted(chain.from_iterable(f.bars for f in by_symbol), key=_TIME)
