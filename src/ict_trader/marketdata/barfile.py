"""Loading 1-minute bar files (CSV, CSV.gz, Parquet) with errors a user can act on.

A bad file must never reach the detector: a silently skipped or misordered bar changes which
signals fire. So every check runs over the whole file up front, and the first problem in file
order is reported as one line naming the file, the row and what is wrong.

Files are read through Arrow, whose typed readers parse a clean year in a few tens of
milliseconds. Only when Arrow cannot read a file cleanly (an unparsable or offset-less
timestamp, a missing or non-numeric value, a malformed row) is it read again with pandas, whose
column-by-column parsing names the offending row and value; both paths then go through the same
vectorised checks, so the errors are the same whichever path found the file clean or not.

A file may hold several symbols in a `symbol` column (any interleaving of the symbols' rows).
Each symbol's rows are then checked on their own (order, duplicates) besides the checks every
row gets (prices, hours), a problem names the symbol besides the row, and each symbol's bars
come out stamped with it (`read_bar_files`). A file without the column is one symbol's whose
name it does not say: its bars carry the symbol given by the caller, or "".
"""

from __future__ import annotations

import bisect
import csv
import gzip
import re
import stat
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import partial
from itertools import repeat
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ict_trader.collector import paused_collector
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.instruments import equity
from ict_trader.errors import ConfigError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
SYMBOL_COLUMN = "symbol"  # optional: the ticker of each row's bar, for files of several symbols
PRICE_COLUMNS = ("open", "high", "low", "close")
NAT_INT = np.iinfo(np.int64).min  # how numpy stores NaT in int64
# Bars from before 1990 or after 2099 are typos or corrupt stamps, never QQQ minutes (QQQ listed
# in 1999). Checked in the column's own unit: converting year 1600 or 2300 to nanoseconds would
# silently wrap around to another date.
FIRST_YEAR, LAST_YEAR = 1990, 2099
EARLIEST = np.datetime64(f"{FIRST_YEAR}-01-01T00:00:00")
LATEST = np.datetime64(f"{LAST_YEAR + 1}-01-01T00:00:00")
# A price outside these is a unit error or corruption; sizing divides by it, so a near-zero
# price would ask for astronomically many shares.
MIN_PRICE = 0.0001
MAX_PRICE = 1_000_000.0
MAX_VOLUME = 1e12  # QQQ trades ~5e7 shares a day
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


class BarDataError(ValueError):
    """A bar file cannot be used; `str()` is the one line to show the user."""

    def __init__(
        self,
        path: Path,
        problem: str,
        row: int | None = None,
        line: int | None = None,
        symbol: str | None = None,
    ):
        self.path = path
        self.row = row
        self.problem = problem
        self.symbol = symbol
        where = ""
        if row is not None:
            where = f"row {row}" + (f" (line {line})" if line is not None else "")
            where += f", {symbol}: " if symbol else ": "
        super().__init__(f"{path}: {where}{problem}")


@dataclass(frozen=True)
class BarFile:
    """The validated bars of one symbol of a file (or of a downloaded folder) plus the NYSE
    calendar that covers them. `symbol` is None for a plain file that does not say its symbol
    and was not told it (its bars then carry ""); otherwise every bar carries `symbol`."""

    path: Path
    bars: list[Bar]
    calendar: NyseCalendar
    symbol: str | None = None


@dataclass(frozen=True)
class Columns:
    """A bar table's columns once parsed: timestamps as int64 UTC nanoseconds (NAT_INT where a
    row's timestamp is invalid) and the five numbers as float64 (NaN where invalid); with a
    `symbol` column, each row's index into `symbols` (the values as written; -1 where empty)."""

    times: np.ndarray
    values: dict[str, np.ndarray]
    codes: np.ndarray | None = None
    symbols: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.times)

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        return Columns(
            np.concatenate([part.times for part in parts]),
            {name: np.concatenate([part.values[name] for part in parts]) for name in COLUMNS[1:]},
        )


def load_bars(
    path: Path | str,
    tz: str | None = None,
    *,
    extended_hours: bool = False,
    symbol: str | None = None,
) -> BarFile:
    """Read and validate a bar file of one symbol.

    `tz` is the zone of timestamps that carry no UTC offset (e.g. "America/New_York"); without it
    such timestamps are refused rather than guessed. `extended_hours` keeps pre- and after-market
    bars (04:00-19:59 New York on trading days), for the emulator's bar stream, which sends them
    as Alpaca's does; the detector and backtests only ever load regular hours.

    `symbol` names the bars of a plain file (without it they carry "", as the file says nothing)
    or chooses one symbol of a file with a `symbol` column; such a file of several symbols needs
    it (`read_bar_files` and `ict_trader.marketdata.sources.load_bar_set` read them all).
    """
    path = Path(path)
    files = read_bar_files(path, tz, extended_hours=extended_hours, symbol=symbol)
    if len(files) > 1:
        held = ", ".join(f.symbol or "" for f in files)
        raise BarDataError(path, f"holds several symbols ({held}) where one is expected")
    return files[0]


def read_bar_files(
    path: Path | str,
    tz: str | None = None,
    *,
    extended_hours: bool = False,
    symbol: str | None = None,
) -> list[BarFile]:
    """Read and validate a bar file: one BarFile per symbol of its `symbol` column (in the
    symbols' alphabetical order), or the one BarFile of a plain file. `symbol`: as in
    `load_bars` (the name of a plain file's bars, or the one symbol wanted of the column's)."""
    path = Path(path)
    name = None if symbol is None else ticker_of(symbol, path)
    problems = Problems(path)
    columns = read_columns(path, tz, problems)
    if columns.codes is None:
        bars, calendar = validated_bars(
            columns, problems, extended_hours=extended_hours, symbol=name or ""
        )
        return [BarFile(path=path, bars=bars, calendar=calendar, symbol=name)]
    by_symbol, calendar = validated_by_symbol(columns, problems, extended_hours=extended_hours)
    if name is not None:
        if name not in by_symbol:
            raise BarDataError(
                path, f"no bars for {name} here (symbols: {', '.join(sorted(by_symbol))})"
            )
        by_symbol = {name: by_symbol[name]}
    return [
        BarFile(path=path, bars=bars, calendar=calendar, symbol=held)
        for held, bars in sorted(by_symbol.items())
    ]


def ticker_of(text: str, path: Path) -> str:
    """`text` as a ticker (stripped, upper case), or a BarDataError on `path` naming it."""
    problem = _not_a_ticker(text)
    if problem is not None:
        raise BarDataError(path, problem)
    return text.strip().upper()


def _not_a_ticker(text: str) -> str | None:
    """Why `text` is not a symbol the engine can trade, or None if it is one."""
    if not text.strip():
        return "symbol is empty"
    try:
        equity(text.strip().upper())
    except ConfigError:
        return (
            f"symbol {text.strip()!r} is not a ticker (letters, digits and '.', at most 10 "
            "characters, starting with a letter)"
        )
    return None


def read_columns(path: Path, tz: str | None, problems: Problems, start: int = 0) -> Columns:
    """Parse one file's columns; rows it cannot parse are recorded in `problems` as rows
    `start`, `start + 1`, … (a folder's files are checked as one table)."""
    _require_regular_file(path)
    zone = _zone(tz, path)
    fast = _read_clean(path)
    if fast is not None:
        table, header_lines = fast
        problems.source(start, path, header_lines)
        columns = typed_columns(table)
        if columns is not None:
            for name in COLUMNS[1:]:
                _check_infinite(columns.values[name], name, problems, start)
            return columns
    frame, header_lines = _read_frame(path)
    problems.source(start, path, header_lines)
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise BarDataError(path, f"missing column {', '.join(missing)} (found: {found})")
    if frame.empty:
        raise BarDataError(path, "no bars in file")
    times = _parse_timestamps(frame["timestamp"], zone, path, problems, start)
    values = {name: _parse_numbers(frame[name], name, problems, start) for name in COLUMNS[1:]}
    if SYMBOL_COLUMN in frame.columns:
        codes, uniques = pd.factorize(frame[SYMBOL_COLUMN].astype("string"), use_na_sentinel=True)
        return Columns(times, values, codes.astype(np.int64), tuple(map(str, uniques)))
    return Columns(times, values)


def validated_bars(
    columns: Columns,
    problems: Problems,
    *,
    extended_hours: bool = False,
    drop_extended_hours: bool = False,
    calendar: NyseCalendar | None = None,
    symbol: str = "",
) -> tuple[list[Bar], NyseCalendar]:
    """Check parsed columns (prices, order, hours) and build the bars, stamped with `symbol`,
    or raise the first problem in row order. A `symbol` column, if any, is not looked at
    (`validated_by_symbol` reads it).

    `drop_extended_hours` accepts pre- and after-market bars but leaves them out of the result,
    for a downloaded folder that holds them (Alpaca serves them; a backtest wants regular hours).
    `calendar`, if given, must cover the bars (a download checks month after month with one).
    """
    times, values = columns.times, columns.values
    # Every check runs over every row before anything is raised, so the report is the first
    # problem in file order, whatever kind it is.
    _check_prices(values, problems)
    valid = times != NAT_INT
    _check_order(times, valid, problems)
    if calendar is None:
        calendar = _calendar_for(times[valid], problems)
    if extended_hours or drop_extended_hours:
        _check_extended_hours(times, valid, calendar, problems)
    else:
        _check_sessions(times, valid, calendar, problems)
    problems.raise_first()
    if drop_extended_hours and not extended_hours:
        keep = in_hours(times, calendar, extended=False)
        times = times[keep]
        values = {name: column[keep] for name, column in values.items()}
    return _to_bars(times, values, symbol), calendar


def validated_by_symbol(
    columns: Columns,
    problems: Problems,
    *,
    extended_hours: bool = False,
    drop_extended_hours: bool = False,
) -> tuple[dict[str, list[Bar]], NyseCalendar]:
    """The checks of `validated_bars` for a table with a `symbol` column: every symbol must be
    a ticker, each symbol's rows must be in time order without a repeated minute (other
    symbols' rows may come between them), every row must be a sane bar in the hours; the first
    problem in row order is raised, naming the row's symbol. Each symbol's bars, stamped with
    it, in time order; one calendar covering them all."""
    assert columns.codes is not None
    times, values = columns.times, columns.values
    codes, names = _tickers(columns.codes, columns.symbols, problems)
    problems.name_rows(codes, names)
    _check_prices(values, problems)
    valid = (times != NAT_INT) & (codes >= 0)
    # Each symbol's rows in file order: a stable sort by symbol keeps them in it.
    order = np.argsort(codes, kind="stable")
    _check_order_by_symbol(times, valid, codes, order, problems)
    calendar = _calendar_for(times[valid], problems)
    if extended_hours or drop_extended_hours:
        _check_extended_hours(times, valid, calendar, problems)
    else:
        _check_sessions(times, valid, calendar, problems)
    problems.raise_first()
    if drop_extended_hours and not extended_hours:
        keep = in_hours(times, calendar, extended=False)
        order = order[keep[order]]
    # codes are all valid now: split the symbol-sorted rows at each symbol's first row
    ends = np.searchsorted(codes[order], np.arange(len(names) + 1), side="left")
    by_symbol: dict[str, list[Bar]] = {}
    for code, name in enumerate(names):
        rows = order[ends[code] : ends[code + 1]]
        if rows.size:
            chosen = {column: value[rows] for column, value in values.items()}
            by_symbol[name] = _to_bars(times[rows], chosen, name)
    return by_symbol, calendar


def in_hours(times: np.ndarray, calendar: NyseCalendar, *, extended: bool) -> np.ndarray:
    """Which bars (int64 UTC nanoseconds) open inside a regular session of `calendar` or, with
    `extended`, inside 04:00-19:59 New York of a trading day (the hours Alpaca has bars for)."""
    opens, closes = _windows(calendar, extended)
    index = np.searchsorted(opens, times, side="right") - 1
    return (index >= 0) & (times < closes[np.maximum(index, 0)])


class Problems:
    """Collects the first offending row of each check so the earliest one in the data wins.

    Rows are numbered across the sources added with `source` (one file, or a folder's files in
    order); a problem is reported against the file and the row within it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._starts: list[int] = []
        self._sources: list[tuple[Path, int | None]] = []
        self.found: list[tuple[int, str]] = []
        self._codes: np.ndarray | None = None
        self._names: tuple[str, ...] = ()

    def name_rows(self, codes: np.ndarray, names: tuple[str, ...]) -> None:
        """Rows hold bars of `names[codes[row]]` (-1: of no valid symbol): a problem names it."""
        self._codes = codes
        self._names = names

    def source(self, start: int, path: Path, header_lines: int | None) -> None:
        """Rows from `start` on come from `path`, whose first data row follows `header_lines`
        lines (None: not a text file, no line numbers)."""
        if self._starts and self._starts[-1] == start:
            self._starts.pop()
            self._sources.pop()
        self._starts.append(start)
        self._sources.append((path, header_lines))

    def add(self, mask: np.ndarray, describe: Callable[[int], str], offset: int = 0) -> None:
        """Record the first row where `mask` holds; `describe` gets its index within `mask`,
        whose first row is row `offset` of the whole."""
        hits = np.flatnonzero(mask)
        if hits.size:
            index = int(hits[0])
            self.found.append((index + offset, describe(index)))

    def raise_first(self) -> None:
        if not self.found:
            return
        index, problem = min(self.found, key=lambda item: item[0])
        which = bisect.bisect_right(self._starts, index) - 1
        path, header_lines = self._sources[which] if which >= 0 else (self.path, None)
        row = index - (self._starts[which] if which >= 0 else 0)
        line = row + 1 + header_lines if header_lines is not None else None
        symbol = None
        if self._codes is not None and self._codes[index] >= 0:
            symbol = self._names[self._codes[index]]
        raise BarDataError(path, problem, row=row + 1, line=line, symbol=symbol)


# ---------------------------------------------------------------------------- reading


# pandas' default missing-value markers: Arrow must treat the same cells as missing (a missing
# cell sends the file to the pandas path, which names it).
_NULLS = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def _read_clean(path: Path) -> tuple[pa.Table, int | None] | None:
    """The file through Arrow's typed readers, or None when Arrow cannot read it cleanly (the
    pandas path then finds and names the problem)."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            table = pq.read_table(path)
            names = [str(column).strip().lower() for column in table.column_names]
            if sorted(set(names) & set(COLUMNS)) != sorted(COLUMNS) or len(set(names)) < len(names):
                return None
            return table.rename_columns(names).select(_wanted(names)), None
        if name.endswith((".csv", ".csv.gz")):
            return _read_csv_typed(path), 1
    except (pa.ArrowException, ValueError, OSError, EOFError, zlib.error, UnicodeDecodeError):
        return None
    return None


def _read_csv_typed(path: Path) -> pa.Table:
    """A CSV with timestamps that carry an offset and numbers everywhere else, as Arrow reads
    it (ValueError when the header is not the six columns, each once)."""
    names = _csv_header(path)
    if sorted(set(names) & set(COLUMNS)) != sorted(COLUMNS) or len(set(names)) < len(names):
        raise ValueError("not the six columns")
    return pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(skip_rows=1, column_names=names),
        convert_options=pcsv.ConvertOptions(
            include_columns=_wanted(names),
            column_types={
                "timestamp": pa.timestamp("ns", tz="UTC"),
                **{column: pa.float64() for column in COLUMNS[1:]},
                SYMBOL_COLUMN: pa.dictionary(pa.int32(), pa.string()),
            },
            null_values=_NULLS,
            # a missing symbol (an empty cell, "NA") is a null, as the pandas path reads it
            strings_can_be_null=True,
        ),
    )


def _csv_header(path: Path) -> list[str]:
    """A CSV's column names, stripped and in lower case."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        header = next(csv.reader([handle.readline().lstrip("\ufeff")], skipinitialspace=True))
    return [column.strip().lower() for column in header]


def has_symbol_column(path: Path) -> bool:
    """Whether a bar file has a `symbol` column, from its header or schema alone (False when
    that cannot be read: loading the file then says why). What cannot be a bar file (a folder,
    a FIFO, nothing) is refused as loading it would be."""
    _require_regular_file(path)
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            names = [str(column).strip().lower() for column in pq.read_schema(path).names]
        elif name.endswith((".csv", ".csv.gz")):
            names = _csv_header(path)
        else:
            return False
    except (pa.ArrowException, ValueError, OSError, EOFError, zlib.error, UnicodeDecodeError):
        return False
    return SYMBOL_COLUMN in names


def _wanted(names: list[str]) -> list[str]:
    """The columns to read: the six, and the symbol column if the file has one."""
    return [*COLUMNS, SYMBOL_COLUMN] if SYMBOL_COLUMN in names else list(COLUMNS)


def typed_columns(table: pa.Table) -> Columns | None:
    """The columns of a table Arrow typed cleanly: timestamps with a zone inside the supported
    years, numbers without a gap. None for anything that needs the pandas path's diagnosis."""
    if table.num_rows == 0 or any(column.null_count for column in table.columns):
        return None
    stamp = table.column("timestamp").type
    if not pa.types.is_timestamp(stamp) or stamp.tz is None:
        return None
    raw = table.column("timestamp").cast(pa.int64()).to_numpy()
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[stamp.unit]
    first, last = (_epoch_seconds(bound) * per_second for bound in (EARLIEST, LATEST))
    if raw.min() < first or raw.max() >= last:
        return None  # the pandas path reports the date as written
    values: dict[str, np.ndarray] = {}
    for name in COLUMNS[1:]:
        column = table.column(name)
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            return None
        numbers = column.cast(pa.float64()).to_numpy()
        if np.isnan(numbers).any():
            return None
        values[name] = numbers
    nanos = raw.astype(np.int64) * (1_000_000_000 // per_second)
    if SYMBOL_COLUMN not in table.column_names:
        return Columns(nanos, values)
    symbols = table.column(SYMBOL_COLUMN)
    if pa.types.is_dictionary(symbols.type):
        symbols = symbols.cast(symbols.type.value_type)
    if not (pa.types.is_string(symbols.type) or pa.types.is_large_string(symbols.type)):
        return None  # not text: the pandas path names the first value that is no ticker
    encoded = pc.dictionary_encode(symbols.combine_chunks())
    return Columns(
        nanos,
        values,
        encoded.indices.to_numpy().astype(np.int64),
        tuple(encoded.dictionary.to_pylist()),
    )


def _epoch_seconds(moment: np.datetime64) -> int:
    return int(moment.astype("datetime64[s]").astype(np.int64))


def _read_frame(path: Path) -> tuple[pd.DataFrame, int | None]:
    """The raw table and, for text files, how many lines precede the first data row."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            return _parquet_to_frame(pq.read_table(path)), None
        if name.endswith(".csv") or name.endswith(".csv.gz"):
            frame = pd.read_csv(
                path,
                dtype={"timestamp": "string", SYMBOL_COLUMN: "string"},
                skipinitialspace=True,
                keep_default_na=True,
            )
            frame.columns = [str(column).strip().lower() for column in frame.columns]
            return frame, 1
    except UnicodeDecodeError:
        raise BarDataError(path, "cannot be read: not a UTF-8 text file") from None
    except EOFError:  # gzip's answer to a truncated file
        raise BarDataError(path, "cannot be read: the compressed file is truncated") from None
    except (pa.ArrowException, ValueError, OSError, zlib.error) as exc:
        # ValueError covers pandas' ParserError and EmptyDataError and its other complaints
        # about a malformed table; OSError covers gzip.BadGzipFile.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BarDataError(path, f"cannot be read: {message}") from None
    raise BarDataError(path, "unsupported file type; expected .csv, .csv.gz or .parquet")


def _require_regular_file(path: Path) -> None:
    """Refuse at once what cannot be a bar file: reading a FIFO or a device blocks or never
    ends, and a directory cannot be read at all."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BarDataError(path, "file not found") from None
    except OSError as exc:
        raise BarDataError(path, f"cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise BarDataError(path, "is a directory, expected a bar file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise BarDataError(path, f"is {kind}, not a regular file; expected a bar file")


def _parquet_to_frame(table: pa.Table) -> pd.DataFrame:
    frame: pd.DataFrame = table.to_pandas()
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    return frame


# ---------------------------------------------------------------------------- parsing (pandas)


def _parse_timestamps(
    column: pd.Series, zone: ZoneInfo | None, path: Path, problems: Problems, start: int
) -> np.ndarray:
    """Timestamps as int64 UTC nanoseconds (NAT_INT where invalid); naive ones need a zone."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        series = column
        if series.dt.tz is None:
            if zone is None:
                raise BarDataError(
                    path,
                    "timestamp column has no time zone; pass --tz (e.g. --tz America/New_York)",
                )
            series = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        problems.add(series.isna().to_numpy(), lambda i: "timestamp is missing or not valid", start)
        nanos, outside = _utc_nanos(series)
        problems.add(outside, lambda i: _outside_years(str(series.iloc[i])), start)
        return nanos

    text = column.astype("string").str.strip()
    blank = (text.isna() | (text == "")).to_numpy()
    problems.add(blank, lambda i: "timestamp is empty", start)
    has_offset = text.str.contains(_OFFSET, na=False).to_numpy()
    naive = ~has_offset & ~blank
    nanos = np.full(len(text), NAT_INT, dtype="int64")
    outside = np.zeros(len(text), dtype=bool)
    if has_offset.any():
        nanos[has_offset], outside[has_offset] = _utc_nanos(
            pd.to_datetime(text[has_offset], utc=True, format="ISO8601", errors="coerce")
        )
    naive_but_readable = np.zeros(len(text), dtype=bool)
    if naive.any():
        local = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        if zone is None:
            naive_but_readable[naive] = local.notna().to_numpy()
        else:
            localized = local.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
            nanos[naive], outside[naive] = _utc_nanos(localized)
    problems.add(outside, lambda i: _outside_years(repr(text.iloc[i])), start)
    problems.add(
        naive_but_readable,
        lambda i: (
            f"timestamp {text.iloc[i]!r} has no UTC offset; "
            "write it with Z or +HH:MM, or pass --tz (e.g. --tz America/New_York)"
        ),
        start,
    )
    unparsable = (nanos == NAT_INT) & ~blank & ~naive_but_readable & ~outside
    problems.add(
        unparsable,
        lambda i: f"timestamp {text.iloc[i]!r} cannot be parsed (or is not a valid local time)",
        start,
    )
    return nanos


def _utc_nanos(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """int64 nanoseconds since the epoch, UTC, with NaT as NAT_INT; and which rows hold a time
    outside EARLIEST..LATEST (also NAT_INT: they must not reach the calendar)."""
    moments = series.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy()
    outside = ~np.isnat(moments) & ((moments < EARLIEST) | (moments >= LATEST))
    kept = np.where(outside, np.datetime64("NaT"), moments)
    nanos: np.ndarray = kept.astype("datetime64[ns]").astype("int64")
    return nanos, outside


def _outside_years(shown: str) -> str:
    return f"timestamp {shown} is outside the years {FIRST_YEAR}-{LAST_YEAR}"


def _zone(tz: str | None, path: Path) -> ZoneInfo | None:
    if tz is None:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise BarDataError(path, f"unknown time zone {tz!r} given with --tz") from None


def _parse_numbers(column: pd.Series, name: str, problems: Problems, start: int) -> np.ndarray:
    raw = column
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    values = numbers.to_numpy()
    absent = raw.isna().to_numpy()
    problems.add(absent, lambda i: f"{name} is empty or NaN", start)
    bad = np.isnan(values) & ~absent
    problems.add(bad, lambda i: f"{name} {raw.iloc[i]!r} is not a number", start)
    _check_infinite(values, name, problems, start)
    return values


# ---------------------------------------------------------------------------- checks


def _check_infinite(values: np.ndarray, name: str, problems: Problems, start: int) -> None:
    problems.add(np.isinf(values), lambda i: f"{name} is infinite", start)


def _check_prices(values: dict[str, np.ndarray], problems: Problems) -> None:
    open_, high, low, close = (values[name] for name in PRICE_COLUMNS)
    for name in PRICE_COLUMNS:
        column = values[name]
        problems.add(column <= 0, _describe_not_positive(name, column))
        problems.add((column > 0) & (column < MIN_PRICE), _describe_limit(name, column, "below"))
        too_high = np.isfinite(column) & (column > MAX_PRICE)
        problems.add(too_high, _describe_limit(name, column, "above"))
    for name, other in (("open", open_), ("close", close)):
        problems.add(high < other, _describe_beyond("high", high, "below", name, other))
        problems.add(low > other, _describe_beyond("low", low, "above", name, other))
    volume = values["volume"]
    problems.add(volume < 0, lambda i: f"volume {volume[i]:g} is negative")
    problems.add(
        np.isfinite(volume) & (volume > MAX_VOLUME),
        lambda i: f"volume {volume[i]:g} is above {MAX_VOLUME:g}",
    )


def _calendar_for(times: np.ndarray, problems: Problems) -> NyseCalendar:
    if times.size == 0:
        problems.raise_first()
    try:
        return NyseCalendar.covering(
            datetime.fromtimestamp(int(times.min()) // 1_000_000_000, UTC),
            datetime.fromtimestamp(int(times.max()) // 1_000_000_000, UTC),
        )
    except (ValueError, OverflowError) as exc:
        problems.raise_first()
        raise BarDataError(problems.path, f"timestamps outside the NYSE calendar: {exc}") from None


def _describe_not_positive(name: str, column: np.ndarray) -> Callable[[int], str]:
    return lambda i: f"{name} {column[i]:g} is not positive"


def _describe_limit(name: str, column: np.ndarray, relation: str) -> Callable[[int], str]:
    limit = f"{MIN_PRICE:g}" if relation == "below" else f"{MAX_PRICE:,.0f}"
    return lambda i: f"{name} {column[i]:g} is {relation} {limit}, not a plausible price"


def _describe_beyond(
    name: str, column: np.ndarray, relation: str, other_name: str, other: np.ndarray
) -> Callable[[int], str]:
    return lambda i: f"{name} {column[i]:g} is {relation} {other_name} {other[i]:g}"


def _check_order(times: np.ndarray, valid: np.ndarray, problems: Problems) -> None:
    """Each row must be later than the row before it (pairs with a bad timestamp are skipped)."""
    step = np.diff(times)
    both = valid[1:] & valid[:-1]
    same = np.concatenate(([False], (step == 0) & both))
    backwards = np.concatenate(([False], (step < 0) & both))
    problems.add(same, lambda i: f"duplicate timestamp {_iso(times[i])}")
    problems.add(
        backwards,
        lambda i: f"timestamp {_iso(times[i])} is before the previous row's {_iso(times[i - 1])}",
    )


def _tickers(
    codes: np.ndarray, written: tuple[str, ...], problems: Problems
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The symbol column as tickers: each row's index into the sorted tickers (-1 where the
    symbol is empty or no ticker, recorded as a problem); " iwm" and "IWM" are one symbol."""
    canonical = sorted({value.strip().upper() for value in written if _not_a_ticker(value) is None})
    index = {name: number for number, name in enumerate(canonical)}
    # one more entry for code -1 (empty): numpy reads index -1 as the last element
    remap = np.array(
        [
            index.get(value.strip().upper(), -1) if _not_a_ticker(value) is None else -1
            for value in written
        ]
        + [-1],
        dtype=np.int64,
    )
    tickers = remap[codes]
    problems.add(codes < 0, lambda i: "symbol is empty")
    bad = (tickers < 0) & (codes >= 0)
    problems.add(bad, lambda i: _not_a_ticker(written[codes[i]]) or "")
    return tickers, tuple(canonical)


def _check_order_by_symbol(
    times: np.ndarray,
    valid: np.ndarray,
    codes: np.ndarray,
    order: np.ndarray,
    problems: Problems,
) -> None:
    """Each symbol's rows must each be later than that symbol's row before (`order`: the rows
    sorted by symbol, in file order within one)."""
    ordered = times[order]
    step = np.diff(ordered)
    both = valid[order][1:] & valid[order][:-1] & (codes[order][1:] == codes[order][:-1])
    previous = np.full(len(times), -1, dtype=np.int64)
    previous[order[1:]] = np.where(both, order[:-1], -1)
    same = np.zeros(len(times), dtype=bool)
    same[order[1:][(step == 0) & both]] = True
    backwards = np.zeros(len(times), dtype=bool)
    backwards[order[1:][(step < 0) & both]] = True
    problems.add(
        same,
        lambda i: f"duplicate timestamp {_iso(times[i])} (the symbol's row {previous[i] + 1})",
    )
    problems.add(
        backwards,
        lambda i: (
            f"timestamp {_iso(times[i])} is before {_iso(times[previous[i]])} of the symbol's "
            f"previous row {previous[i] + 1}"
        ),
    )


def _check_sessions(
    times: np.ndarray, valid: np.ndarray, calendar: NyseCalendar, problems: Problems
) -> None:
    """Every bar must open inside an NYSE regular session (holidays and early closes included)."""
    outside = ~in_hours(times, calendar, extended=False) & valid

    def describe(index: int) -> str:
        moment = datetime.fromtimestamp(int(times[index]) // 1_000_000_000, UTC)
        day = moment.astimezone(NEW_YORK).date()
        session = calendar.session_on(day)
        local = moment.astimezone(NEW_YORK).strftime("%H:%M")
        if session is None:
            return f"bar {_iso(times[index])} is on {day}, not an NYSE trading day"
        hours = (
            f"{session.open.astimezone(NEW_YORK):%H:%M}-{session.close.astimezone(NEW_YORK):%H:%M}"
        )
        return (
            f"bar {_iso(times[index])} ({local} New York) is outside regular hours {hours} of {day}"
        )

    problems.add(outside, describe)


EXTENDED_HOURS = (4 * 60, 20 * 60)  # minutes after New York midnight: 04:00 up to 20:00


def _check_extended_hours(
    times: np.ndarray, valid: np.ndarray, calendar: NyseCalendar, problems: Problems
) -> None:
    """Every bar must open 04:00-19:59 New York on an NYSE trading day (pre-market, the regular
    session and after-hours: the hours Alpaca's stream sends bars for)."""
    outside = ~in_hours(times, calendar, extended=True) & valid

    def describe(index: int) -> str:
        local = datetime.fromtimestamp(int(times[index]) // 1_000_000_000, UTC).astimezone(NEW_YORK)
        day = local.date()
        if calendar.session_on(day) is None:
            return f"bar {_iso(times[index])} is on {day}, not an NYSE trading day"
        return (
            f"bar {_iso(times[index])} ({local:%H:%M} New York) is outside extended "
            f"hours 04:00-20:00 of {day}"
        )

    problems.add(outside, describe)


def _windows(calendar: NyseCalendar, extended: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, non-overlapping [open, close) windows of the calendar's trading days, as int64
    UTC nanoseconds: the regular sessions, or 04:00-20:00 New York of each trading day."""
    sessions = calendar.sessions()
    if extended:
        first, end = (time(minute // 60, minute % 60) for minute in EXTENDED_HOURS)
        bounds = [
            (
                _nanos(datetime.combine(s.day, first, NEW_YORK)),
                _nanos(datetime.combine(s.day, end, NEW_YORK)),
            )
            for s in sessions
        ]
    else:
        bounds = [(_nanos(s.open), _nanos(s.close)) for s in sessions]
    table = np.array(bounds, dtype=np.int64).reshape(-1, 2)
    return table[:, 0], table[:, 1]


# ---------------------------------------------------------------------------- bars


def _to_bars(times: np.ndarray, values: dict[str, np.ndarray], symbol: str = "") -> list[Bar]:
    if times.size and not (times % 1_000_000_000).any():
        # whole seconds (every real bar): exact, and twice as fast as pandas' conversion
        seconds = (times // 1_000_000_000).tolist()
        moments: list[datetime] = list(map(datetime.fromtimestamp, seconds, repeat(UTC)))
    else:
        moments = list(
            pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize(UTC).to_pydatetime()
        )
    columns = [values[name].tolist() for name in COLUMNS[1:]]
    with paused_collector():  # ~100k tuples, no cycle among them
        # tuple.__new__ straight from C: Bar(...) would run the NamedTuple's Python __new__
        # for every bar; zip yields exactly Bar's fields in order, the symbol last (the columns
        # have one length by construction, so zip need not check it).
        return list(map(_new_bar, zip(moments, *columns, repeat(symbol), strict=False)))


_new_bar = partial(tuple.__new__, Bar)


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _iso(nanos: np.int64 | int) -> str:
    moment = datetime.fromtimestamp(int(nanos) // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
