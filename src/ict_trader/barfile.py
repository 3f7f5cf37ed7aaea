"""Loading 1-minute bar files (CSV, CSV.gz, Parquet) with errors a user can act on.

A bad file must never reach the detector: a silently skipped or misordered bar changes which
signals fire. So every check runs over the whole file up front, and the first problem in file
order is reported as one line naming the file, the row and what is wrong.
"""

from __future__ import annotations

import re
import stat
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ict_trader.bars import Bar
from ict_trader.calendar import NEW_YORK, NyseCalendar

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
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

    def __init__(self, path: Path, problem: str, row: int | None = None, line: int | None = None):
        self.path = path
        self.row = row
        self.problem = problem
        where = ""
        if row is not None:
            where = f"row {row}" + (f" (line {line})" if line is not None else "") + ": "
        super().__init__(f"{path}: {where}{problem}")


@dataclass(frozen=True)
class BarFile:
    """The validated bars of one file plus the NYSE calendar that covers them."""

    path: Path
    bars: list[Bar]
    calendar: NyseCalendar


def load_bars(path: Path | str, tz: str | None = None, *, extended_hours: bool = False) -> BarFile:
    """Read and validate a bar file.

    `tz` is the zone of timestamps that carry no UTC offset (e.g. "America/New_York"); without it
    such timestamps are refused rather than guessed. `extended_hours` keeps pre- and after-market
    bars (04:00-19:59 New York on trading days), for the emulator's bar stream, which sends them
    as Alpaca's does; the detector and backtests only ever load regular hours.
    """
    path = Path(path)
    frame, header_lines = _read_frame(path)
    problems = _Problems(path, header_lines)
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise BarDataError(path, f"missing column {', '.join(missing)} (found: {found})")
    if frame.empty:
        raise BarDataError(path, "no bars in file")

    # Every check runs over every row before anything is raised, so the report is the first
    # problem in file order, whatever kind it is.
    times = _parse_timestamps(frame["timestamp"], tz, problems)
    values = {name: _parse_numbers(frame[name], name, problems) for name in COLUMNS[1:]}
    _check_prices(values, problems)
    valid = times != NAT_INT
    _check_order(times, valid, problems)
    calendar = _calendar_for(times[valid], problems)
    if extended_hours:
        _check_extended_hours(times, valid, calendar, problems)
    else:
        _check_sessions(times, valid, calendar, problems)
    problems.raise_first()

    moments = pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize(UTC).to_pydatetime()
    bars = [
        Bar(t, o, h, lo, c, v)
        for t, o, h, lo, c, v in zip(
            moments,
            values["open"].tolist(),
            values["high"].tolist(),
            values["low"].tolist(),
            values["close"].tolist(),
            values["volume"].tolist(),
            strict=True,
        )
    ]
    return BarFile(path=path, bars=bars, calendar=calendar)


class _Problems:
    """Collects the first offending row of each check so the earliest one in the file wins."""

    def __init__(self, path: Path, header_lines: int | None) -> None:
        self.path = path
        self.header_lines = header_lines
        self.found: list[tuple[int, str]] = []

    def add(self, mask: np.ndarray, describe: Callable[[int], str]) -> None:
        hits = np.flatnonzero(mask)
        if hits.size:
            index = int(hits[0])
            self.found.append((index, describe(index)))

    def raise_first(self) -> None:
        if not self.found:
            return
        index, problem = min(self.found, key=lambda item: item[0])
        line = index + 1 + self.header_lines if self.header_lines is not None else None
        raise BarDataError(self.path, problem, row=index + 1, line=line)


def _read_frame(path: Path) -> tuple[pd.DataFrame, int | None]:
    """The raw table and, for text files, how many lines precede the first data row."""
    _require_regular_file(path)
    name = path.name.lower()
    try:
        if name.endswith(".parquet") or name.endswith(".pq"):
            return _parquet_to_frame(pq.read_table(path)), None
        if name.endswith(".csv") or name.endswith(".csv.gz"):
            frame = pd.read_csv(
                path, dtype={"timestamp": "string"}, skipinitialspace=True, keep_default_na=True
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


def _parse_timestamps(column: pd.Series, tz: str | None, problems: _Problems) -> np.ndarray:
    """Timestamps as int64 UTC nanoseconds (NAT_INT where invalid); naive ones need a zone."""
    zone = _zone(tz, problems.path)
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        series = column
        if series.dt.tz is None:
            if zone is None:
                raise BarDataError(
                    problems.path,
                    "timestamp column has no time zone; pass --tz (e.g. --tz America/New_York)",
                )
            series = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        problems.add(series.isna().to_numpy(), lambda i: "timestamp is missing or not valid")
        nanos, outside = _utc_nanos(series)
        problems.add(outside, lambda i: _outside_years(str(series.iloc[i])))
        return nanos

    text = column.astype("string").str.strip()
    blank = (text.isna() | (text == "")).to_numpy()
    problems.add(blank, lambda i: "timestamp is empty")
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
    problems.add(outside, lambda i: _outside_years(repr(text.iloc[i])))
    problems.add(
        naive_but_readable,
        lambda i: (
            f"timestamp {text.iloc[i]!r} has no UTC offset; "
            "write it with Z or +HH:MM, or pass --tz (e.g. --tz America/New_York)"
        ),
    )
    unparsable = (nanos == NAT_INT) & ~blank & ~naive_but_readable & ~outside
    problems.add(
        unparsable,
        lambda i: f"timestamp {text.iloc[i]!r} cannot be parsed (or is not a valid local time)",
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


def _parse_numbers(column: pd.Series, name: str, problems: _Problems) -> np.ndarray:
    raw = column
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    values = numbers.to_numpy()
    absent = raw.isna().to_numpy()
    problems.add(absent, lambda i: f"{name} is empty or NaN")
    bad = np.isnan(values) & ~absent
    problems.add(bad, lambda i: f"{name} {raw.iloc[i]!r} is not a number")
    infinite = np.isinf(values)
    problems.add(infinite, lambda i: f"{name} is infinite")
    return values


def _check_prices(values: dict[str, np.ndarray], problems: _Problems) -> None:
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


def _calendar_for(times: np.ndarray, problems: _Problems) -> NyseCalendar:
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


def _check_order(times: np.ndarray, valid: np.ndarray, problems: _Problems) -> None:
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


def _check_sessions(
    times: np.ndarray, valid: np.ndarray, calendar: NyseCalendar, problems: _Problems
) -> None:
    """Every bar must open inside an NYSE regular session (holidays and early closes included)."""
    times = np.where(valid, times, times[valid][0])
    utc = pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize(UTC)
    codes, unique_days = pd.factorize(utc.tz_convert(NEW_YORK).date)
    days = unique_days[codes]
    sessions = [calendar.session_on(day) for day in unique_days]
    never = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)
    day_bounds = np.array(
        [(_nanos(s.open), _nanos(s.close)) if s is not None else never for s in sessions],
        dtype="int64",
    ).reshape(-1, 2)
    opens = day_bounds[codes, 0]
    closes = day_bounds[codes, 1]
    outside = ((times < opens) | (times >= closes)) & valid

    def describe(index: int) -> str:
        moment = datetime.fromtimestamp(int(times[index]) / 1e9, UTC)
        day = days[index]
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
    times: np.ndarray, valid: np.ndarray, calendar: NyseCalendar, problems: _Problems
) -> None:
    """Every bar must open 04:00-19:59 New York on an NYSE trading day (pre-market, the regular
    session and after-hours: the hours Alpaca's stream sends bars for)."""
    times = np.where(valid, times, times[valid][0])
    local = pd.DatetimeIndex(times.astype("datetime64[ns]")).tz_localize(UTC).tz_convert(NEW_YORK)
    minute = (local.hour * 60 + local.minute).to_numpy()
    codes, unique_days = pd.factorize(local.date)
    trading = np.array([calendar.session_on(day) is not None for day in unique_days])[codes]
    first, end = EXTENDED_HOURS
    outside = (~trading | (minute < first) | (minute >= end)) & valid

    def describe(index: int) -> str:
        day = unique_days[codes[index]]
        if not trading[index]:
            return f"bar {_iso(times[index])} is on {day}, not an NYSE trading day"
        return (
            f"bar {_iso(times[index])} ({local[index]:%H:%M} New York) is outside extended "
            f"hours 04:00-20:00 of {day}"
        )

    problems.add(outside, describe)


def _nanos(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def _iso(nanos: np.int64 | int) -> str:
    moment = datetime.fromtimestamp(int(nanos) // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
