"""The folder `ict-trader data download` writes: `<root>/<SYMBOL>/<YYYY-MM>.parquet`.

Months are New York months: a session's pre-market, regular and after-hours bars all fall on
its New York date, while a January 31 after-hours bar is already February 1 in UTC. Each file
records in its Parquet metadata which moments it covers and how it was fetched (feed,
adjustment, hours), so a re-run can tell a complete month from one fetched while it was still
going on, and never mixes feeds or adjustments in one folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ict_trader.calendar import NEW_YORK

SUFFIX = ".parquet"
_MONTH_FILE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])\.parquet$")
# Alpaca's tickers: letters and digits, with a dot for share classes (BRK.B).
SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.]{0,9}$")
_META = "ict_trader."


@dataclass(frozen=True, order=True)
class Month:
    """A New York calendar month."""

    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def name(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end_day(self) -> date:
        """The first day of the next month."""
        return self.next().first_day

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def start(self) -> datetime:
        """New York midnight of the month's first day, in UTC."""
        return ny_midnight(self.first_day)

    def end(self) -> datetime:
        """New York midnight of the next month's first day (exclusive), in UTC."""
        return self.next().start()


def ny_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)


def months_between(first: date, last: date) -> list[Month]:
    """The months from `first`'s to `last`'s, both included."""
    months = []
    month, end = Month.of(first), Month.of(last)
    while month <= end:
        months.append(month)
        month = month.next()
    return months


def month_file(root: Path, symbol: str, month: Month) -> Path:
    return root / symbol / f"{month.name}{SUFFIX}"


def month_files(folder: Path) -> list[tuple[Month, Path]]:
    """A symbol folder's monthly files, oldest first (other files are not ours: ignored)."""
    found = []
    for path in folder.iterdir():
        match = _MONTH_FILE.match(path.name)
        if match and path.is_file():
            found.append((Month(int(match[1]), int(match[2])), path))
    return sorted(found)


def symbols_in(root: Path) -> dict[str, list[tuple[Month, Path]]]:
    """Each symbol folder under `root` that holds monthly files, with its files; a `root` that
    is itself one symbol's folder counts as that symbol."""
    own = month_files(root)
    if own:
        return {root.name.upper(): own}
    found = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and SYMBOL.match(child.name):
            files = month_files(child)
            if files:
                found[child.name] = files
    return found


@dataclass(frozen=True)
class Coverage:
    """What a monthly file holds: bars opening in [start, until), fetched with these options."""

    start: datetime
    until: datetime
    feed: str
    adjustment: str
    extended_hours: bool

    def metadata(self, symbol: str, fetched_at: datetime) -> dict[bytes, bytes]:
        fields = {
            "source": "alpaca",
            "symbol": symbol,
            "start": self.start.isoformat(),
            "until": self.until.isoformat(),
            "feed": self.feed,
            "adjustment": self.adjustment,
            "extended_hours": "true" if self.extended_hours else "false",
            "fetched_at": fetched_at.isoformat(),
        }
        return {f"{_META}{key}".encode(): value.encode() for key, value in fields.items()}

    @classmethod
    def read(cls, path: Path) -> Coverage | None:
        """The coverage a file records, or None if it records none (not written by us, or
        unreadable: it is then fetched again and replaced)."""
        try:
            raw = pq.read_schema(path).metadata or {}
        except (pa.ArrowException, OSError):
            return None
        fields = {
            key.decode()[len(_META) :]: value.decode()
            for key, value in raw.items()
            if key.startswith(_META.encode())
        }
        try:
            return cls(
                start=datetime.fromisoformat(fields["start"]),
                until=datetime.fromisoformat(fields["until"]),
                feed=fields["feed"],
                adjustment=fields["adjustment"],
                extended_hours=fields["extended_hours"] == "true",
            )
        except (KeyError, ValueError):
            return None


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write the file so that it either exists whole or not at all: into a temporary file
    beside it, synced, then renamed over it. A download killed mid-write leaves the previous
    file (or none) and a `.tmp` file the loader ignores and the next write replaces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    with partial.open("wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
