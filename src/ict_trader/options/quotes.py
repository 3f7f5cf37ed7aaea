"""A user's option quote file: real bid/ask prices for a backtest or replay, validated, and the
quote in force for a contract at a moment.

Schema (CSV, CSV.gz or Parquet; one row per quote, any number of contracts, other columns
ignored):

| column | what |
| --- | --- |
| `timestamp` | ISO 8601 with a UTC offset (`2024-07-29T13:31:00Z`); naive only with `tz` |
| `symbol` | the contract's OCC symbol as Alpaca writes it (`QQQ240729C00465000`) |
| `bid` | bid price per share, dollars, >= 0 (`bid_price` is read as `bid`) |
| `ask` | ask price per share, dollars, >= bid (`ask_price` is read as `ask`) |

Each contract's rows must be in time order (contracts may interleave), no quote may be stamped
after its contract's expiry day, and bid 0 / ask 0 is a valid "no market" quote. As with bar
files, the whole file is checked up front and the first problem in file order is reported in
one line naming the file, the row (and line) and what is wrong (`QuoteDataError`).
"""

from __future__ import annotations

import csv
import gzip
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ict_trader.core.calendar import NEW_YORK
from ict_trader.core.instruments import Instrument, OptionRight, instrument_of
from ict_trader.marketdata.barfile import (
    _NULLS,
    EARLIEST,
    LATEST,
    NAT_INT,
    BarDataError,
    Problems,
    _parse_numbers,
    _parse_timestamps,
    _read_frame,
    _zone,
)
from ict_trader.options.pricing import OptionQuote, QuoteSource

COLUMNS = ("timestamp", "symbol", "bid", "ask")
ALIASES = {"bid_price": "bid", "ask_price": "ask"}  # alpaca-py's quote DataFrame
MAX_PREMIUM = 100_000.0  # dollars per share: beyond it a price is a unit error, not a premium
DEFAULT_STALENESS = timedelta(minutes=5)


class QuoteDataError(BarDataError):
    """An option quote file cannot be used; `str()` is the one line to show the user."""


@dataclass(frozen=True)
class _Series:
    """One contract's quotes in time order: int64 UTC nanoseconds, bids and asks."""

    times: np.ndarray
    bids: np.ndarray
    asks: np.ndarray


@dataclass(frozen=True)
class QuoteBook:
    """The validated quotes of a file, by contract.

    `quote_at` gives the quote in force at a moment: the contract's last quote at or before it,
    if it is no older than `staleness`.
    """

    path: Path
    staleness: timedelta = DEFAULT_STALENESS
    _series: dict[str, _Series] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return sum(len(series.times) for series in self._series.values())

    @property
    def symbols(self) -> list[str]:
        return sorted(self._series)

    def contracts(
        self,
        underlying: str | None = None,
        expiry: date | None = None,
        right: OptionRight | None = None,
    ) -> list[Instrument]:
        """The file's contracts (those of `underlying`, expiring on `expiry`, of `right` when
        given), by expiry, right and strike."""
        found = [
            contract
            for contract in map(instrument_of, self._series)
            if (underlying is None or contract.underlying == underlying)
            and (expiry is None or contract.expiry == expiry)
            and (right is None or contract.right is right)
        ]
        return sorted(found, key=lambda c: (c.underlying, c.expiry, c.right, c.strike))

    def quote_at(
        self, symbol: str, moment: datetime, staleness: timedelta | None = None
    ) -> OptionQuote | None:
        """The quote of `symbol` in force at `moment` (timezone-aware): its last quote stamped
        at or before it, or None when there is none or it is older than `staleness` (the
        book's by default)."""
        if moment.tzinfo is None:
            raise ValueError(f"moment {moment} has no time zone")
        series = self._series.get(symbol)
        if series is None:
            return None
        at = _to_nanos(moment)
        index = int(np.searchsorted(series.times, at, side="right")) - 1
        if index < 0:
            return None
        stamp = int(series.times[index])
        limit = self.staleness if staleness is None else staleness
        if at - stamp > limit // timedelta(microseconds=1) * 1000:
            return None
        return OptionQuote(
            symbol=symbol,
            time=_from_nanos(stamp),
            bid=_price(series.bids[index]),
            ask=_price(series.asks[index]),
            source=QuoteSource.FILE,
        )


def load_quotes(
    path: Path | str, tz: str | None = None, *, staleness: timedelta = DEFAULT_STALENESS
) -> QuoteBook:
    """Read and validate an option quote file (schema in the module docstring).

    `tz` is the zone of timestamps written without a UTC offset; without it such timestamps are
    refused rather than guessed. Raises QuoteDataError with one line naming the problem.
    """
    path = Path(path)
    if staleness < timedelta(0):
        raise ValueError(f"staleness {staleness} is negative")
    try:
        return QuoteBook(path, staleness, _validated(path, tz))
    except QuoteDataError:
        raise
    except BarDataError as exc:  # the bar file's readers and checks, said of a quote file
        raise QuoteDataError(exc.path, exc.problem, row=exc.row, line=_line(exc)) from None


def _line(error: BarDataError) -> int | None:
    text = str(error)
    if "(line " not in text:
        return None
    return int(text.split("(line ", 1)[1].split(")", 1)[0])


# ---------------------------------------------------------------------------- reading


def _validated(path: Path, tz: str | None) -> dict[str, _Series]:
    _require_regular_file(path)
    zone = _zone(tz, path)
    problems = Problems(path)
    read = _read_clean(path)
    if read is not None:
        table, header_lines = read
        problems.source(0, path, header_lines)
        times = table.column("timestamp").cast(pa.int64()).to_numpy().astype(np.int64)
        encoded = table.column("symbol").combine_chunks().dictionary_encode()
        inverse = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        names: list[str] = [str(name).strip() for name in encoded.dictionary.to_pylist()]
        bids = table.column("bid").to_numpy().astype(np.float64)
        asks = table.column("ask").to_numpy().astype(np.float64)
    else:
        frame, header_lines = _read_frame(path)
        problems.source(0, path, header_lines)
        frame = frame.rename(columns=ALIASES)
        missing = [name for name in COLUMNS if name not in frame.columns]
        if missing:
            found = ", ".join(map(str, frame.columns)) or "none"
            raise QuoteDataError(path, f"missing column {', '.join(missing)} (found: {found})")
        if frame.empty:
            raise QuoteDataError(path, "no quotes in file")
        times = _parse_timestamps(frame["timestamp"], zone, path, problems, 0)
        text = frame["symbol"].astype("string").str.strip().fillna("")
        inverse, uniques = pd.factorize(text.to_numpy(dtype=object))
        names = [str(name) for name in uniques]
        bids = _parse_numbers(frame["bid"], "bid", problems, 0)
        asks = _parse_numbers(frame["ask"], "ask", problems, 0)
    problems.add(np.isinf(bids), lambda i: "bid is infinite")
    problems.add(np.isinf(asks), lambda i: "ask is infinite")
    codes, contracts = _check_symbols(inverse, names, problems)
    _check_prices(bids, asks, problems)
    valid = (times != NAT_INT) & (codes >= 0)
    _check_order(times, codes, valid, problems)
    _check_expiry(times, codes, contracts, valid, problems)
    problems.raise_first()
    return _series(times, codes, contracts, bids, asks)


def _read_clean(path: Path) -> tuple[pa.Table, int | None] | None:
    """The four columns as Arrow types them (UTC nanoseconds, text, two float columns), or
    None when Arrow cannot read the file cleanly: the pandas path then names the problem."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            table, header_lines = pq.read_table(path), None
            names = [
                ALIASES.get(n, n) for n in (str(c).strip().lower() for c in table.column_names)
            ]
            table = table.rename_columns(names)
        elif name.endswith((".csv", ".csv.gz")):
            table, header_lines = _read_csv_typed(path), 1
        else:
            return None
        if len(set(table.column_names)) < table.num_columns:
            return None
        table = table.select(list(COLUMNS))
    except (pa.ArrowException, ValueError, KeyError, OSError, EOFError, zlib.error):
        return None
    except UnicodeDecodeError:
        return None
    if table.num_rows == 0 or any(column.null_count for column in table.columns):
        return None
    stamp = table.column("timestamp").type
    if not pa.types.is_timestamp(stamp) or stamp.tz is None:
        return None
    if not pa.types.is_string(table.column("symbol").type) and not pa.types.is_large_string(
        table.column("symbol").type
    ):
        return None
    for price in ("bid", "ask"):
        kind = table.column(price).type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
            return None
    table = table.set_column(
        0, "timestamp", table.column("timestamp").cast(pa.timestamp("ns", "UTC"))
    )
    raw = table.column("timestamp").cast(pa.int64()).to_numpy()
    if raw.min() < _nanos64(EARLIEST) or raw.max() >= _nanos64(LATEST):
        return None  # the pandas path reports the date as written
    return table, header_lines


def _read_csv_typed(path: Path) -> pa.Table:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        header = next(csv.reader([handle.readline().lstrip("\ufeff")], skipinitialspace=True))
    names = [ALIASES.get(n, n) for n in (column.strip().lower() for column in header)]
    if not set(COLUMNS) <= set(names) or len(set(names)) < len(names):
        raise ValueError("not the quote columns")
    return pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(skip_rows=1, column_names=names),
        convert_options=pcsv.ConvertOptions(
            include_columns=list(COLUMNS),
            column_types={
                "timestamp": pa.timestamp("ns", tz="UTC"),
                "symbol": pa.string(),
                "bid": pa.float64(),
                "ask": pa.float64(),
            },
            null_values=_NULLS,
            strings_can_be_null=True,
        ),
    )


def _require_regular_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise QuoteDataError(path, "file not found") from None
    except OSError as exc:
        raise QuoteDataError(path, f"cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise QuoteDataError(path, "is a directory, expected an option quote file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise QuoteDataError(path, f"is {kind}, not a regular file; expected an option quote file")


# ---------------------------------------------------------------------------- checks


def _check_symbols(
    inverse: np.ndarray, names: list[str], problems: Problems
) -> tuple[np.ndarray, list[Instrument]]:
    """Each row's contract (row i names `names[inverse[i]]`) as an index into the returned
    list, -1 where the symbol is not an OCC option symbol (recorded as a problem)."""
    contracts: list[Instrument] = []
    index_of: dict[str, int] = {}
    code_of_name: list[int] = []
    reasons: dict[int, str] = {}
    for position, symbol in enumerate(names):
        reason = _not_occ(symbol)
        if reason is not None:
            code_of_name.append(-1)
            reasons[position] = reason
            continue
        if symbol not in index_of:  # names stripped of spaces may repeat
            index_of[symbol] = len(contracts)
            contracts.append(instrument_of(symbol))
        code_of_name.append(index_of[symbol])
    codes = np.asarray(code_of_name, dtype=np.int64)[inverse]
    problems.add(codes < 0, lambda i: reasons[int(inverse[i])])
    return codes, contracts


def _not_occ(symbol: str) -> str | None:
    if not symbol:
        return "symbol is empty"
    try:
        contract = instrument_of(symbol)
    except ValueError as exc:  # a well-formed symbol naming no date or strike
        return f"symbol {symbol!r} is not a valid OCC option symbol: {exc}"
    if not contract.is_option:
        return (
            f"symbol {symbol!r} is not an OCC option symbol "
            "(root, YYMMDD, C or P, strike x 1000 in 8 digits: QQQ240729C00465000)"
        )
    return None


def _check_prices(bids: np.ndarray, asks: np.ndarray, problems: Problems) -> None:
    for name, column in (("bid", bids), ("ask", asks)):
        problems.add(column < 0, _describe(f"{name} {{:g}} is negative", column))
        problems.add(
            np.isfinite(column) & (column > MAX_PREMIUM),
            _describe(
                f"{name} {{:g}} is above {MAX_PREMIUM:,.0f}, not a plausible premium", column
            ),
        )
    problems.add(bids > asks, lambda i: f"bid {bids[i]:g} is above ask {asks[i]:g}")


def _describe(template: str, column: np.ndarray) -> Callable[[int], str]:
    return lambda i: template.format(column[i])


def _check_order(
    times: np.ndarray, codes: np.ndarray, valid: np.ndarray, problems: Problems
) -> None:
    """Each contract's quotes must come in time order, one per moment."""
    rows = np.flatnonzero(valid)
    if rows.size < 2:
        return
    ordered = rows[np.argsort(codes[rows], kind="stable")]  # by contract, file order within
    same = codes[ordered][1:] == codes[ordered][:-1]
    step = times[ordered][1:] - times[ordered][:-1]
    later, earlier = ordered[1:], ordered[:-1]
    backwards = np.zeros(len(times), dtype=bool)
    duplicate = np.zeros(len(times), dtype=bool)
    backwards[later[same & (step < 0)]] = True
    duplicate[later[same & (step == 0)]] = True
    previous = np.zeros(len(times), dtype=np.int64)
    previous[later] = earlier
    problems.add(duplicate, lambda i: f"a second quote for the same contract at {_iso(times[i])}")
    problems.add(
        backwards,
        lambda i: (
            f"quote at {_iso(times[i])} is before the same contract's previous quote at "
            f"{_iso(times[previous[i]])} (row {previous[i] + 1})"
        ),
    )


def _check_expiry(
    times: np.ndarray,
    codes: np.ndarray,
    contracts: list[Instrument],
    valid: np.ndarray,
    problems: Problems,
) -> None:
    """A quote after its contract's expiry day is a wrong symbol or a wrong date."""
    if not contracts:
        return
    rows = np.flatnonzero(valid)
    local = (
        pd.DatetimeIndex(times[rows].astype("datetime64[ns]"))
        .tz_localize(UTC)
        .tz_convert(NEW_YORK)
        .normalize()
        .tz_localize(None)
        .to_numpy()
    )
    expiries = np.array([c.expiry for c in contracts], dtype="datetime64[ns]")
    late = np.zeros(len(times), dtype=bool)
    late[rows] = local > expiries[codes[rows]]

    def describe(i: int) -> str:
        contract = contracts[int(codes[i])]
        return f"quote at {_iso(times[i])} is after {contract.symbol}'s expiry {contract.expiry}"

    problems.add(late, describe)


# ---------------------------------------------------------------------------- the book


def _series(
    times: np.ndarray,
    codes: np.ndarray,
    contracts: list[Instrument],
    bids: np.ndarray,
    asks: np.ndarray,
) -> dict[str, _Series]:
    order = np.argsort(codes, kind="stable")  # each contract's rows are in time order
    bounds = np.searchsorted(codes[order], np.arange(len(contracts) + 1))
    series: dict[str, _Series] = {}
    for index, contract in enumerate(contracts):
        rows = order[bounds[index] : bounds[index + 1]]
        series[contract.symbol] = _Series(times[rows], bids[rows], asks[rows])
    return series


def _price(value: np.floating | float) -> Decimal:
    return Decimal(repr(float(value)))


def _to_nanos(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_nanos(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _nanos64(moment: np.datetime64) -> int:
    return int(moment.astype("datetime64[ns]").astype(np.int64))


def _iso(nanos: np.int64 | int) -> str:
    return _from_nanos(int(nanos)).strftime("%Y-%m-%dT%H:%M:%S") + "Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
