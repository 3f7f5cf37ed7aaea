"""Bar files: every validation names the file, the row and the problem; good files load exactly."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ict_trader.marketdata.barfile import BarDataError, load_bars

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ROWS = [
    "2024-07-29T13:30:00Z,465.71,465.9,464.98,464.98,608500",
    "2024-07-29T13:31:00Z,464.98,465.16,464.41,464.47,281643",
    "2024-07-29T13:32:00Z,464.43,465.23,464.2,465.21,113857",
]


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def error_of(path: Path, tz: str | None = None) -> str:
    with pytest.raises(BarDataError) as caught:
        load_bars(path, tz=tz)
    message = str(caught.value)
    assert "\n" not in message, "the error must be one line"
    assert message.startswith(str(path)), "the error must name the file"
    return message


def test_sample_loads_with_exact_values(sample_csv: Path) -> None:
    bar_file = load_bars(sample_csv)
    assert len(bar_file.bars) == 3900
    first = bar_file.bars[0]
    assert first.time == datetime(2024, 7, 29, 13, 30, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        465.71,
        465.9,
        464.98,
        464.98,
        608500,
    )
    assert bar_file.bars[-1].time == datetime(2024, 8, 9, 19, 59, tzinfo=UTC)


def test_gzip_csv_loads(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(HEADER + "\n".join(GOOD_ROWS) + "\n")
    assert [bar.close for bar in load_bars(path).bars] == [464.98, 464.47, 465.21]


def test_offsets_other_than_z_are_converted_to_utc(tmp_path: Path) -> None:
    rows = [
        row.replace("2024-07-29T13:3", "2024-07-29T09:3").replace("Z", "-04:00")
        for row in GOOD_ROWS
    ]
    bars = load_bars(write_csv(tmp_path, rows)).bars
    assert bars[0].time == datetime(2024, 7, 29, 13, 30, tzinfo=UTC)


def test_parquet_with_utc_microsecond_timestamps(tmp_path: Path, sample_csv: Path) -> None:
    frame = pd.read_csv(sample_csv)
    table = pa.table(
        {
            "timestamp": pa.array(
                pd.to_datetime(frame["timestamp"], utc=True), type=pa.timestamp("us", tz="UTC")
            ),
            **{name: pa.array(frame[name]) for name in ("open", "high", "low", "close", "volume")},
        }
    )
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    from_parquet = load_bars(path).bars
    assert from_parquet == load_bars(sample_csv).bars


def test_parquet_naive_timestamps_need_tz(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([datetime(2024, 7, 29, 9, 30)], type=pa.timestamp("us")),
            "open": [1.0],
            "high": [1.0],
            "low": [1.0],
            "close": [1.0],
            "volume": [1],
        }
    )
    path = tmp_path / "naive.parquet"
    pq.write_table(table, path)
    assert "--tz" in error_of(path)
    bars = load_bars(path, tz="America/New_York").bars
    assert bars[0].time == datetime(2024, 7, 29, 13, 30, tzinfo=UTC)


def test_naive_csv_timestamps_refused_without_tz_and_localized_with_it(tmp_path: Path) -> None:
    rows = ["2024-07-29 09:30:00,1,1,1,1,1", "2024-07-29 09:31:00,1,1,1,1,1"]
    path = write_csv(tmp_path, rows)
    message = error_of(path)
    assert "row 1 (line 2)" in message and "no UTC offset" in message and "--tz" in message
    bars = load_bars(path, tz="America/New_York").bars
    assert bars[1].time == datetime(2024, 7, 29, 13, 31, tzinfo=UTC)


def test_unknown_tz_is_named(tmp_path: Path) -> None:
    assert "Mars/Olympus" in error_of(write_csv(tmp_path, GOOD_ROWS), tz="Mars/Olympus")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("2024-07-29T13:33:00Z,465,466,464,nan,1", "close is empty or NaN"),
        ("2024-07-29T13:33:00Z,465,466,464,,1", "close is empty or NaN"),
        ("2024-07-29T13:33:00Z,465,466,464,abc,1", "close 'abc' is not a number"),
        ("2024-07-29T13:33:00Z,465,464.5,464,465,1", "high 464.5 is below open 465"),
        ("2024-07-29T13:33:00Z,464,464.5,464,465,1", "high 464.5 is below close 465"),
        ("2024-07-29T13:33:00Z,465,466,465.5,466,1", "low 465.5 is above open 465"),
        ("2024-07-29T13:33:00Z,466,466,465.5,465,1", "low 465.5 is above close 465"),
        ("2024-07-29T13:33:00Z,-1,1,-2,0.5,1", "open -1 is not positive"),
        ("2024-07-29T13:33:00Z,465,466,464,465,-5", "volume -5 is negative"),
        ("2024-07-29T13:33:00Z,465,466,464,465,inf", "volume is infinite"),
        ("yesterday,465,466,464,465,1", "timestamp 'yesterday' cannot be parsed"),
        ("2024-07-29T13:65:00Z,465,466,464,465,1", "cannot be parsed"),
        (",465,466,464,465,1", "timestamp is empty"),
        ("2024-07-29T13:32:00Z,465,466,464,465,1", "duplicate timestamp 2024-07-29T13:32:00Z"),
        ("2024-07-29T13:31:30Z,465,466,464,465,1", "is before the previous row's"),
        ("2024-07-29T13:33:00Z,465,1e400,464,465,1", "high is infinite"),
        ("2024-07-29T13:33:00Z,465,2e6,464,465,1", "high 2e+06 is above 1,000,000"),
        ("2024-07-29T13:33:00Z,1e-9,1e-9,1e-9,1e-9,1", "open 1e-09 is below 0.0001"),
        ("2024-07-29T13:33:00Z,465,466,464,465,1e20", "volume 1e+20 is above 1e+12"),
        (
            "1600-01-03T14:30:00Z,465,466,464,465,1",
            "timestamp '1600-01-03T14:30:00Z' is outside the years 1990-2099",
        ),
        (
            "2300-01-03T14:30:00Z,465,466,464,465,1",
            "timestamp '2300-01-03T14:30:00Z' is outside the years 1990-2099",
        ),
        (
            "1989-12-29T14:30:00-05:00,465,466,464,465,1",
            "timestamp '1989-12-29T14:30:00-05:00' is outside the years 1990-2099",
        ),
    ],
)
def test_bad_rows_name_row_and_problem(tmp_path: Path, row: str, expected: str) -> None:
    message = error_of(write_csv(tmp_path, [*GOOD_ROWS, row]))
    assert "row 4 (line 5)" in message
    assert expected in message


def test_earliest_problem_in_the_file_is_reported(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], "2024-07-29T13:31:00Z,465,466,464,465,-1", "bad,1,1,1,1,1"]
    message = error_of(write_csv(tmp_path, rows))
    assert "row 2 (line 3)" in message and "volume" in message


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, ["2024-07-29T13:30:00Z,1,1,1,1"], header="timestamp,open,high,low,close\n"
    )
    assert "missing column volume" in error_of(path)


def test_bars_outside_regular_hours_are_refused(tmp_path: Path) -> None:
    premarket = "2024-07-29T13:29:00Z,465,466,464,465,1"
    assert "outside regular hours 09:30-16:00" in error_of(write_csv(tmp_path, [premarket]))
    closing_print = "2024-07-29T20:00:00Z,465,466,464,465,1"
    assert "(16:00 New York)" in error_of(write_csv(tmp_path, [closing_print]))


def test_early_close_hours_come_from_the_calendar(tmp_path: Path) -> None:
    last_bar = "2024-11-29T17:59:00Z,465,466,464,465,1"
    assert len(load_bars(write_csv(tmp_path, [last_bar])).bars) == 1
    after_close = "2024-11-29T18:00:00Z,465,466,464,465,1"
    assert "outside regular hours 09:30-13:00" in error_of(write_csv(tmp_path, [after_close]))


def test_holiday_is_refused(tmp_path: Path) -> None:
    christmas = "2024-12-25T15:00:00Z,465,466,464,465,1"
    assert "not an NYSE trading day" in error_of(write_csv(tmp_path, [christmas]))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bars.txt", HEADER, "unsupported file type"),
        ("bars.csv", "", "cannot be read"),
        ("bars.csv", HEADER, "no bars in file"),
        ("bars.parquet", "not parquet", "cannot be read"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert expected in error_of(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in error_of(tmp_path / "nope.csv")


@pytest.mark.parametrize("year", [1600, 1677, 1989, 2100, 2262, 2300, 9999])
def test_far_dates_are_refused_as_written_never_wrapped_to_another_date(
    tmp_path: Path, year: int
) -> None:
    """Years outside 1677-2262 do not fit in nanoseconds; converting them used to wrap around
    silently (1600 became 2184). Every unit and path reports the date the file holds."""
    stamp = f"{year}-01-03T14:30:00"
    message = error_of(write_csv(tmp_path, [f"{stamp}Z,465,466,464,465,1"]))
    assert f"row 1 (line 2): timestamp '{stamp}Z' is outside the years 1990-2099" in message
    naive = write_csv(tmp_path, [f"{stamp},465,466,464,465,1"])
    assert f"timestamp '{stamp}' is outside" in error_of(naive, tz="America/New_York")
    for unit in ("s", "ms", "us"):
        path = tmp_path / f"bars_{unit}.parquet"
        moment = datetime(year, 1, 3, 14, 30, tzinfo=UTC)
        table = pa.table(
            {
                "timestamp": pa.array([moment], pa.timestamp(unit, tz="UTC")),
                **{name: [465.0] for name in ("open", "high", "low", "close", "volume")},
            }
        )
        pq.write_table(table, path)
        assert f"row 1: timestamp {year}-01-03 14:30:00+00:00 is outside" in error_of(path)


def test_first_and_last_supported_years_load(tmp_path: Path) -> None:
    first = "1990-01-02T14:30:00Z,465,466,464,465,1"  # a Tuesday session
    last = "2099-12-31T14:30:00Z,465,466,464,465,1"  # a Thursday
    for row in (first, last):
        assert len(load_bars(write_csv(tmp_path, [row])).bars) == 1


def test_truncated_gzip_names_the_file(tmp_path: Path, dev_year: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(dev_year.read_bytes()[:5000])
    assert error_of(path) == f"{path}: cannot be read: the compressed file is truncated"
    garbled = tmp_path / "garbled.csv.gz"
    garbled.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    assert error_of(garbled).startswith(f"{garbled}: cannot be read: ")


def test_non_regular_files_are_refused_at_once(tmp_path: Path) -> None:
    """A FIFO would block the loader forever: refused from its type, without opening it."""
    fifo = tmp_path / "bars.csv"
    os.mkfifo(fifo)
    assert error_of(fifo) == f"{fifo}: is a FIFO, not a regular file; expected a bar file"
    device = Path("/dev/null")
    assert (
        error_of(device)
        == "/dev/null: is a device or socket, not a regular file; expected a bar file"
    )
    assert error_of(tmp_path) == f"{tmp_path}: is a directory, expected a bar file"
