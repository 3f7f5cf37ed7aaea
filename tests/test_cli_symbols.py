"""Several symbols through the command line: `backtest`, `run` (replay) and `signals` take IWM
and DIA as one file with a symbol column, as one file per symbol or as a downloaded folder, and
give the same result every way; `--symbols` chooses, and the settings' symbols must be in the
data. Whatever cannot work is refused in one line, exit 2, nothing written."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.marketdata.barfile import load_bars
from tests.test_marketdata_folder import write_months
from tests.test_marketdata_sources import BOTH, DIA, IWM
from tests.test_misuse_inputs import _fresh, _invoke, _problems, clean_env

runner = CliRunner()
__all__ = ["clean_env"]  # the fixture, imported for the misuse test


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("download")
    for symbol, path in (("IWM", IWM), ("DIA", DIA)):
        write_months(root, symbol, load_bars(path).bars)
    return root


def backtest(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "bt.json"
    result = runner.invoke(app, ["backtest", *args, "--json", str(out)])
    assert result.exit_code == 0, result.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    return report


def test_a_backtest_of_iwm_and_dia_trades_both(tmp_path: Path, folder: Path) -> None:
    report = backtest(tmp_path, "--data", str(BOTH))
    assert report["config"]["symbols"] == ["DIA", "IWM"]
    assert {trade["symbol"] for trade in report["trades"]} == {"IWM", "DIA"}
    for trade in report["trades"]:
        assert trade["trade_id"].startswith(f"ict-{trade['symbol']}-")
    listed = runner.invoke(app, ["signals", "--data", str(BOTH), "--format", "json"])
    assert listed.exit_code == 0, listed.stderr
    assert {signal["symbol"] for signal in json.loads(listed.stdout)} == {"IWM", "DIA"}
    # the same data every other way: the same trades
    for args in (
        ["--data", f"IWM={IWM}", "--data", f"DIA={DIA}", "--symbols", "DIA,IWM"],
        ["--data", str(DIA), "--data", str(IWM), "--symbols", "DIA,IWM"],  # named in order
        ["--data", str(folder)],
    ):
        again = backtest(tmp_path, *args)
        assert again["trades"] == report["trades"], args
        assert again["config"] == report["config"], args


def test_symbols_choose_and_the_settings_must_be_in_the_data(tmp_path: Path, folder: Path) -> None:
    iwm_alone = backtest(tmp_path, "--data", f"IWM={IWM}")
    for args in (
        ["--data", str(BOTH), "--symbols", "iwm"],
        ["--data", str(folder), "--symbols", "IWM"],
        ["--data", str(IWM), "--symbols", "IWM"],
    ):
        chosen = backtest(tmp_path, *args)
        assert chosen["config"]["symbols"] == ["IWM"], args
        assert chosen["trades"] == iwm_alone["trades"], args
    assert {trade["symbol"] for trade in iwm_alone["trades"]} == {"IWM"}
    settings = tmp_path / "ict-trader.toml"
    settings.write_text('symbols = ["DIA"]\n', encoding="utf-8")
    dia = backtest(tmp_path, "--data", str(BOTH), "--config", str(settings))
    assert dia["config"]["symbols"] == ["DIA"]
    assert {trade["symbol"] for trade in dia["trades"]} == {"DIA"}
    # --symbols replaces the settings' symbols
    both = backtest(
        tmp_path, "--data", str(BOTH), "--config", str(settings), "--symbols", "DIA,IWM"
    )
    assert both["config"]["symbols"] == ["DIA", "IWM"]


def test_signals_of_several_symbols_name_their_symbol(tmp_path: Path) -> None:
    table = runner.invoke(app, ["signals", "--data", str(BOTH)])
    assert table.exit_code == 0, table.stderr
    assert "6 signals in DIA, IWM: 2 long, 4 short, 9 sessions" in table.stdout
    assert "symbol" in table.stdout
    listed = runner.invoke(app, ["signals", "--data", str(BOTH), "--format", "csv"])
    lines = listed.stdout.splitlines()
    assert lines[0] == "timestamp,symbol,direction,close,atr,extreme,mss_level"
    assert lines[1] == "2025-08-19T15:36:00Z,IWM,short,226.98,0.130768,227.4,227.05"
    assert [line.split(",")[1] for line in lines[1:]] == ["IWM"] * 4 + ["DIA"] * 2
    # one symbol: the listing without the column, as always
    alone = runner.invoke(
        app, ["signals", "--data", str(BOTH), "--symbols", "DIA", "--format", "csv"]
    )
    assert alone.stdout.splitlines()[0] == "timestamp,direction,close,atr,extreme,mss_level"
    assert len(alone.stdout.splitlines()) == 3


def test_a_replay_of_two_symbols_trades_both_and_resumes(tmp_path: Path, folder: Path) -> None:
    db = tmp_path / "replay.db"
    args = ["run", "--no-dashboard", "--speed", "0", "--quiet", "--db", str(db)]
    two_files = ["--data", f"IWM={IWM}", "--data", f"DIA={DIA}"]
    done = runner.invoke(app, [*args, *two_files])
    assert done.exit_code == 0, done.stderr
    assert "replaying 7,014 bars of IWM, DIA" in done.stderr
    with sqlite3.connect(db) as connection:
        symbols = {row[0] for row in connection.execute("SELECT symbol FROM trades")}
    assert symbols == {"IWM", "DIA"}
    again = runner.invoke(app, [*args, *two_files])
    assert again.exit_code == 0, again.stderr
    assert "this replay is already complete" in again.stderr
    other = runner.invoke(app, [*args, "--data", str(folder)])  # other data: another store
    assert other.exit_code == 2
    assert "use another --db for this replay" in other.stderr


def test_what_cannot_work_is_refused_in_one_line(
    tmp_path: Path, clean_env: dict[str, str], folder: Path
) -> None:
    lines = gzip.decompress(BOTH.read_bytes()).decode().splitlines()
    assert lines[5:7] == [  # rows 5 and 6: DIA's and IWM's bars of 09:32 New York
        "2025-08-18T13:32:00Z,DIA,449.25,449.53,449.21,449.44,25536",
        "2025-08-18T13:32:00Z,IWM,227.25,227.51,227.24,227.5,109271",
    ]
    bad_ticker = tmp_path / "bad_ticker.csv"
    bad_ticker.write_text(
        "\n".join([*lines[:6], lines[6].replace(",IWM,", ",I-W-M,"), *lines[7:]]) + "\n",
        encoding="utf-8",
    )
    unordered = tmp_path / "unordered.csv"
    swapped = list(lines)
    swapped[3], swapped[5] = swapped[5], swapped[3]  # DIA's 09:31 and 09:32, IWM's between
    unordered.write_text("\n".join(swapped) + "\n", encoding="utf-8")
    settings = tmp_path / "settings.toml"
    settings.write_text('symbols = ["IWM", "SPY"]\n', encoding="utf-8")
    cases: dict[str, tuple[list[str], tuple[str, ...]]] = {
        "a bad ticker in the symbol column": (
            ["--data", str(bad_ticker)],
            (str(bad_ticker), "row 6 (line 7): symbol 'I-W-M' is not a ticker"),
        ),
        "one symbol's rows out of order": (
            ["--data", str(unordered)],
            (str(unordered), "row 5 (line 6), DIA: timestamp 2025-08-18T13:31:00Z is before"),
        ),
        "--symbols names a symbol the data lacks": (
            ["--data", str(BOTH), "--symbols", "IWM,SPY"],
            ("--symbols IWM,SPY", "no bars for SPY", "DIA, IWM"),
        ),
        "--symbols names a symbol a folder lacks": (
            ["--data", str(folder), "--symbols", "QQQ"],
            ("--symbols QQQ", "no bars for QQQ"),
        ),
        "the settings' symbols are not in the data": (
            ["--data", str(BOTH), "--config", str(settings)],
            (str(settings), "symbols IWM, SPY are not all in the data", "no bars for SPY"),
        ),
        "plain files nothing names": (
            ["--data", str(IWM), "--data", str(DIA)],
            (str(IWM), "does not say its symbol", "SYMBOL=PATH"),
        ),
        "fewer symbols than plain files": (
            ["--data", str(IWM), "--data", str(DIA), "--symbols", "IWM"],
            ("does not say its symbol", "(IWM)"),
        ),
        "a symbol given twice": (
            ["--data", str(BOTH), "--data", f"IWM={IWM}"],
            (str(IWM), "bars of IWM come from", str(BOTH)),
        ),
        "a bad SYMBOL=": (["--data", f"I$M={IWM}"], ("'I$M' is not a ticker",)),
    }
    failures = {}
    for number, (label, (args, names)) in enumerate(cases.items()):
        out = _fresh(tmp_path / f"out{number}")
        for command in (
            ["backtest", *args, "--db", str(out / "b.db"), "--json", str(out / "b.json")],
            ["run", *args, "--db", str(out / "r.db"), "--no-dashboard", "--speed", "0"],
        ):
            problems = _problems(_invoke(command, clean_env), names, out)
            if problems:
                failures[f"{label}: {command[0]}"] = problems
    assert failures == {}
