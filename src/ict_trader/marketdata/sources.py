"""Where the bars of a run come from: bar files and downloaded folders, one or several, into
one `BarSet`.

Each source says which symbols it holds, or is told:
- a file with a `symbol` column holds the symbols in it;
- a folder from `ict-trader data download` holds its `<SYMBOL>/` folders;
- a plain file (no `symbol` column) holds one symbol it does not name: the user names it
  (`IWM=iwm.csv.gz`), or the symbols asked for that no other source holds name such files in
  their order; a lone plain file with no symbol asked for stays unnamed (the engine reads it as
  its one symbol's, QQQ by default).
`SYMBOL=PATH` also chooses one symbol of a multi-symbol file or of a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ict_trader.marketdata.barfile import (
    BarDataError,
    BarFile,
    has_symbol_column,
    read_bar_files,
    ticker_of,
)
from ict_trader.marketdata.barset import BarSet
from ict_trader.marketdata.folder import folder_symbols, load_folder_set


@dataclass(frozen=True)
class Source:
    """A bar file or a downloaded folder; `symbol` names a plain file's bars or chooses one
    symbol of a file with a `symbol` column or of a folder."""

    path: Path
    symbol: str | None = None

    @classmethod
    def parse(cls, text: str) -> Source:
        """`PATH` or `SYMBOL=PATH` (an existing path is a path, even with a `=` in it)."""
        symbol, equals, rest = text.partition("=")
        if not equals or not rest or Path(text).exists():
            return cls(Path(text))
        return cls(Path(rest), ticker_of(symbol, Path(text)))


class MissingSymbolsError(BarDataError):
    """Symbols were asked for that the data holds no bars of."""

    def __init__(self, path: Path, missing: Sequence[str], held: Sequence[str]) -> None:
        self.missing = tuple(missing)
        self.held = tuple(held)
        super().__init__(
            path,
            f"no bars for {', '.join(missing)} here (symbols: {', '.join(held) or 'none named'})",
        )


def load_bar_set(
    sources: Sequence[Source | Path | str],
    symbols: Sequence[str] = (),
    *,
    tz: str | None = None,
    first: date | None = None,
    last: date | None = None,
) -> BarSet:
    """The bars of `symbols` (in that order), or of every symbol the sources hold. A source
    given as text may be `SYMBOL=PATH` (`Source.parse`).

    Every file is read and validated whole (a bad row of a symbol not asked for still refuses
    the file); a folder's symbols are read only if asked for, and only the months that overlap
    `first`..`last` (New York dates). `tz`: as in `load_bars`, for every file. A symbol held by
    two sources is refused, as is a plain file no symbol is left to name.
    """
    chosen = [_source(source) for source in sources]
    if not chosen:
        raise ValueError("no source of bars given")
    wanted = list(dict.fromkeys(ticker_of(s, chosen[0].path) for s in symbols))
    held: dict[str, BarFile | tuple[Path, None]] = {}  # a folder's symbols load only if wanted
    where: dict[str, Path] = {}
    unnamed: list[Source] = []

    def hold(symbol: str, item: BarFile | tuple[Path, None], path: Path) -> None:
        if symbol in held:
            raise BarDataError(
                path, f"bars of {symbol} come from {where[symbol]} too: give each symbol once"
            )
        held[symbol] = item
        where[symbol] = path

    for source in chosen:
        if source.path.is_dir():
            found = folder_symbols(source.path)
            if source.symbol and source.symbol not in found:
                raise MissingSymbolsError(source.path, [source.symbol], sorted(found))
            for name in [source.symbol] if source.symbol else sorted(found):
                hold(name, (source.path, None), source.path)
        elif source.symbol is None and not has_symbol_column(source.path):
            unnamed.append(source)  # read once its name is known
        else:
            for bar_file in read_bar_files(source.path, tz, symbol=source.symbol):
                hold(bar_file.symbol or "", bar_file, source.path)

    if unnamed:
        free = [symbol for symbol in wanted if symbol not in held]
        if not wanted and not held and len(unnamed) == 1:
            return BarSet.of(read_bar_files(unnamed[0].path, tz))  # the plain one-symbol case
        if len(free) != len(unnamed):
            lead = unnamed[0].path
            left = (
                f"{len(free)} symbol(s) left to name them ({', '.join(free)})"
                if free
                else ("no symbol asked for is left to name them")
            )
            raise BarDataError(
                lead,
                f"does not say its symbol (no symbol column): {len(unnamed)} such file(s) and "
                f"{left}; give each such file as SYMBOL=PATH (e.g. --data IWM={lead}), or "
                "their symbols in the files' order (--symbols)",
            )
        for source, symbol in zip(unnamed, free, strict=True):
            for bar_file in read_bar_files(source.path, tz, symbol=symbol):
                hold(symbol, bar_file, source.path)

    order = wanted or list(held)
    missing = [symbol for symbol in order if symbol not in held]
    if missing:
        raise MissingSymbolsError(_where(chosen), missing, list(held))
    files: list[BarFile] = []
    for symbol in order:
        item = held[symbol]
        if isinstance(item, BarFile):
            files.append(item)
        else:
            folder = load_folder_set(item[0], [symbol], first=first, last=last)
            files.append(folder.files[0])
    return BarSet.of(files)


def _source(source: Source | Path | str) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, Path):
        return Source(source)
    return Source.parse(source)


def _where(sources: Sequence[Source]) -> Path:
    """The data, for an error about all of it: its one path, or its paths side by side."""
    if len(sources) == 1:
        return sources[0].path
    return Path(", ".join(str(source.path) for source in sources))
