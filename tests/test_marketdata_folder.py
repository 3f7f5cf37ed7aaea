"""A folder of monthly Parquet files loads as one table per symbol: the dev year split by month
gives the file's bars exactly (stamped with the folder's symbol), problems across files are
caught and named by file and row, symbols are chosen, and backtest and signals take the folder."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK
from ict_trader.marketdata.barfile import BarDataError, BarFile, load_bars
from ict_trader.marketdata.folder import load_folder, load_folder_set
from ict_trader.marketdata.layout import Month, month_file, write_atomically

runner = CliRunner()


@pytest.fixture(scope="module")
def year(dev_year: Path) -> BarFile:
    return load_bars(dev_year, symbol="QQQ")  # a folder's bars name their symbol


def table_of(bars: Sequence[Bar]) -> pa.Table:
    return pa.table(
        {
            "timestamp": pa.array([bar.time for bar in bars], pa.timestamp("us", tz="UTC")),
            **{
                name: pa.array([getattr(bar, name) for bar in bars], pa.float64())
                for name in ("open", "high", "low", "close", "volume")
            },
        }
    )


def write_months(root: Path, symbol: str, bars: Sequence[Bar]) -> list[Path]:
    """The bars as `data download` lays them out: one file per New York month."""
    by_month: dict[Month, list[Bar]] = defaultdict(list)
    for bar in bars:
        by_month[Month.of(bar.time.astimezone(NEW_YORK).date())].append(bar)
    paths = []
    for month, chunk in sorted(by_month.items()):
        path = month_file(root, symbol, month)
        write_atomically(table_of(chunk), path)
        paths.append(path)
    return paths


def error_of(root: Path, *symbols: str) -> str:
    with pytest.raises(BarDataError) as caught:
        load_folder(root, symbols)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_dev_year_by_month_loads_as_the_file(year: BarFile, tmp_path: Path) -> None:
    paths = write_months(tmp_path, "QQQ", year.bars)
    assert len(paths) == 12
    loaded = load_folder(tmp_path)
    assert loaded.symbol == "QQQ"
    assert loaded.path == tmp_path / "QQQ"
    assert loaded.bars == year.bars
    # the symbol's own folder works too, and stray files are not months
    (tmp_path / "QQQ" / ".2024-03.parquet.tmp").write_bytes(b"half a file")
    (tmp_path / "QQQ" / "notes.txt").write_text("mine", encoding="utf-8")
    assert load_folder(tmp_path / "QQQ").bars == year.bars
    # months chosen by --from/--to: only the files they need are read
    (tmp_path / "QQQ" / "2024-01.parquet").write_bytes(b"corrupt, but not needed")
    june = year.bars[40_000].time.date()
    some = load_folder(tmp_path, first=june, last=None)
    assert some.bars == [
        bar for bar in year.bars if Month.of(bar.time.astimezone(NEW_YORK).date()) >= Month.of(june)
    ]


def test_problems_across_files_name_the_file_and_its_row(sample_csv: Path, tmp_path: Path) -> None:
    bars = load_bars(sample_csv).bars
    july, august = bars[:1170], bars[1170:]
    repeated = tmp_path / "repeated"
    write_months(repeated, "QQQ", july)
    write_atomically(table_of([july[-1], *august]), month_file(repeated, "QQQ", Month(2024, 8)))
    assert error_of(repeated) == (
        f"{repeated}/QQQ/2024-08.parquet: row 1: duplicate timestamp 2024-07-31T19:59:00Z"
    )

    bad = tmp_path / "bad"
    broken = list(august)
    broken[10] = broken[10]._replace(low=max(broken[10].open, broken[10].close) + 1)
    write_months(bad, "QQQ", [*july, *broken])
    assert error_of(bad) == (
        f"{bad}/QQQ/2024-08.parquet: row 11: low {broken[10].low:g} is above open "
        f"{broken[10].open:g}"
    )


def test_a_symbol_is_chosen_from_several(sample_csv: Path, tmp_path: Path) -> None:
    bars = load_bars(sample_csv).bars
    write_months(tmp_path, "QQQ", bars)
    write_months(tmp_path, "SPY", bars[:390])
    assert error_of(tmp_path) == (
        f"{tmp_path}: holds several symbols (QQQ, SPY) where one is expected: choose one with "
        "--symbols QQQ"
    )
    assert load_folder(tmp_path, ["spy"]).bars == load_bars(sample_csv, symbol="SPY").bars[:390]
    both = load_folder_set(tmp_path)  # or all of them at once
    assert both.symbols == ("QQQ", "SPY")
    assert both.bars_of("QQQ") == load_bars(sample_csv, symbol="QQQ").bars
    assert load_folder_set(tmp_path, ["SPY", "QQQ"]).symbols == ("SPY", "QQQ")
    assert "no bars for IWM here (symbols: QQQ, SPY)" in error_of(tmp_path, "IWM")
    assert "several symbols (QQQ, SPY)" in error_of(tmp_path, "QQQ", "SPY")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no <SYMBOL>/<YYYY-MM>.parquet files in this folder" in error_of(empty)


def test_backtest_and_signals_take_a_folder_and_a_symbol(sample_csv: Path, tmp_path: Path) -> None:
    bars = load_bars(sample_csv).bars
    root = tmp_path / "bars"
    write_months(root, "QQQ", bars)
    write_months(root, "SPY", bars)  # the same prices under another name

    several = runner.invoke(app, ["signals", "--data", str(root)])
    assert several.exit_code == 0, several.stderr
    assert "6 signals in QQQ, SPY" in several.stdout  # each symbol's signals, named

    reports = {}
    for label, args in {
        "file": ["--data", str(sample_csv)],
        "SPY": ["--data", str(root), "--symbols", "SPY"],
    }.items():
        out = tmp_path / f"{label}.json"
        result = runner.invoke(app, ["backtest", *args, "--from", "2024-08-01", "--json", str(out)])
        assert result.exit_code == 0, result.stderr
        reports[label] = json.loads(out.read_text(encoding="utf-8"))
    # the same trades, under the folder's symbol (the file's bars are QQQ's, the default)
    as_spy = json.loads(json.dumps(reports["file"]["trades"]).replace("QQQ", "SPY"))
    assert reports["SPY"]["trades"] == as_spy
    assert reports["SPY"]["trades"]
    assert reports["SPY"]["config"]["symbols"] == ["SPY"]  # orders for the folder's symbol

    listed = runner.invoke(app, ["signals", "--data", str(root), "--symbols", "QQQ"])
    assert listed.exit_code == 0, listed.stderr
    assert "signals in QQQ" in listed.stdout
