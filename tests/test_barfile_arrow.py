"""Arrow's typed readers and the pandas path give the same bars, or the same one-line error.

The loader reads a file through Arrow and falls back to pandas only when Arrow cannot type it
cleanly; the pandas path is the one whose messages tests/test_barfile.py and
tests/test_misuse_inputs.py pin. Here every input is loaded both ways — as shipped, and with the
Arrow path switched off — and the outcomes must be identical: the speed-up may not change a
single bar or a single word of an error.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import NamedTuple
from unittest import mock

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ict_trader import barfile
from ict_trader.barfile import BarDataError, load_bars
from ict_trader.bars import Bar

HEADER = "timestamp,open,high,low,close,volume"
GOOD_ROWS = [
    "2024-07-29T13:30:00Z,465.71,465.9,464.98,464.98,608500",
    "2024-07-29T13:31:00Z,464.98,465.16,464.41,464.47,281643",
    "2024-07-29T13:32:00Z,464.43,465.23,464.2,465.21,113857",
    "2024-07-29T13:33:00Z,465.2,465.3,465.1,465.25,90000",
]
# Cells that parse differently, or not at all, in one reader or the other.
TIMESTAMPS = [
    "2024-07-29T13:34:00Z",
    "2024-07-29T09:34:00-04:00",
    "2024-07-29T09:34:00-0400",
    "2024-07-29 13:34:00+00:00",
    "2024-07-29T13:34Z",
    "2024-07-29T13:34:00.5Z",
    "2024-07-29T13:34:00z",
    "2024-07-29T13:34:00",
    "2024-07-29",
    "2024-07-29T13:65:00Z",
    "2024-07-29T25:00:00Z",
    "2024-07-29T13:33:00Z",  # a duplicate of the row before
    "2024-07-29T13:29:00Z",  # pre-market and out of order
    "2024-07-29T20:00:00Z",  # the 16:00 closing print
    "2024-08-03T14:30:00Z",  # a Saturday
    "1600-01-03T14:30:00Z",
    "2300-01-03T14:30:00Z",
    "1722259980",
    "yesterday",
    "",
    " 2024-07-29T13:34:00Z",
    '"2024-07-29T13:34:00Z"',
]
NUMBERS = [
    "465",
    "465.5",
    "+465.5",
    " 465.5",
    "4.655e2",
    "465.",
    ".5",
    "0",
    "-1",
    "1e-9",
    "1e-400",
    "1e400",
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "",
    "NULL",
    "None",
    "abc",
    "0x10",
    "1_000",
    "2e6",
    '"465.5"',
]


@contextmanager
def pandas_only() -> Iterator[None]:
    """The loader as it was before Arrow: every file parsed by the pandas path."""
    with mock.patch.object(barfile, "_read_clean", return_value=None):
        yield


class Loaded(NamedTuple):
    """A load's result in a comparable form (calendars compare by identity)."""

    bars: list[Bar]
    calendar_range: tuple[date, date]


def outcome(path: Path, tz: str | None = None) -> Loaded | str:
    try:
        loaded = load_bars(path, tz=tz)
    except BarDataError as exc:
        return str(exc)
    return Loaded(loaded.bars, (loaded.calendar.start, loaded.calendar.end))


def both_ways(path: Path, tz: str | None = None) -> tuple[Loaded | str, Loaded | str]:
    fast = outcome(path, tz)
    with pandas_only():
        slow = outcome(path, tz)
    return fast, slow


@st.composite
def rows(draw: st.DrawFn) -> list[str]:
    """The good rows with a few cells replaced by tricky ones."""
    chosen = list(GOOD_ROWS)
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(chosen)))
        cells = (chosen[min(index, len(chosen) - 1)]).split(",")
        column = draw(st.integers(0, 5))
        cells[column] = draw(st.sampled_from(TIMESTAMPS if column == 0 else NUMBERS))
        if column == 0 and index == len(chosen):
            chosen.append(",".join(cells))
        else:
            chosen[min(index, len(chosen) - 1)] = ",".join(cells)
    return chosen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows(), st.sampled_from([None, "America/New_York"]), st.booleans())
def test_csv_files_load_the_same_either_way(
    chosen: list[str], tz: str | None, compressed: bool
) -> None:
    text = "\n".join([HEADER, *chosen]) + "\n"
    with TemporaryDirectory(prefix="research-arrow-") as folder:
        path = Path(folder) / ("bars.csv.gz" if compressed else "bars.csv")
        path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())
        fast, slow = both_ways(path, tz)
        read = barfile._read_clean(path)
        typed = read is not None and barfile.typed_columns(read[0]) is not None
    event("Arrow typed it" if typed else "pandas parsed it")
    event("loaded" if isinstance(fast, Loaded) else "refused")
    assert fast == slow


def test_header_variants_load_the_same_either_way(tmp_path: Path) -> None:
    headers = [
        "Timestamp,Open,High,Low,Close,Volume",
        " timestamp, open, high, low, close, volume",
        "\ufefftimestamp,open,high,low,close,volume",
        "volume,close,low,high,open,timestamp",  # another order
        "timestamp,open,high,low,close,volume,vwap",  # an extra column
        "timestamp,open,high,low,close,volume,open",  # a column twice
        "timestamp,open,high,low,close",
        "time,open,high,low,close,volume",
    ]
    for number, header in enumerate(headers):
        names = [name.strip().lstrip("\ufeff").lower() for name in header.split(",")]
        lines = []
        for row in GOOD_ROWS:
            cells = dict(zip(HEADER.split(","), row.split(","), strict=True))
            lines.append(",".join(cells.get(name, "1") for name in names))
        path = tmp_path / f"bars{number}.csv"
        path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        fast, slow = both_ways(path)
        assert fast == slow, header
    # the cases the Arrow path takes must load at all
    assert isinstance(both_ways(tmp_path / "bars3.csv")[0], Loaded)


@contextmanager
def arrow_only() -> Iterator[None]:
    """Fails the test if the pandas path is used: the file must go through Arrow."""
    with mock.patch.object(barfile, "_read_frame", side_effect=AssertionError("pandas used")):
        yield


def test_clean_files_go_through_arrow_alone(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([HEADER, *GOOD_ROWS]) + "\n", encoding="utf-8")
    with arrow_only():
        assert len(load_bars(path).bars) == 4
    path.write_text("\n".join([HEADER, *GOOD_ROWS, GOOD_ROWS[-1]]) + "\n", encoding="utf-8")
    with arrow_only(), pytest.raises(BarDataError) as caught:
        load_bars(path)  # typed cleanly: the checks, not pandas, find the duplicate
    assert str(caught.value) == (
        f"{path}: row 5 (line 6): duplicate timestamp 2024-07-29T13:33:00Z"
    )


def test_the_dev_year_loads_the_same_either_way(dev_year: Path, tmp_path: Path) -> None:
    with arrow_only():
        outcome(dev_year)
    fast, slow = both_ways(dev_year)
    assert isinstance(fast, Loaded) and isinstance(slow, Loaded)
    assert len(fast.bars) == 97_740
    assert fast.bars == slow.bars
    assert all(bar.time.tzinfo is not None for bar in fast.bars[:5])
    # and from Parquet, in each timestamp unit the writers use
    frame = pd.read_csv(dev_year)
    for unit in ("s", "ms", "us", "ns"):
        table = pa.table(
            {
                "timestamp": pa.array(
                    pd.to_datetime(frame["timestamp"], utc=True), pa.timestamp(unit, tz="UTC")
                ),
                **{name: pa.array(frame[name]) for name in ("open", "high", "low", "close")},
                "volume": pa.array(frame["volume"], pa.int64()),
            }
        )
        path = tmp_path / f"dev_{unit}.parquet"
        pq.write_table(table, path)
        with arrow_only():
            outcome(path)
        from_parquet, slow_parquet = both_ways(path)
        assert isinstance(from_parquet, Loaded) and isinstance(slow_parquet, Loaded)
        assert from_parquet.bars == fast.bars
        assert slow_parquet.bars == fast.bars


def test_parquet_oddities_load_the_same_either_way(tmp_path: Path) -> None:
    stamps = pd.to_datetime([row.split(",")[0] for row in GOOD_ROWS], utc=True)
    prices = {"open": [465.0] * 4, "high": [466.0] * 4, "low": [464.0] * 4, "close": [465.5] * 4}
    tables = {
        "new york zone": {
            "timestamp": pa.array(stamps.tz_convert("America/New_York")),
            **prices,
            "volume": [1, 2, 3, 4],
        },
        "naive": {"timestamp": pa.array(stamps.tz_localize(None)), **prices, "volume": [1] * 4},
        "a null price": {
            "timestamp": pa.array(stamps),
            **prices,
            "close": [465.5, None, 465.5, 465.5],
            "volume": [1] * 4,
        },
        "a NaN volume": {
            "timestamp": pa.array(stamps),
            **prices,
            "volume": [1.0, float("nan"), 1.0, 1.0],
        },
        "a null time": {
            "timestamp": pa.array([*stamps[:3], None], pa.timestamp("us", tz="UTC")),
            **prices,
            "volume": [1] * 4,
        },
        "text prices": {
            "timestamp": pa.array(stamps),
            **{name: [str(v) for v in values] for name, values in prices.items()},
            "volume": [1] * 4,
        },
        "upper-case names": {
            "TIMESTAMP": pa.array(stamps),
            **{name.upper(): values for name, values in prices.items()},
            "Volume": [1] * 4,
        },
        "high below open": {
            "timestamp": pa.array(stamps),
            **prices,
            "high": [466.0, 464.5, 466.0, 466.0],
            "volume": [1] * 4,
        },
    }
    for label, columns in tables.items():
        path = tmp_path / f"{label.replace(' ', '_')}.parquet"
        pq.write_table(pa.table(columns), path)
        for tz in (None, "America/New_York"):
            fast, slow = both_ways(path, tz)
            assert fast == slow, label
    assert isinstance(outcome(tmp_path / "new_york_zone.parquet"), Loaded)
    refused = str(outcome(tmp_path / "high_below_open.parquet"))
    assert "row 2: high 464.5 is below open 465" in refused
