"""`ict-trader sweep`: replayed signals trade as detected ones, the deflated Sharpe ratio is the
paper's, and a sweep gives the same table byte for byte locally, twice, and on a real Dask
cluster of two worker processes that each load the bars once."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.config import AppConfig
from ict_trader.core.events import ExitReason
from ict_trader.marketdata.barfile import load_bars
from ict_trader.research.grid import parse_grid
from ict_trader.research.report import write_table
from ict_trader.research.stats import deflated_sharpe, expected_max_sharpe
from ict_trader.research.sweep import BarSource, execute, loads, tasks_for
from ict_trader.research.walkforward import analyse
from ict_trader.runtime.backtest import run_backtest, select_bars
from ict_trader.signals import detect_signals
from ict_trader.signals.detector import SignalReplay
from tests.conftest import DEV_YEAR

GRID = {"signal": {"displacement_atr": [1.0, 1.5]}, "exits": {"target_atr_multiple": [3, 5]}}
SOURCE = BarSource(DEV_YEAR, None, None, date(2024, 1, 1), date(2024, 2, 29))


def test_replayed_signals_trade_exactly_as_detected_ones() -> None:
    bar_file = load_bars(DEV_YEAR)
    bars = select_bars(bar_file.bars, date(2024, 1, 1), date(2024, 2, 29))
    config = AppConfig()
    signals = detect_signals(bars, bar_file.calendar, config.signal)
    detected = run_backtest(bars, bar_file.calendar, config)
    replayed = run_backtest(
        bars, bar_file.calendar, config, detector=SignalReplay(bar_file.calendar, signals)
    )
    assert detected.closed_trades() and replayed.closed_trades() == detected.closed_trades()
    assert replayed.metrics == detected.metrics


def test_deflated_sharpe_matches_the_papers_example() -> None:
    """Bailey & López de Prado (2014), section 5: annual SR 2.5 over 1250 days, 100 trials
    whose annual Sharpe ratios vary by 0.5, skew -3, kurtosis 10: DSR 0.9004."""
    days = 250
    threshold = expected_max_sharpe(100, 0.5 / days) * math.sqrt(days)
    # by hand: sqrt(.5) * ((1 - .5772) * 2.3263 + .5772 * 2.7131) = 1.7894
    assert threshold == pytest.approx(1.7894, abs=1e-4)
    value = deflated_sharpe(
        2.5 / math.sqrt(days),
        trials=100,
        trial_variance=0.5 / days,
        observations=1250,
        skewness=-3,
        kurtosis=10,
    )
    assert value == pytest.approx(0.9004, abs=1e-4)


def _table(tmp: Path, **where: object) -> tuple[bytes, bytes]:
    grid = parse_grid(GRID, AppConfig())
    results = execute(tasks_for(grid, [SOURCE], AppConfig()), **where)  # type: ignore[arg-type]
    outcome = analyse(
        grid, results, metric="total_pnl", train=20, test=10, starting_equity=Decimal(100000)
    )
    tmp.mkdir()
    write_table(outcome, tmp / "t.csv", tmp / "t.parquet")
    assert len(outcome.folds) == 2 and len(grid.configurations) == 8
    return (tmp / "t.csv").read_bytes(), (tmp / "t.parquet").read_bytes()


def test_a_sweep_is_the_same_byte_for_byte_locally_and_on_a_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    inline = _table(tmp_path / "inline", workers=1)
    pooled = _table(tmp_path / "pool", workers=2)
    assert pooled == inline
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        clustered = _table(tmp_path / "cluster", cluster=cluster.scheduler_address)
        per_worker = client.run(loads)
    assert clustered == inline
    assert len(per_worker) == 2 and all(count <= 1 for count in per_worker.values())
    assert sum(per_worker.values()) >= 1


def _sweep_process(out: Path, grid: Path, workers: int, hash_seed: str) -> str:
    """`ict-trader sweep` in its own process, as a user runs it."""
    executable = shutil.which("ict-trader")
    assert executable is not None, "the console script must be installed"
    done = subprocess.run(
        [
            executable,
            "sweep",
            str(grid),
            "--data",
            str(DEV_YEAR),
            "--from",
            "2024-01-01",
            "--to",
            "2024-02-29",
            "--train",
            "20",
            "--test",
            "10",
            "--workers",
            str(workers),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,  # a guard against a hang, not a measurement
        env={**os.environ, "PYTHONHASHSEED": hash_seed, "COLUMNS": "400"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_command_writes_the_same_three_files_byte_for_byte(tmp_path: Path) -> None:
    """Twice, in two processes with different hash seeds (set and dict orders of strings
    differ), once inline and once over two worker processes: sweep.csv, sweep.parquet and
    sweep.html are the same bytes, and the summary says the same."""
    grid = tmp_path / "grid.toml"
    grid.write_text(
        "[signal]\ndisplacement_atr = [1.0, 1.5]\n[exits]\ntarget_atr_multiple = [3, 5]\n"
        "[simulation]\nslippage_bps = [0, 2]\n",
        encoding="utf-8",
    )
    first = _sweep_process(tmp_path / "one", grid, 1, "1")
    second = _sweep_process(tmp_path / "two", grid, 2, "2")
    for name in ("sweep.csv", "sweep.parquet", "sweep.html"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert first == second
    page = (tmp_path / "one" / "sweep.html").read_text(encoding="utf-8")
    assert 'id="figure-0"' in page and "probability of backtest overfitting" in page
    assert re.search(r"probability of backtest overfitting \d+%: in 12,870 splits", first)
    assert re.search(r"deflated Sharpe ratio \d+\.\d%", first)


def test_a_sweep_run_trades_as_a_full_backtest_of_its_settings() -> None:
    """The sweep leaves out sessions without a signal; every trade and skipped entry must still
    be what a backtest over every bar makes, whichever stop, and with loss breakers that trip
    (the kill switch then holds for the rest of the period)."""
    grid = parse_grid(
        {
            "exits": {"stop": ["none", "atr", "sweep"]},
            "risk": {"daily_loss_limit": [0, 15], "max_drawdown_pct": [0, 0.03]},
        },
        AppConfig(),
    )
    first, last = date(2024, 1, 1), date(2024, 4, 30)
    results = execute(
        tasks_for(grid, [BarSource(DEV_YEAR, None, None, first, last)], AppConfig()), workers=1
    )
    runs = {run.config: run for result in results for run in result.runs}
    bar_file = load_bars(DEV_YEAR)
    bars = select_bars(bar_file.bars, first, last)
    assert len(results[0].sessions) == len({b.time.date() for b in bars})
    halted = 0
    for configuration in grid.configurations:
        settings = replace(
            AppConfig(),
            engine=replace(
                AppConfig().engine,
                exits=configuration.exits,
                risk=configuration.risk,
                profiles=(configuration.profile,),
            ),
        )
        full = run_backtest(bars, bar_file.calendar, settings)
        run = runs[configuration.index]
        assert run.trades == tuple(full.closed_trades()), configuration.label
        assert run.skip_days == tuple(s.time.date() for s in full.skips), configuration.label
        halted += any(t.exit_reason is ExitReason.KILL for t in run.trades)
    assert halted >= 4  # the breakers did trip


def test_a_sweep_with_an_options_profile_labels_its_model_priced_figures(tmp_path: Path) -> None:
    """Every figure of a model-priced configuration says so: the terminal lines, the table's
    `premiums` column and the page."""
    grid = tmp_path / "grid.toml"
    grid.write_text(
        '[exits]\ntarget_atr_multiple = [3, 5]\n[[profiles]]\nname = "shares"\n'
        'allocation = 0.03\n[[profiles]]\nname = "calls_puts"\nallocation = 0.01\n'
        'instrument = "option"\n[profiles.option]\nmax_premium = 400\n',
        encoding="utf-8",
    )
    args = ["sweep", str(grid), "--data", str(DEV_YEAR), "--from", "2024-01-01"]
    args += ["--to", "2024-03-29", "--train", "20", "--test", "10", "--out", str(tmp_path)]
    shown = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    configurations = {1: "calls_puts", 3: "calls_puts"}  # profile varies fastest
    lines = [line for line in shown.stdout.splitlines() if ": config " in line]
    assert lines
    for line in lines:
        number = int(re.search(r"config (\d+)", line).group(1))  # type: ignore[union-attr]
        assert ("(model-priced)" in line) == (number in configurations), line
    table = pd.read_csv(tmp_path / "sweep.csv", keep_default_na=False)
    assert set(table[table["profile"] == "calls_puts"]["premiums"]) == {"model"}
    assert set(table[table["profile"] == "shares"]["premiums"]) == {""}
    page = (tmp_path / "sweep.html").read_text(encoding="utf-8")
    assert "Configurations 1, 3 trade 0DTE options" in page and "model-priced" in page
