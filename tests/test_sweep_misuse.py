"""A clumsy user's sweeps, through the real command: bad grid files, bad options, an
unreachable or malformed cluster address. Each must end with exit code 2 and exactly one
`error:` line on stderr naming the file, key or option at fault — no traceback — and must write
nothing: the `--out` folder is not even created.

Most attempts go through typer's CliRunner (the `app` the console script runs); the cluster
addresses go through the installed `ict-trader` in their own processes, since a failed Dask
connection leaves state behind in the process that made it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from tests.conftest import DEV_YEAR

GOOD = "[exits]\ntarget_atr_multiple = [3, 5]\n"
# 101 x 100 values x the two default profiles
TOO_MANY = (
    f"[signal]\ndisplacement_atr = {[round(0.1 * i, 1) for i in range(1, 102)]}\n"
    f"[exits]\nmax_hold_minutes = {list(range(1, 101))}\n"
)

# label -> (the grid file's content, what the one line must name besides the file)
BAD_GRIDS: dict[str, tuple[str | bytes, str]] = {
    "unknown table": ("[exit]\ntarget_atr_multiple = [3]\n", "unknown grid table exit"),
    "unknown signal parameter": ("[signal]\nswing = [2, 3]\n", "'swing'"),
    "unknown exit key": ("[exits]\nmax_hold = [30]\n", "exits.max_hold"),
    "unknown simulation key": ('[simulation]\nfill = ["open"]\n', "simulation.fill"),
    "unknown risk key": ("[risk]\nmax_loss = [100]\n", "risk.max_loss"),
    "empty signal list": ("[signal]\ndisplacement_atr = []\n", "signal.displacement_atr"),
    "empty exits list": ("[exits]\nstop = []\n", "exits.stop"),
    "empty risk list": ("[risk]\nmax_total_shares = []\n", "risk.max_total_shares"),
    "text for a number": ('[signal]\ndisplacement_atr = ["a"]\n', "signal.displacement_atr"),
    "fraction for minutes": ("[exits]\nmax_hold_minutes = [1.5]\n", "exits.max_hold_minutes"),
    "number for a stop": ("[exits]\nstop = [1]\n", "exits.stop"),
    "unknown stop": ('[exits]\nstop = ["trailing"]\n', "exits.stop"),
    "boolean for bps": ("[simulation]\nslippage_bps = [true]\n", "simulation.slippage_bps"),
    "word for a boolean": ('[signal]\nrequire_fvg = ["maybe"]\n', "require_fvg"),
    "nested list": ("[signal]\natr_period = [[14]]\n", "signal.atr_period"),
    "inf": ("[exits]\ntarget_atr_multiple = [inf]\n", "exits.target_atr_multiple"),
    "out of range": ("[risk]\nmax_drawdown_pct = [101]\n", "risk.max_drawdown_pct"),
    "negative": ("[simulation]\ncommission_per_share = [-0.01]\n", "commission_per_share"),
    "table not a table": ("signal = 3\n", "signal must be a table"),
    "profiles not a list": ('[profiles]\nname = "a"\nallocation = 0.03\n', "profiles"),
    "no profiles": ("profiles = []\n", "profiles"),
    "zero configurations": (
        '[[profiles]]\nname = "a"\nallocation = 0.03\nenabled = false\n',
        "no enabled profile",
    ),
    "bad allocation": (
        '[[profiles]]\nname = "a"\nallocation = "x"\n',
        "profiles[0].allocation",
    ),
    "too many configurations": (TOO_MANY, "20,200 configurations, at most 10,000"),
    "a value twice": ('[exits]\nstop = ["atr", "atr"]\n', "exits.stop"),
    "the same value twice": ("[exits]\ntarget_atr_multiple = [5, 5.0]\n", "same value"),
    "starting equity": ("[simulation]\nstarting_equity = [1e4, 1e5]\n", "cannot be swept"),
    "live-only setting": ("[risk]\nstale_data_minutes = [1, 5]\n", "cannot be swept"),
    "not TOML": ("[signal\n", "not valid TOML"),
    "not UTF-8": (b"[signal]\ndisplacement_atr = [1.0]\n# \xff\n", "not valid TOML"),
}


@dataclass
class Outcome:
    code: int | None
    stderr: str
    crashed: BaseException | None = None


runner = CliRunner()


def _invoke(args: list[str]) -> Outcome:
    result = runner.invoke(app, args)
    crashed = result.exception if not isinstance(result.exception, SystemExit) else None
    return Outcome(result.exit_code, result.stderr, crashed)


def _problems(outcome: Outcome, names: tuple[str, ...], room: Path) -> list[str]:
    """What is wrong with how one misuse was handled (nothing, if it was refused cleanly):
    `room` is the empty folder its `--out` would have been made in."""
    found = []
    lines = outcome.stderr.strip().splitlines()
    if outcome.crashed is not None:
        found.append(f"raised {type(outcome.crashed).__name__}: {outcome.crashed}")
    if outcome.code != 2:
        found.append(f"exit code {outcome.code}")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        found.append(f"stderr is not one 'error:' line: {outcome.stderr[-600:]!r}")
    if "Traceback" in outcome.stderr:
        found.append("traceback")
    found.extend(f"does not name {name!r}" for name in names if name not in outcome.stderr)
    written = sorted(p.name for p in room.iterdir())
    if written:
        found.append(f"wrote {written}")
    return found


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no ict-trader.toml to pick up."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _room(base: Path, label: str) -> Path:
    room = base / "rooms" / label.replace(" ", "-")
    room.mkdir(parents=True)
    return room


def test_bad_grid_files_are_refused_in_one_line_naming_file_and_key(here: Path) -> None:
    failures = {}
    for number, (label, (content, name)) in enumerate(BAD_GRIDS.items()):
        grid = here / f"grid{number}.toml"
        if isinstance(content, bytes):
            grid.write_bytes(content)
        else:
            grid.write_text(content, encoding="utf-8")
        room = _room(here, label)
        args = ["sweep", str(grid), "--train", "5", "--test", "5", "--out", str(room / "out")]
        problems = _problems(_invoke(args), (str(grid), name), room)
        if problems:
            failures[label] = problems
    assert len(BAD_GRIDS) >= 25
    assert failures == {}


def _bad_options(here: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    grid = here / "grid.toml"
    grid.write_text(GOOD, encoding="utf-8")
    a_file = here / "a-file"
    a_file.write_text("not a folder", encoding="utf-8")
    year = ["--data", str(DEV_YEAR)]
    windows = ["--train", "5", "--test", "5"]
    return {
        "missing grid file": (["sweep", str(here / "none.toml"), *windows], ("none.toml",)),
        "grid is a folder": (["sweep", str(here), *windows], (str(here), "grid file")),
        "missing data": (
            ["sweep", str(grid), "--data", str(here / "none.csv"), *windows],
            ("none.csv",),
        ),
        "train longer than the data": (
            ["sweep", str(grid), *year, "--train", "300", "--test", "5"],
            ("--train 300", "QQQ has 252"),
        ),
        "test longer than the data": (
            ["sweep", str(grid), *year, "--train", "5", "--test", "250"],
            ("--test 250", "QQQ has 252"),
        ),
        "windows longer than the period": (
            ["sweep", str(grid), *year, "--to", "2024-01-31", "--train", "20", "--test", "5"],
            ("--train 20", "QQQ has 21"),
        ),
        "from after to": (
            ["sweep", str(grid), *year, "--from", "2024-03-01", "--to", "2024-02-01", *windows],
            ("no sessions between --from and --to",),
        ),
        "zero train": (["sweep", str(grid), "--train", "0", "--test", "5"], ("--train",)),
        "unknown metric": (["sweep", str(grid), *windows, "--metric", "cagr"], ("--metric",)),
        "zero workers": (["sweep", str(grid), *windows, "--workers", "0"], ("--workers",)),
        "symbols of a file": (["sweep", str(grid), *windows, "--symbols", "QQQ"], ("--symbols",)),
        "out is a file": (["sweep", str(grid), *windows, "--out", str(a_file)], ("--out",)),
        "out in a missing folder": (
            ["sweep", str(grid), *windows, "--out", str(here / "no" / "out")],
            ("--out", str(here / "no")),
        ),
    }


def test_bad_options_are_refused_in_one_line_naming_the_option(here: Path) -> None:
    failures = {}
    attempts = _bad_options(here)
    for label, (args, names) in attempts.items():
        room = _room(here, label)
        with_out = args if "--out" in args else [*args, "--out", str(room / "out")]
        problems = _problems(_invoke(with_out), names, room)
        if problems:
            failures[label] = problems
    assert (here / "a-file").read_text(encoding="utf-8") == "not a folder"
    assert not (here / "no").exists()
    assert len(attempts) == 13
    assert failures == {}


def test_bad_cluster_addresses_are_refused_in_one_line(here: Path) -> None:
    """Each in its own `ict-trader` process, started together. Port 1 on the loopback has no
    scheduler: the connection times out after 10 s."""
    executable = shutil.which("ict-trader")
    assert executable is not None, "the console script must be installed"
    grid = here / "grid.toml"
    grid.write_text(GOOD, encoding="utf-8")
    addresses = {
        "nonsense": "not a scheduler address",
        "tcp://": "not a scheduler address",
        "foo://127.0.0.1:8786": "unknown address scheme",
        "tcp://127.0.0.1:abc": "not a scheduler address",
        "tcp://127.0.0.1:1": "cannot reach the scheduler",
    }
    started = []
    for number, address in enumerate(addresses):
        room = _room(here, f"cluster{number}")
        args = ["sweep", str(grid), "--train", "5", "--test", "5", "--cluster", address]
        started.append(
            (
                address,
                room,
                subprocess.Popen(
                    [executable, *args, "--out", str(room / "out")],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    cwd=here,
                    env={"PATH": str(Path(executable).parent), "HOME": str(here), "COLUMNS": "80"},
                ),
            )
        )
    failures = {}
    for address, room, process in started:
        _, stderr = process.communicate(timeout=300)  # a guard against a hang
        names = ("--cluster", address, addresses[address])
        problems = _problems(Outcome(process.returncode, stderr), names, room)
        if problems:
            failures[address] = problems
    assert failures == {}


def test_the_same_command_with_good_inputs_runs(here: Path) -> None:
    """The attempts above differ from a working sweep only in what is at fault."""
    grid = here / "grid.toml"
    grid.write_text(GOOD, encoding="utf-8")
    room = _room(here, "good")
    args = ["sweep", str(grid), "--train", "5", "--test", "5", "--workers", "1"]
    result = runner.invoke(app, [*args, "--out", str(room / "out")])
    assert result.exit_code == 0, result.stderr
    # the bundled sample's 10 sessions are too few to cut into 16 blocks: said, not hidden
    assert "probability of backtest overfitting not measured (needs at least 16" in " ".join(
        result.stdout.split()
    )
    assert sorted(p.name for p in (room / "out").iterdir()) == [
        "sweep.csv",
        "sweep.html",
        "sweep.parquet",
    ]
