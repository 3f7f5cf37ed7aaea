"""Bar files with a `symbol` column: each symbol's rows are checked on their own (order,
duplicates) besides the checks every row gets, a problem names the row and its symbol, each
symbol's bars come out stamped with it; Arrow and the pandas path agree on every input."""

from __future__ import annotations

import gzip
from pathlib import Path
from tempfile import TemporaryDirectory

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ict_trader.marketdata.barfile import (
    BarDataError,
    has_symbol_column,
    load_bars,
    read_bar_files,
)
from tests.test_barfile_arrow import Loaded, arrow_only, pandas_only

HEADER = "timestamp,symbol,open,high,low,close,volume"
ROWS = [  # two symbols, interleaved as a (time, symbol) ordered file has them
    "2025-08-25T13:30:00Z,DIA,452.1,452.3,451.9,452.2,1000",
    "2025-08-25T13:30:00Z,IWM,232.1,232.3,231.9,232.2,5000",
    "2025-08-25T13:31:00Z,IWM,232.2,232.4,232.0,232.3,4000",
    "2025-08-25T13:32:00Z,DIA,452.2,452.4,452.0,452.3,900",  # DIA has no 13:31 bar
    "2025-08-25T13:32:00Z,IWM,232.3,232.5,232.1,232.4,3000",
]


def write(folder: Path, rows: list[str], header: str = HEADER, name: str = "bars.csv") -> Path:
    path = folder / name
    text = "\n".join([header, *rows]) + "\n"
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(BarDataError) as caught:
        read_bar_files(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_each_symbol_loads_stamped_and_in_time_order(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS)
    dia, iwm = read_bar_files(path)
    assert (dia.symbol, iwm.symbol) == ("DIA", "IWM")
    assert [bar.close for bar in dia.bars] == [452.2, 452.3]
    assert [bar.close for bar in iwm.bars] == [232.2, 232.3, 232.4]
    assert {bar.symbol for bar in dia.bars} == {"DIA"}
    assert {bar.symbol for bar in iwm.bars} == {"IWM"}
    assert dia.calendar is iwm.calendar
    # the same rows grouped by symbol instead of interleaved: the same bars
    grouped = write(tmp_path, [ROWS[1], ROWS[2], ROWS[4], ROWS[0], ROWS[3]], name="grouped.csv")
    assert [f.bars for f in read_bar_files(grouped)] == [dia.bars, iwm.bars]
    # a symbol written in lower case or with spaces is the same ticker
    loose = [row.replace(",IWM,", ", iwm ,") for row in ROWS]
    assert [f.bars for f in read_bar_files(write(tmp_path, loose, name="loose.csv"))] == [
        dia.bars,
        iwm.bars,
    ]
    assert has_symbol_column(path) and not has_symbol_column(write(tmp_path, [], "timestamp"))


def test_load_bars_chooses_one_symbol_or_refuses_several(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS)
    assert load_bars(path, symbol="iwm").bars == read_bar_files(path)[1].bars
    assert load_bars(path, symbol="IWM").symbol == "IWM"
    with pytest.raises(BarDataError) as several:
        load_bars(path)
    assert str(several.value) == f"{path}: holds several symbols (DIA, IWM) where one is expected"
    with pytest.raises(BarDataError) as absent:
        load_bars(path, symbol="SPY")
    assert str(absent.value) == f"{path}: no bars for SPY here (symbols: DIA, IWM)"
    # one symbol in the column: that symbol's file
    only = write(tmp_path, [ROWS[1], ROWS[2]], name="only.csv")
    assert load_bars(only).symbol == "IWM"


def test_a_plain_file_is_named_by_the_caller_or_stays_unnamed(sample_csv: Path) -> None:
    plain = load_bars(sample_csv)
    named = load_bars(sample_csv, symbol="qqq")
    assert plain.symbol is None and {bar.symbol for bar in plain.bars} == {""}
    assert named.symbol == "QQQ" and {bar.symbol for bar in named.bars} == {"QQQ"}
    assert [bar[:6] for bar in named.bars] == [bar[:6] for bar in plain.bars]
    with pytest.raises(BarDataError, match="'Q Q' is not a ticker"):
        load_bars(sample_csv, symbol="Q Q")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            "2025-08-25T13:33:00Z,I W M,232,233,231,232,1",
            "row 6 (line 7): symbol 'I W M' is not a ticker",
        ),
        ("2025-08-25T13:33:00Z,$PY,232,233,231,232,1", "row 6 (line 7): symbol '$PY' is not a"),
        ("2025-08-25T13:33:00Z,,232,233,231,232,1", "row 6 (line 7): symbol is empty"),
        ("2025-08-25T13:33:00Z,  ,232,233,231,232,1", "row 6 (line 7): symbol is empty"),
        ("2025-08-25T13:33:00Z,TOOLONGTICKER,232,233,231,232,1", "'TOOLONGTICKER' is not a"),
        (
            "2025-08-25T13:32:00Z,IWM,232,233,231,232,1",
            "row 6 (line 7), IWM: duplicate timestamp 2025-08-25T13:32:00Z (the symbol's row 5)",
        ),
        (
            "2025-08-25T13:31:00Z,IWM,232,233,231,232,1",
            "row 6 (line 7), IWM: timestamp 2025-08-25T13:31:00Z is before "
            "2025-08-25T13:32:00Z of the symbol's previous row 5",
        ),
        (
            "2025-08-25T13:32:00Z,DIA,452,453,451,452,1",
            "row 6 (line 7), DIA: duplicate timestamp 2025-08-25T13:32:00Z (the symbol's row 4)",
        ),
        (
            "2025-08-25T13:31:00Z,DIA,452,453,451,452,1",
            "row 6 (line 7), DIA: timestamp 2025-08-25T13:31:00Z is before "
            "2025-08-25T13:32:00Z of the symbol's previous row 4",
        ),
        ("2025-08-25T13:33:00Z,DIA,452,451,451,452,1", "row 6 (line 7), DIA: high 451 is below"),
        (
            "2025-08-25T20:00:00Z,IWM,232,233,231,232,1",
            "row 6 (line 7), IWM: bar 2025-08-25T20:00:00Z (16:00 New York) is outside regular",
        ),
        ("2025-08-25T13:33:00Z,IWM,232,233,231,nan,1", "row 6 (line 7), IWM: close is empty"),
    ],
)
def test_bad_rows_name_the_row_and_the_symbol(tmp_path: Path, row: str, expected: str) -> None:
    for name in ("bars.csv", "bars.csv.gz"):
        path = write(tmp_path, [*ROWS, row], name=name)
        message = error_of(path)
        assert message.startswith(f"{path}: ")
        assert expected in message
        with pandas_only():
            assert error_of(path) == message


def test_rows_of_a_new_symbol_may_start_earlier_than_the_last_row(tmp_path: Path) -> None:
    """Order is per symbol: a file of IWM's whole day, then DIA's, is in order."""
    rows = [ROWS[1], ROWS[2], ROWS[4], ROWS[0], ROWS[3]]
    with arrow_only():
        assert len(read_bar_files(write(tmp_path, rows))) == 2


def test_parquet_with_a_symbol_column(tmp_path: Path) -> None:
    csv_files = read_bar_files(write(tmp_path, ROWS))
    cells = [row.split(",") for row in ROWS]
    stamps = pa.array([cell[0].replace("Z", "+00:00") for cell in cells], pa.string()).cast(
        pa.timestamp("us", tz="UTC")
    )
    columns = {
        "timestamp": stamps,
        **{
            name: pa.array([float(cell[index]) for cell in cells])
            for index, name in enumerate(("open", "high", "low", "close", "volume"), start=2)
        },
    }
    for kind, symbols in {
        "string": pa.array([cell[1] for cell in cells]),
        "dictionary": pa.array([cell[1] for cell in cells]).dictionary_encode(),
        "large string": pa.array([cell[1] for cell in cells], pa.large_string()),
    }.items():
        path = tmp_path / f"{kind.replace(' ', '_')}.parquet"
        pq.write_table(pa.table({**columns, "Symbol": symbols}), path)
        with arrow_only():
            assert [f.bars for f in read_bar_files(path)] == [f.bars for f in csv_files], kind
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({**columns, "symbol": pa.array([1, 2, 1, 2, 1])}), numbers)
    assert error_of(numbers) == f"{numbers}: row 1: symbol '1' is not a ticker (letters, " + (
        "digits and '.', at most 10 characters, starting with a letter)"
    )
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(
        pa.table({**columns, "symbol": pa.array(["IWM", None, "IWM", "IWM", "IWM"])}), nulls
    )
    assert error_of(nulls) == f"{nulls}: row 2: symbol is empty"


SYMBOLS = ["IWM", "DIA", "iwm", " DIA", "", "NA", "null", "I W M", "$PY", "1X", "BRK.B", "X" * 12]


@st.composite
def symbol_rows(draw: st.DrawFn) -> list[str]:
    """The good rows in any order, with a few symbols and times replaced by tricky ones."""
    chosen = draw(st.permutations(ROWS))
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(chosen) - 1))
        cells = chosen[index].split(",")
        if draw(st.booleans()):
            cells[1] = draw(st.sampled_from(SYMBOLS))
        else:
            cells[0] = draw(st.sampled_from([row.split(",")[0] for row in ROWS] + ["bad"]))
        chosen[index] = ",".join(cells)
    return chosen


def outcome(path: Path) -> list[Loaded] | str:
    try:
        files = read_bar_files(path)
    except BarDataError as exc:
        return str(exc)
    return [Loaded(f.bars, (f.calendar.start, f.calendar.end)) for f in files]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(symbol_rows(), st.booleans())
def test_symbol_files_load_the_same_either_way(chosen: list[str], compressed: bool) -> None:
    with TemporaryDirectory(prefix="md-symbols-") as folder:
        path = write(Path(folder), chosen, name="bars.csv.gz" if compressed else "bars.csv")
        fast = outcome(path)
        with pandas_only():
            slow = outcome(path)
    event("loaded" if isinstance(fast, list) else "refused")
    assert fast == slow
