"""The `ict-trader signals` command, end to end on real QQQ data."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from ict_trader.cli.app import app

runner = CliRunner()

SAMPLE_SIGNALS = [
    ("2024-07-30T15:01:00Z", "short"),
    ("2024-08-06T18:58:00Z", "short"),
    ("2024-08-08T18:27:00Z", "short"),
]
DEV_FIRST_SIX = [
    ("2024-01-04T16:30:00Z", "short"),
    ("2024-01-05T18:30:00Z", "long"),
    ("2024-01-09T16:16:00Z", "long"),
    ("2024-01-12T19:22:00Z", "short"),
    ("2024-01-25T15:35:00Z", "short"),
    ("2024-01-29T19:10:00Z", "long"),
]


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_default_runs_on_bundled_sample_as_a_table() -> None:
    result = runner.invoke(app, ["signals"])
    assert result.exit_code == 0, result.output
    assert "3 signals in qqq_1min_sample.csv: 0 long, 3 short, 10 sessions" in result.output
    # New York time for people: 2024-07-30T15:01Z is 11:01 in New York.
    assert "2024-07-30 11:01" in result.output


def test_csv_has_exact_columns_and_sample_vectors() -> None:
    result = runner.invoke(app, ["signals", "--format", "csv"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "timestamp,direction,close,atr,extreme,mss_level"
    rows = csv_rows(result.stdout)
    assert [(row["timestamp"], row["direction"]) for row in rows] == SAMPLE_SIGNALS
    assert rows[0]["close"] == "460.29"


def test_dev_year_gives_79_signals(dev_year: Path) -> None:
    result = runner.invoke(app, ["signals", "--data", str(dev_year), "--format", "csv"])
    assert result.exit_code == 0
    rows = csv_rows(result.stdout)
    assert len(rows) == 79
    assert sum(row["direction"] == "short" for row in rows) == 53
    assert [(row["timestamp"], row["direction"]) for row in rows[:6]] == DEV_FIRST_SIX


def test_param_override_changes_the_result(dev_year: Path) -> None:
    result = runner.invoke(
        app,
        ["signals", "--data", str(dev_year), "--format", "json", "--param", "require_fvg=false"],
    )
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == 199


def test_json_and_out_file(tmp_path: Path) -> None:
    out = tmp_path / "signals.json"
    result = runner.invoke(app, ["signals", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["timestamp"], r["direction"]) for r in records] == SAMPLE_SIGNALS
    assert set(records[0]) == {"timestamp", "direction", "close", "atr", "extreme", "mss_level"}
    assert records[0]["mss_level"] < records[0]["extreme"]


def test_parquet_input_gives_same_signals(tmp_path: Path, sample_csv: Path) -> None:
    frame = pd.read_csv(sample_csv)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    path = tmp_path / "sample.parquet"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, "timestamp", table.column(0).cast(pa.timestamp("us", tz="UTC")))
    pq.write_table(table, path)
    result = runner.invoke(app, ["signals", "--data", str(path), "--format", "csv"])
    assert result.exit_code == 0
    assert [(r["timestamp"], r["direction"]) for r in csv_rows(result.stdout)] == SAMPLE_SIGNALS


def test_unknown_param_is_named_with_exit_2() -> None:
    result = runner.invoke(app, ["signals", "--param", "swing_lenght=4"])
    assert result.exit_code == 2
    assert "swing_lenght" in result.output


def test_bad_file_is_one_line_and_exit_2_from_the_real_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "timestamp,open,high,low,close,volume\n2024-07-29T13:30:00Z,10,9,8,9.5,1\n",
        encoding="utf-8",
    )
    executable = shutil.which("ict-trader")
    assert executable is not None, "the console script must be installed"
    completed = subprocess.run(
        [executable, "signals", "--data", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        env={"COLUMNS": "200", "PATH": str(Path(executable).parent)},
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert lines == [f"error: {bad}: row 1 (line 2): high 9 is below open 10"]
    assert "Traceback" not in completed.stderr


def test_backtest_command_writes_json_html_and_db(tmp_path: Path) -> None:
    out_json, out_html, db = tmp_path / "bt.json", tmp_path / "bt.html", tmp_path / "bt.db"
    result = runner.invoke(
        app,
        [
            "backtest",
            "--slippage-bps",
            "1",
            "--json",
            str(out_json),
            "--html",
            str(out_html),
            "--db",
            str(db),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Backtest 2024-07-29 … 2024-08-09, 10 sessions" in result.stdout
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert Decimal(report["config"]["simulation"]["slippage_bps"]) == 1
    assert set(report["metrics"]) == {"conservative", "aggressive", "all"}
    assert report["metrics"]["all"]["trades"] == len(report["trades"]) == 6
    first = report["trades"][0]
    assert set(first) >= {
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "shares",
        "exit_reason",
        "pnl",
        "entry_order_id",
    }
    pnl = sum(t["pnl"] for t in report["trades"])
    assert abs(pnl - report["metrics"]["all"]["total_pnl"]) < 1e-9
    assert out_html.stat().st_size > 1_000_000  # plotly.js is inside
    assert db.exists()


def test_backtest_date_range_selects_sessions() -> None:
    result = runner.invoke(app, ["backtest", "--from", "2024-08-06", "--to", "2024-08-08"])
    assert result.exit_code == 0
    assert "2024-08-06 … 2024-08-08, 3 sessions" in result.stdout
    empty = runner.invoke(app, ["backtest", "--from", "2025-01-01"])
    assert empty.exit_code == 2
    assert "no bars between --from and --to" in empty.output


def test_errors_keep_square_brackets_and_are_one_line(tmp_path: Path) -> None:
    """Messages quote TOML tables; printed as rich markup, `[[profiles]]` used to vanish."""
    config = tmp_path / "bad.toml"
    config.write_text("profiles = 3\n", encoding="utf-8")
    result = runner.invoke(app, ["backtest", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {config}: profiles must be a non-empty list of [[profiles]] tables"
    ]


def test_usage_errors_are_one_line_naming_the_option() -> None:
    for args, option in (
        (["run", "--speed", "inf"], "'--speed'"),
        (["run", "--sessions", "-1"], "'--sessions'"),
        (["backtest", "--slippage-bps", "1e9"], "'--slippage-bps'"),
        (["signals", "--bogus"], "--bogus"),
        (["kill"], "'--reason'"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and option in lines[0], lines
    bare = runner.invoke(app, [])
    assert "Usage" in bare.output and "Commands" in bare.output  # no arguments: the help


def test_unwritable_outputs_are_refused_before_the_work(tmp_path: Path) -> None:
    result = runner.invoke(app, ["signals", "--out", str(tmp_path)])
    assert (result.exit_code, result.stderr.strip()) == (
        2,
        f"error: --out {tmp_path}: cannot write: it is a directory",
    )
    missing = tmp_path / "no" / "report.html"
    db = tmp_path / "bt.db"
    result = runner.invoke(app, ["backtest", "--html", str(missing), "--db", str(db)])
    assert result.exit_code == 2
    assert f"--html {missing}: cannot write: the folder {missing.parent} does not exist" in (
        result.stderr
    )
    assert not db.exists()
