"""A clumsy user's inputs, tried through the real command: bad bar files, bad settings files,
bad options.

Each must end with exit code 2 and exactly one line on stderr that names the file, key or
option at fault — no traceback, no hang — and must leave nothing behind: no store, no log, no
report. Most attempts go through typer's CliRunner (the same `app` the console script runs);
a sample goes through the installed `ict-trader` executable in its own process, where exit
codes and tracebacks are the real ones. Each test prints how many inputs it tried.

Settings at the very ends of their ranges must, on the other hand, run a backtest to the end:
the ranges exist because values beyond them crashed mid-trade.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from ict_trader import ranges
from ict_trader.cli.app import app

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = [
    "2024-07-29T13:30:00Z,465.71,465.9,464.98,464.98,608500",
    "2024-07-29T13:31:00Z,464.98,465.16,464.41,464.47,281643",
    "2024-07-29T13:32:00Z,464.43,465.23,464.2,465.21,113857",
]
ROW = "2024-07-29T13:33:00Z,465,466,464,465,100"


@dataclass
class Attempt:
    """One misuse: the command line (with `{in}` for the bad input's path) and what the one
    error line must mention besides it."""

    label: str
    args: list[str]
    names: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    crashed: BaseException | None = None


# ---------------------------------------------------------------------------- bad bar files


def _csv(text: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "bars.csv"
        path.write_text(text, encoding="utf-8")
        return path

    return build


def _rows(*rows: str) -> Callable[[Path], Path]:
    return _csv(HEADER + "\n".join([*GOOD, *rows]) + "\n")


def _symbol_rows(
    *symbols: str, times: tuple[str, ...] = ("13:30", "13:31", "13:32")
) -> Callable[[Path], Path]:
    """A file with a symbol column: one row per symbol given, at these New York-summer times."""
    rows = [
        f"2024-07-29T{moment}:00Z,{symbol},465,466,464,465,100"
        for moment, symbol in zip(times, symbols, strict=True)
    ]
    return _csv("timestamp,symbol,open,high,low,close,volume\n" + "\n".join(rows) + "\n")


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def _gzip(text: bytes, cut: int | None = None) -> Callable[[Path], Path]:
    whole = gzip.compress(text)
    return _bytes("bars.csv.gz", whole[:cut] if cut is not None else whole)


def _parquet(
    columns: dict[str, pa.Array | list[float]], cut: int | None = None
) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / "bars.parquet"
        pq.write_table(pa.table(columns), path)
        if cut is not None:
            path.write_bytes(path.read_bytes()[:cut])
        return path

    return build


def _utc(unit: str, *stamps: str) -> pa.Array:
    moments = [datetime.fromisoformat(stamp).replace(tzinfo=UTC) for stamp in stamps]
    return pa.array(moments, pa.timestamp(unit, tz="UTC"))


def _prices(value: float = 465.0, n: int = 1) -> dict[str, list[float]]:
    return {name: [value] * n for name in ("open", "high", "low", "close", "volume")}


def _fifo(folder: Path) -> Path:
    path = folder / "bars.csv"
    os.mkfifo(path)
    return path


def _folder(folder: Path) -> Path:
    path = folder / "bars.csv"
    path.mkdir()
    return path


def _link_to_fifo(folder: Path) -> Path:
    target = folder / "pipe"
    os.mkfifo(target)
    path = folder / "bars.csv"
    path.symlink_to(target)
    return path


def _dangling(folder: Path) -> Path:
    path = folder / "bars.csv"
    path.symlink_to(folder / "gone.csv")
    return path


def _device(folder: Path) -> Path:
    return Path("/dev/null")


GOOD_TEXT = (HEADER + "\n".join(GOOD) + "\n").encode()
BAD_BAR_FILES: dict[str, Callable[[Path], Path]] = {
    "empty file": _csv(""),
    "whitespace only": _csv("  \n\n \n"),
    "header only": _csv(HEADER),
    "missing volume column": _csv("timestamp,open,high,low,close\n2024-07-29T13:30:00Z,1,1,1,1\n"),
    "wrong column names": _csv("date,o,h,l,c,v\n2024-07-29T13:30:00Z,1,1,1,1,1\n"),
    "no header": _csv("\n".join(GOOD) + "\n"),
    "semicolons": _csv(HEADER.replace(",", ";") + GOOD[0].replace(",", ";") + "\n"),
    "json in a csv": _csv('[{"timestamp": "2024-07-29T13:30:00Z", "open": 1}]\n'),
    "nan close": _rows("2024-07-29T13:33:00Z,465,466,464,nan,1"),
    "empty open": _rows("2024-07-29T13:33:00Z,,466,464,465,1"),
    "inf high": _rows("2024-07-29T13:33:00Z,465,inf,464,465,1"),
    "-inf low": _rows("2024-07-29T13:33:00Z,465,466,-inf,465,1"),
    "overflowing 1e400": _rows("2024-07-29T13:33:00Z,465,1e400,464,465,1"),
    "negative price": _rows("2024-07-29T13:33:00Z,-465,466,-467,465,1"),
    "zero price": _rows("2024-07-29T13:33:00Z,0,466,0,465,1"),
    "high below low": _rows("2024-07-29T13:33:00Z,465,463,467,465,1"),
    "low above close": _rows("2024-07-29T13:33:00Z,466,467,465.5,465,1"),
    "negative volume": _rows("2024-07-29T13:33:00Z,465,466,464,465,-1"),
    "text price": _rows("2024-07-29T13:33:00Z,465,466,464,abc,1"),
    "huge price": _rows("2024-07-29T13:33:00Z,1e300,1e300,1e300,1e300,1"),
    "huge volume": _rows("2024-07-29T13:33:00Z,465,466,464,465,1e30"),
    "sub-penny dust price": _rows("2024-07-29T13:33:00Z,1e-12,1e-12,1e-12,1e-12,1"),
    "duplicate time": _rows("2024-07-29T13:32:00Z,465,466,464,465,1"),
    "unsorted times": _rows("2024-07-29T13:31:30Z,465,466,464,465,1"),
    "year 1600": _rows("1600-01-03T14:30:00Z,465,466,464,465,1"),
    "year 2300": _rows("2300-01-03T14:30:00Z,465,466,464,465,1"),
    "year 1989": _rows("1989-12-29T14:30:00Z,465,466,464,465,1"),
    "year 9999": _rows("9999-12-31T14:30:00Z,465,466,464,465,1"),
    "year 12345": _rows("12345-01-03T14:30:00Z,465,466,464,465,1"),
    "garbage time": _rows("yesterday,465,466,464,465,1"),
    "empty time": _rows(",465,466,464,465,1"),
    "epoch seconds": _rows("1722259980,465,466,464,465,1"),
    "no UTC offset": _rows("2024-07-29T09:33:00,465,466,464,465,1"),
    "hour 25": _rows("2024-07-29T25:33:00Z,465,466,464,465,1"),
    "saturday": _rows("2024-08-03T14:30:00Z,465,466,464,465,1"),
    "christmas": _rows("2024-12-25T15:00:00Z,465,466,464,465,1"),
    "pre-market": _rows("2024-07-29T13:29:00Z,465,466,464,465,1"),
    "header repeated mid-file": _rows(HEADER.strip()),
    "truncated mid-row": _csv(HEADER + "\n".join(GOOD) + "\n2024-07-29T13:33:00Z,465,4"),
    "unbalanced quote": _csv(HEADER + GOOD[0] + '\n"2024-07-29T13:31:00Z,465,466,464,465,1\n'),
    "latin-1 bytes": _bytes(
        "bars.csv", GOOD_TEXT + b"2024-07-29T13:33:00Z,465,466,464,465,caf\xe9\n"
    ),
    "utf-16": _bytes("bars.csv", GOOD_TEXT.decode().encode("utf-16")),
    "binary garbage": _bytes("bars.csv", bytes(range(256)) * 64),
    "nul bytes": _bytes("bars.csv", b"\x00" * 4096),
    "truncated gzip": _gzip(GOOD_TEXT * 200, cut=400),
    "not gzip": _bytes("bars.csv.gz", GOOD_TEXT),
    "gzip of garbage": _gzip(bytes(range(256)) * 16),
    "gzip with a bad row": _gzip(GOOD_TEXT + b"2024-07-29T13:33:00Z,465,466,464,nan,1\n"),
    "empty gzip": _bytes("bars.csv.gz", b""),
    "parquet garbage": _bytes("bars.parquet", b"PAR1" + bytes(range(256)) * 8),
    "parquet truncated": _parquet(
        {"timestamp": _utc("us", "2024-07-29T13:30:00"), **_prices()}, cut=300
    ),
    "parquet missing column": _parquet({"timestamp": _utc("us", "2024-07-29T13:30:00")}),
    "parquet year 1600": _parquet({"timestamp": _utc("s", "1600-01-03T14:30:00"), **_prices()}),
    "parquet year 2300": _parquet({"timestamp": _utc("ms", "2300-01-03T14:30:00"), **_prices()}),
    "parquet nan price": _parquet(
        {"timestamp": _utc("us", "2024-07-29T13:30:00"), **_prices(float("nan"))}
    ),
    "parquet naive time": _parquet({"timestamp": pa.array([0], pa.timestamp("us")), **_prices()}),
    "parquet no rows": _parquet({"timestamp": _utc("us"), **_prices(n=0)}),
    "unsupported extension": _bytes("bars.txt", GOOD_TEXT),
    "symbol column: not a ticker": _symbol_rows("IWM", "IWM", "I W M"),
    "symbol column: empty symbol": _symbol_rows("IWM", "", "IWM"),
    "symbol column: a number": _symbol_rows("IWM", "DIA", "7"),
    "symbol column: one symbol out of order": _symbol_rows(
        "IWM", "DIA", "IWM", times=("13:31", "13:30", "13:30")
    ),
    "symbol column: one symbol's minute twice": _symbol_rows(
        "IWM", "DIA", "IWM", times=("13:30", "13:30", "13:30")
    ),
    "fifo": _fifo,
    "directory": _folder,
    "symlink to a fifo": _link_to_fifo,
    "dangling symlink": _dangling,
    "device": _device,
}


# ---------------------------------------------------------------------------- bad settings


def _bad_numbers() -> Iterator[tuple[str, str, str]]:
    """(label, TOML, key): every numeric setting with each kind of bad value."""
    for table, keys in ranges.TABLES.items():
        for key, allowed in keys.items():
            over = ranges.plain(allowed.high * 10 + 1)
            for kind, value in (
                ("nan", "nan"),
                ("inf", "inf"),
                ("-inf", "-inf"),
                ("negative", "-1"),
                ("huge", "1e30"),
                ("just over", over),
                ("text", '"5"'),
                ("bool", "true"),
                ("list", "[1, 2]"),
            ):
                yield f"{table}.{key} {kind}", f"[{table}]\n{key} = {value}\n", f"{table}.{key}"
            if allowed.whole:
                yield f"{table}.{key} fraction", f"[{table}]\n{key} = 1.5\n", f"{table}.{key}"


PROFILE = '[[profiles]]\nname = "p"\nallocation = {}\n'
BAD_SETTINGS: dict[str, tuple[str | bytes, str]] = {
    label: (text, key) for label, text, key in _bad_numbers()
} | {
    "unknown top-level key": ("colour = 'red'\n", "colour"),
    "unknown exits key": ("[exits]\nmax_hold = 5\n", "exits.max_hold"),
    "unknown risk key": ("[risk]\nloss = 5\n", "risk.loss"),
    "unknown simulation key": ("[simulation]\nequity = 5\n", "simulation.equity"),
    "unknown signal key": ("[signal]\nswing = 5\n", "swing"),
    "nested table in exits": ("[exits.extra]\nx = 1\n", "exits.extra"),
    "exits as a number": ("exits = 5\n", "[exits]"),
    "risk as text": ("risk = 'tight'\n", "[risk]"),
    "signal as a list": ("signal = [1]\n", "[signal]"),
    "array of exits tables": ("[[exits]]\nstop = 'atr'\n", "[exits]"),
    "profiles as a number": ("profiles = 3\n", "[[profiles]]"),
    "profiles empty": ("profiles = []\n", "[[profiles]]"),
    "profile without allocation": ('[[profiles]]\nname = "p"\n', "profiles[0]"),
    "profile allocation nan": (PROFILE.format("nan"), "profiles[0].allocation"),
    "profile allocation inf": (PROFILE.format("inf"), "profiles[0].allocation"),
    "profile allocation 0": (PROFILE.format("0"), "profiles[0].allocation"),
    "profile allocation 2": (PROFILE.format("2"), "profiles[0].allocation"),
    "profile allocation text": (PROFILE.format('"0.1"'), "profiles[0].allocation"),
    "profile name a number": ("[[profiles]]\nname = 7\nallocation = 0.1\n", "profiles[0].name"),
    "profile name with markup": (PROFILE.replace('"p"', '"[b]x"').format("0.1"), "[b]x"),
    "profile name too long": (PROFILE.replace('"p"', '"' + "x" * 60 + '"').format("0.1"), "32"),
    "duplicate profiles": (PROFILE.format("0.1") * 2, "duplicate names"),
    "too many profiles": (
        "".join(PROFILE.replace('"p"', f'"p{i}"').format("0.01") for i in range(25)),
        "profiles",
    ),
    "profile enabled text": (PROFILE.format("0.1") + "enabled = 'yes'\n", "enabled"),
    "stop unknown": ("[exits]\nstop = 'trailing'\n", "exits.stop"),
    "stop a number": ("[exits]\nstop = 1\n", "exits.stop"),
    "symbol a number": ("symbol = 5\n", "symbol"),
    "symbol punctuation": ("symbol = 'QQQ!'\n", "symbol"),
    "symbol empty": ("symbol = ''\n", "symbol"),
    "require_fvg text": ("[signal]\nrequire_fvg = 'maybe'\n", "require_fvg"),
    "integer overflow": ("[risk]\nmax_errors = 99999999999999999999999999\n", "risk.max_errors"),
    "invalid toml": ("[exits\n", "not valid TOML"),
    "duplicate key": ("[exits]\nstop = 'atr'\nstop = 'none'\n", "not valid TOML"),
    "non-utf-8": (b"[exits]\nstop = 'caf\xe9'\n", "not UTF-8"),
    "utf-16": ("[exits]\nstop = 'atr'\n".encode("utf-16"), "not UTF-8"),
    "binary garbage": (bytes(range(256)) * 8, "ict-trader.toml"),
    "too large": ("# " + "x" * (2 << 20) + "\n", "too large"),
}


# ---------------------------------------------------------------------------- running


runner = CliRunner()


def _invoke(args: list[str], env: dict[str, str]) -> Outcome:
    result = runner.invoke(app, args, env=env)
    crashed = result.exception if not isinstance(result.exception, SystemExit) else None
    return Outcome(result.exit_code, result.stdout, result.stderr, crashed)


def _in_processes(attempts: list[Attempt], cwd: Path) -> list[Outcome]:
    """Each attempt in its own `ict-trader` process, started together: start-up (imports)
    dominates, and the processes overlap."""
    executable = shutil.which("ict-trader")
    assert executable is not None, "the console script must be installed"
    base = {
        "PATH": str(Path(executable).parent),
        "HOME": str(cwd),
        "XDG_CONFIG_HOME": str(cwd / "config"),
        "COLUMNS": "80",
    }
    processes = [
        subprocess.Popen(
            [executable, *attempt.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
            env={**base, **attempt.env},
        )
        for attempt in attempts
    ]
    outcomes = []
    for process in processes:
        try:
            # A guard against a hang (a FIFO read forever), not a measurement.
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            stderr += "\n(hung: killed)"
        outcomes.append(Outcome(process.returncode, stdout, stderr))
    return outcomes


def _problems(outcome: Outcome, must_name: tuple[str, ...], out: Path) -> list[str]:
    """What is wrong with how one misuse was handled (nothing, if it was refused cleanly)."""
    found: list[str] = []
    lines = outcome.stderr.strip().splitlines()
    if outcome.crashed is not None:
        found.append(f"raised {type(outcome.crashed).__name__}: {outcome.crashed}")
    if outcome.code != 2:
        found.append(f"exit code {outcome.code}")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        found.append(f"stderr is not one 'error:' line: {outcome.stderr[-500:]!r}")
    if "Traceback" in outcome.stderr:
        found.append("traceback")
    found.extend(f"does not name {name!r}" for name in must_name if name not in outcome.stderr)
    written = sorted(p.name for p in out.iterdir())
    if written:
        found.append(f"wrote {written}")
    return found


# Building the click command from the annotations is most of an invocation's cost and gives the
# same command every time: built once, so hundreds of inputs fit in a few seconds.
_command_of = functools.cache(typer.main.get_command)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No credentials, no .env or ict-trader.toml picked up from the working directory."""
    monkeypatch.setattr(typer.testing, "_get_command", _command_of)
    monkeypatch.chdir(tmp_path)
    for name in ("ALPACA_API_KEY", "ALPACA_API_SECRET", "PUSHOVER_TOKEN", "PUSHOVER_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ICT_TRADER_APPRISE_URLS", raising=False)
    return {}


def _commands(kind: str, path: Path, outs: Path) -> list[tuple[list[str], Path]]:
    """The commands a bad input is tried with, each with the empty folder it would write its
    store, log and reports to (if it wrongly wrote anything)."""
    bt, rn = _fresh(outs / "backtest"), _fresh(outs / "run")
    backtest = ["backtest", kind, str(path), "--db", str(bt / "bt.db")]
    backtest += ["--json", str(bt / "bt.json"), "--html", str(bt / "bt.html")]
    run = ["run", kind, str(path), "--db", str(rn / "run.db"), "--no-dashboard", "--speed", "0"]
    return [(backtest, bt), (run, rn)]


def _report(capsys: pytest.CaptureFixture[str], what: str, tried: int, clean: int) -> None:
    with capsys.disabled():
        print(f"\nmisuse: {what}: {tried} inputs tried, {clean} refused cleanly")


def test_bad_bar_files_are_refused_in_one_line(
    tmp_path: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    failures: dict[str, list[str]] = {}
    tried = 0
    for number, (label, build) in enumerate(BAD_BAR_FILES.items()):
        inputs = tmp_path / f"in{number}"
        inputs.mkdir()
        path = build(inputs)
        for args, out in _commands("--data", path, tmp_path / f"out{number}"):
            tried += 1
            problems = _problems(_invoke(args, clean_env), (str(path),), out)
            if problems:
                failures[f"{label}: {args[0]}"] = problems
    _report(capsys, "bar files", tried, tried - len(failures))
    assert len(BAD_BAR_FILES) >= 40
    assert failures == {}


def test_bad_settings_are_refused_in_one_line_naming_the_key(
    tmp_path: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    failures: dict[str, list[str]] = {}
    tried = 0
    for number, (label, (content, key)) in enumerate(BAD_SETTINGS.items()):
        folder = tmp_path / f"in{number}"
        folder.mkdir()
        path = folder / "ict-trader.toml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        for args, out in _commands("--config", path, tmp_path / f"out{number}"):
            tried += 1
            problems = _problems(_invoke(args, clean_env), (str(path), key), out)
            if problems:
                failures[f"{label}: {args[0]}"] = problems
    _report(capsys, "settings files", tried, tried - len(failures))
    assert len(BAD_SETTINGS) >= 40
    assert failures == {}


def test_settings_paths_that_are_not_files_are_refused(
    tmp_path: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = tmp_path / "pipe.toml"
    os.mkfifo(pipe)
    cases = {
        "directory": (tmp_path, "is a directory"),
        "fifo": (pipe, "not a regular file"),
        "missing": (tmp_path / "missing.toml", "not found"),
        "device": (Path("/dev/zero"), "not a regular file"),
    }
    failures = {}
    for label, (path, why) in cases.items():
        for args, out in _commands("--config", path, tmp_path / f"out-{label}"):
            problems = _problems(_invoke(args, clean_env), (str(path), why), out)
            if problems:
                failures[f"{label}: {args[0]}"] = problems
    _report(capsys, "settings paths", 2 * len(cases), 2 * len(cases) - len(failures))
    assert failures == {}


def _bad_options(tmp_path: Path, out: Path) -> list[Attempt]:
    db = ["--db", str(out / "x.db")]
    run = ["run", *db, "--no-dashboard", "--speed", "0"]
    attempts = [
        Attempt(f"--speed {v}", ["run", *db, "--speed", v], ("'--speed'",))
        for v in ("inf", "nan", "-1", "1e9", "fast")
    ]
    attempts += [
        Attempt(f"--sessions {v}", ["run", *db, "--sessions", v], ("'--sessions'",))
        for v in ("-1", "-3", "100000", "many")
    ]
    attempts += [
        Attempt(f"--connect-timeout {v}", [*run, "--connect-timeout", v], ("--connect-timeout",))
        for v in ("-1", "inf", "nan", "1e6", "soon")
    ]
    attempts += [
        Attempt(f"--slippage-bps {v}", ["backtest", *db, "--slippage-bps", v], ("--slippage",))
        for v in ("-1", "inf", "nan", "1e6")
    ]
    attempts += [
        Attempt(f"--param {v}", ["backtest", *db, "--param", v], (v.partition("=")[0],))
        for v in (
            "displacement_atr=nan",
            "displacement_atr=inf",
            "displacement_atr=-1",
            "atr_period=0",
            "atr_period=1e9",
            "atr_period=2.5",
            "swing_length=99999",
            "mss_window=abc",
            "open_delay_minutes=-5",
            "close_buffer_minutes=100000",
            "require_fvg=maybe",
            "no_such_param=1",
            "noequals",
        )
    ]
    attempts += [
        Attempt("--dashboard-port 70000", [*run, "--dashboard-port", "70000"], ("port",)),
        Attempt("--from not a date", ["backtest", *db, "--from", "2024-13-45"], ("'--from'",)),
        Attempt("--tz unknown", ["backtest", *db, "--tz", "Mars/Base"], ("Mars/Base",)),
        Attempt("--json into a folder", ["backtest", *db, "--json", str(tmp_path)], ("--json",)),
        Attempt(
            "--html in a missing folder",
            ["backtest", *db, "--html", str(tmp_path / "no" / "r.html")],
            ("--html",),
        ),
        Attempt(
            "--log-file in a missing folder",
            [*run, "--log-file", str(tmp_path / "no" / "x.log")],
            ("--log-file",),
        ),
        Attempt(
            "bad apprise URL",
            list(run),
            ("ICT_TRADER_APPRISE_URLS",),
            {"ICT_TRADER_APPRISE_URLS": "bogus://nothing"},
        ),
        Attempt("--live without keys", [*run, "--live"], ("--live",)),
        Attempt(
            "--dashboard-host remote", [*run[:-3], "--dashboard-host", "0.0.0.0"], ("--dashboard",)
        ),
        Attempt("emulate --port", ["emulate-alpaca", "--port", "99999"], ("'--port'",)),
        Attempt("emulate --latency", ["emulate-alpaca", "--latency-ms", "1e12"], ("latency",)),
        Attempt("emulate --start-bar", ["emulate-alpaca", "--start-bar", "99999"], ("start-bar",)),
        Attempt(
            "--symbols for more symbols than files",
            ["backtest", *db, "--symbols", "QQQ,SPY"],
            ("(QQQ, SPY)", "--symbols"),
        ),
        Attempt("--symbols not a ticker", ["signals", "--symbols", "QQ Q!"], ("--symbols",)),
    ]
    download = ["data", "download", "--out", str(out / "bars")]
    qqq = ["--symbols", "QQQ", "--from", "2024-01-02"]
    attempts += [
        Attempt(label, [*download, *args], names)
        for label, args, names in (
            ("download without --symbols", ["--from", "2024-01-02"], ("--symbols",)),
            ("download without --from", ["--symbols", "QQQ"], ("--from",)),
            ("download bad --from", ["--symbols", "QQQ", "--from", "2024-02-30"], ("--from",)),
            ("download --to before --from", [*qqq, "--to", "2023-12-01"], ("--to",)),
            ("download --feed", [*qqq, "--feed", "otc"], ("--feed",)),
            ("download --adjustment", [*qqq, "--adjustment", "dividends"], ("--adjustment",)),
            ("download bad symbol", ["--symbols", "QQQ,$PY", "--from", "2024-01-02"], ("$PY",)),
            ("download without keys", qqq, ("ALPACA_API_KEY",)),
            ("download bad --alpaca-url", [*qqq, "--alpaca-url", "ftp://x"], ("--alpaca-url",)),
        )
    ]
    return attempts


def test_bad_options_are_refused_in_one_line_naming_the_option(
    tmp_path: Path, clean_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _fresh(tmp_path / "out")
    attempts = _bad_options(tmp_path, out)
    failures = {}
    for attempt in attempts:
        problems = _problems(
            _invoke(attempt.args, {**clean_env, **attempt.env}), attempt.names, out
        )
        if problems:
            failures[attempt.label] = problems
    _report(capsys, "command options", len(attempts), len(attempts) - len(failures))
    assert len(attempts) >= 30
    assert failures == {}


def test_a_sample_through_the_real_executable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real processes: the exit code, stderr and absence of tracebacks are the user's."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    fifo = BAD_BAR_FILES["fifo"](_fresh(inputs / "fifo"))
    truncated = BAD_BAR_FILES["truncated gzip"](_fresh(inputs / "gz"))
    old = BAD_BAR_FILES["year 1600"](_fresh(inputs / "old"))
    infinite = inputs / "inf.toml"
    infinite.write_text("[exits]\ntarget_atr_multiple = inf\n", encoding="utf-8")
    latin = inputs / "latin.toml"
    latin.write_bytes(b"[exits]\nstop = 'caf\xe9'\n")
    outs = [_fresh(tmp_path / f"out{i}") for i in range(7)]

    def run(out: Path, *more: str) -> list[str]:
        return ["run", "--db", str(out / "x.db"), "--no-dashboard", "--speed", "0", *more]

    attempts = [
        Attempt("run --data FIFO", run(outs[0], "--data", str(fifo)), (str(fifo),)),
        Attempt(
            "backtest --data truncated.csv.gz",
            ["backtest", "--data", str(truncated), "--db", str(outs[1] / "b.db")],
            (str(truncated),),
        ),
        Attempt("run --data year 1600", run(outs[2], "--data", str(old)), ("1600-01-03",)),
        Attempt(
            "run --config inf", run(outs[3], "--config", str(infinite)), ("target_atr_multiple",)
        ),
        Attempt(
            "backtest --config latin-1",
            ["backtest", "--config", str(latin), "--db", str(outs[4] / "b.db")],
            (str(latin),),
        ),
        Attempt("run --speed inf", run(outs[5], "--speed", "inf"), ("'--speed'",)),
        Attempt(
            "run with a bad apprise URL",
            run(outs[6]),
            ("ICT_TRADER_APPRISE_URLS",),
            {"ICT_TRADER_APPRISE_URLS": "bogus://nothing"},
        ),
    ]
    failures = {}
    for attempt, outcome, out in zip(
        attempts, _in_processes(attempts, tmp_path), outs, strict=True
    ):
        problems = _problems(outcome, attempt.names, out)
        if outcome.stdout:
            problems.append(f"stdout not empty: {outcome.stdout[-300:]!r}")
        if problems:
            failures[attempt.label] = problems
    _report(capsys, "real processes", len(attempts), len(attempts) - len(failures))
    assert failures == {}


# ---------------------------------------------------------------------------- the ends of ranges


def _extreme_config(end: str) -> str:
    """Every exits/simulation/risk setting at one end of its range and one profile (the whole
    account at the high end); signal parameters stay at their defaults so trades happen."""
    lines = []
    for table in ("exits", "simulation", "risk"):
        lines.append(f"[{table}]")
        for key, allowed in ranges.TABLES[table].items():
            bound = allowed.high if end == "high" else allowed.low
            lines.append(f"{key} = {ranges.plain(bound)}")
        if table == "exits":
            lines.append('stop = "atr"')  # so stop_atr_multiple is used too
    allocation = ranges.PROFILE_ALLOCATION.high if end == "high" else "0.01"
    lines += ["[[profiles]]", 'name = "edge"', f"allocation = {allocation}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("end", ["high", "low"])
def test_settings_at_the_ends_of_their_ranges_backtest_to_the_end(
    tmp_path: Path, clean_env: dict[str, str], end: str
) -> None:
    """The ranges exist because values past them crashed after an entry had filled: values at
    their very ends must trade through the bundled sample without an error."""
    config = tmp_path / "edge.toml"
    text = _extreme_config(end)
    if end == "low":
        # At the low end the simulated account holds $1 and has no buying power: nothing could
        # be traded. A usual account keeps the exits and risk limits at their low ends in play.
        text = text.replace("starting_equity = 1\n", "starting_equity = 100000\n")
        text = text.replace("buying_power_multiple = 0\n", "buying_power_multiple = 2\n")
    config.write_text(text, encoding="utf-8")
    report = tmp_path / "bt.json"
    args = [
        "backtest",
        "--config",
        str(config),
        "--json",
        str(report),
        "--db",
        str(tmp_path / "b.db"),
    ]
    result = runner.invoke(app, args, env=clean_env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.stderr
    trades = json.loads(report.read_text(encoding="utf-8"))["trades"]
    assert trades, "the edge settings must still trade the sample's signals"
    assert all(trade["exit_reason"] for trade in trades)


@pytest.mark.parametrize("end", ["high", "low"])
def test_signal_parameters_at_the_ends_of_their_ranges_run(
    tmp_path: Path, clean_env: dict[str, str], end: str
) -> None:
    params = []
    for key, allowed in ranges.SIGNAL.items():
        bound = allowed.high if end == "high" else allowed.low
        params += ["--param", f"{key}={ranges.plain(bound)}"]
    result = runner.invoke(app, ["signals", "--format", "csv", *params], env=clean_env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "timestamp,direction,close,atr,extreme,mss_level"


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder
