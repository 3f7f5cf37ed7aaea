"""The `ict-trader` command line.

Thin on purpose: it parses options, calls library code and maps user errors (bad files, bad
parameters, bad options) to one readable line and exit code 2, never a traceback. Everything a
command needs is validated before it writes anything (store, log, report), so a refused command
leaves no trace behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from importlib.resources import as_file, files
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text
from typer._click.core import Context as ClickContext
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from ict_trader import __version__
from ict_trader.adapters.alpaca.emulator.feed import DataOptions
from ict_trader.adapters.alpaca.emulator.options import OptionSettings
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions, PaperAccount
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer, Faults
from ict_trader.audit import AuditError, run_audit
from ict_trader.audit.daily import daily_audit_line
from ict_trader.audit.record import save_report
from ict_trader.audit.render import renderables
from ict_trader.audit.run import connect
from ict_trader.config import AppConfig, load_config, signal_params
from ict_trader.core.bars import Bar
from ict_trader.core.broker import SimulatedDesk
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.dashboard.launch import check_address, open_dashboard
from ict_trader.dashboard.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Dashboard,
    DashboardError,
)
from ict_trader.errors import BrokerUnreachableError, ConfigError
from ict_trader.logs import close_logging, setup_logging
from ict_trader.marketdata.barfile import BarDataError, BarFile, load_bars
from ict_trader.marketdata.barset import BarSet
from ict_trader.marketdata.download import (
    ADJUSTMENTS,
    FEEDS,
    DownloadError,
    DownloadRequest,
    MonthDone,
    download,
    months_of,
)
from ict_trader.marketdata.layout import SYMBOL, month_files
from ict_trader.marketdata.sources import MissingSymbolsError, Source, load_bar_set
from ict_trader.notify.notifier import Notifier, notifier_from_env
from ict_trader.options.pricing import Spread
from ict_trader.persistence.store import Store, StoreError
from ict_trader.reporting.backtest_summary import summary_table
from ict_trader.reporting.report_html import write_html_report
from ict_trader.reporting.signal_output import to_csv, to_json, to_table
from ict_trader.reporting.status import (
    DEFAULT_MAX_HEARTBEAT_AGE,
    collect_health,
    collect_status,
    open_trade_line,
)
from ict_trader.research.grid import load_grid
from ict_trader.research.report import summary_lines, write_html, write_table
from ict_trader.research.sweep import BarSource, execute, tasks_for
from ict_trader.research.walkforward import METRICS as SWEEP_METRICS
from ict_trader.research.walkforward import analyse, check_sources
from ict_trader.runtime import control
from ict_trader.runtime.backtest import option_desk, run_backtest, select_bars
from ict_trader.runtime.live import LiveEndpoints
from ict_trader.runtime.live_runner import (
    CONNECT_TIMEOUT_SECONDS,
    LIVE_OPT_IN,
    MAX_CONNECT_TIMEOUT_SECONDS,
    Credentials,
    check_live_money,
    endpoints_for,
    find_credentials,
    run_live,
    settings_environment,
)
from ict_trader.runtime.replay import (
    Narrator,
    ReplayOutcome,
    data_fingerprint,
    run_replay,
    sigterm_as_interrupt,
)
from ict_trader.signals import IctDetector, Signal, SignalParams
from ict_trader.signals.params import ParamError, parse_param_assignments

stdout = Console()
stderr = Console(stderr=True)

USER_ERROR = 2
# Not the user's input but the world: systemd (deploy/ict-trader.service) restarts on 1, not 2.
BROKER_UNREACHABLE = 1
MAX_SPEED = 1_000_000.0  # market minutes per wall-clock minute: a year of bars in ~6 seconds
MAX_SESSIONS = 260  # about a year of trading days
MAX_SLIPPAGE_BPS = 1000.0  # 10 %, as [simulation] slippage_bps


def _error_line(message: str) -> None:
    """`error: …` as exactly one line on stderr.

    Printed as plain text, not rich markup: messages quote settings such as `[[profiles]]` or
    `[exits]`, which markup would silently swallow.
    """
    line = Text("error: ", style="bold red")
    line.append(" ".join(message.split("\n")))
    stderr.print(line, highlight=False, soft_wrap=True)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError:
        raise  # `ict-trader` alone shows the help, as it should
    except UsageError as exc:
        _error_line(exc.format_message())
        raise typer.Exit(USER_ERROR) from None


class _OneLineErrorsGroup(TyperGroup):
    """Usage errors (an unknown option, `--speed inf`, a missing `--reason`) in one line with
    exit code 2, like every other user error, instead of typer's multi-line panel.

    Imports typer's vendored click exceptions (typer ≥ 0.25 ships click inside itself); uv.lock
    pins the version and tests/test_misuse_inputs.py fails if a release moves them.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: ClickContext | None = None,
        **extra: Any,
    ) -> ClickContext:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: ClickContext) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


app = typer.Typer(
    cls=_OneLineErrorsGroup,
    help="Trade ICT setups (sweep, displacement, market structure shift) on QQQ 1-minute bars.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
PROGRESS_THRESHOLD = 20_000  # bars; smaller files finish before a bar would be readable
SAMPLE_NAME = "qqq_1min_sample.csv"


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _version(value: bool) -> None:
    if value:
        stdout.print(f"ict-trader {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """ict-trader: automated ICT setups on QQQ, backtested on real data."""


DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Bar file (.csv, .csv.gz, .parquet) with timestamp,open,high,low,close,volume. "
        "Default: the bundled real QQQ sample (10 sessions, 2024-07-29 .. 2024-08-09).",
    ),
]
SourceOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Bar file (.csv, .csv.gz, .parquet) with timestamp,open,high,low,close,volume, or "
        "a folder from `ict-trader data download`. Default: the bundled real QQQ sample "
        "(10 sessions, 2024-07-29 .. 2024-08-09).",
    ),
]
SourcesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        metavar="[SYMBOL=]PATH",
        help="Bar file (.csv, .csv.gz, .parquet) with timestamp,open,high,low,close,volume and "
        "optionally symbol, or a folder from `ict-trader data download`; repeatable (e.g. one "
        "file per symbol: --data IWM=iwm.csv.gz --data DIA=dia.csv.gz). Default: the bundled "
        "real QQQ sample (10 sessions, 2024-07-29 .. 2024-08-09).",
    ),
]
SymbolsOption = Annotated[
    str | None,
    typer.Option(
        "--symbols",
        help="Symbols to trade, e.g. IWM,DIA: chosen from a folder or a file with a symbol "
        "column, or naming in order the files that do not say theirs; replaces the settings' "
        "symbols. Default: the settings' symbols if they set any, else every symbol the data "
        "holds.",
    ),
]
TzOption = Annotated[
    str | None,
    typer.Option(
        "--tz", help="Time zone of timestamps without a UTC offset, e.g. America/New_York."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Settings file (default: ./ict-trader.toml if present)."),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", help="Override a signal parameter, NAME=VALUE (repeatable)."),
]


@app.command()
def signals(
    data: SourcesOption = None,
    tz: TzOption = None,
    symbols: SymbolsOption = None,
    param: ParamOption = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table (New York times), csv or json (UTC).")
    ] = OutputFormat.TABLE,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of the terminal.")
    ] = None,
) -> None:
    """Detect ICT signals in a bar file and list them."""
    with _user_errors():
        params = signal_params(
            SignalParams(), parse_param_assignments(param or []), from_file=False
        )
        if out is not None:
            _check_output(out, "--out")
        bar_set = _market(data, tz, symbols)
    found = _detect(bar_set, params)
    several = len(bar_set.files) > 1
    title = (
        f"{len(found)} signals in {_data_name(bar_set)}: "
        f"{sum(s.direction == 'long' for s in found)} long, "
        f"{sum(s.direction == 'short' for s in found)} short, "
        f"{_session_count(bar_set.merged() if several else bar_set.files[0].bars)} sessions"
    )
    if output_format is OutputFormat.TABLE:
        table = to_table(found, title, with_symbol=several)
        if out is None:
            stdout.print(table)
        else:
            with _user_errors(), _writing(out, "--out"), out.open("w", encoding="utf-8") as handle:
                Console(file=handle, width=120, no_color=True).print(table)
    else:
        text = (
            to_csv(found, with_symbol=several)
            if output_format is OutputFormat.CSV
            else to_json(found, with_symbol=several)
        )
        if out is None:
            typer.echo(text, nl=False)
        else:
            with _user_errors(), _writing(out, "--out"):
                out.write_text(text, encoding="utf-8")
    if out is not None:
        stderr.print(f"wrote {len(found)} signals to {out}")


def _load(data: Path | None, tz: str | None, *, extended_hours: bool = False) -> BarFile:
    if data is not None:
        return load_bars(data, tz=tz, extended_hours=extended_hours)
    with as_file(files("ict_trader") / "data" / SAMPLE_NAME) as sample:
        return load_bars(sample, tz=tz)


def _served(
    data: list[str] | None, tz: str | None, symbols: str | None, *, extended_hours: bool
) -> tuple[dict[str, list[Bar]], NyseCalendar, str]:
    """What `emulate-alpaca` serves: each symbol's bars (a file that does not name its symbol
    is served as QQQ), the calendar and a name for the banner. Extended hours: one file."""
    if extended_hours:
        if data is not None and len(data) > 1:
            raise ConfigError("--extended-hours: serve one file (a symbol's pre- and after-market)")
        source = Source.parse(data[0]) if data else None
        bar_file = _load(source.path if source else None, tz, extended_hours=True)
        symbol = (source.symbol if source else None) or "QQQ"
        return {symbol: bar_file.bars}, bar_file.calendar, bar_file.path.name
    bar_set = _market(data, tz, symbols)
    if not bar_set.named:
        (bar_file,) = bar_set.files
        return {"QQQ": bar_file.bars}, bar_set.calendar, bar_file.path.name
    served = {symbol: list(bar_set.bars_of(symbol)) for symbol in bar_set.symbols}
    names = ", ".join(f"{s} ({bar_set.file_of(s).path.name})" for s in bar_set.symbols)
    return served, bar_set.calendar, names


def _market(
    data: list[str] | None,
    tz: str | None,
    symbols: str | None,
    settings: AppConfig | None = None,
    first: datetime | None = None,
    last: datetime | None = None,
) -> BarSet:
    """The bars of the symbols to trade.

    Which symbols: --symbols; else the settings' if their file names any (the data must hold
    them: one line and exit 2 if it does not); else every symbol the data holds. A folder's
    months are read only as far as --from/--to need.
    """
    chosen = _symbols(symbols) if symbols is not None else None
    configured = settings is not None and settings.symbols_named
    wanted = chosen or []
    if chosen is None and configured and settings is not None:
        wanted = list(settings.engine.symbols)
    first_day = first.date() if first else None
    last_day = last.date() if last else None
    try:
        if data:
            sources = [Source.parse(text) for text in data]
            bar_set = load_bar_set(sources, wanted, tz=tz, first=first_day, last=last_day)
        else:
            with as_file(files("ict_trader") / "data" / SAMPLE_NAME) as sample:
                bar_set = load_bar_set([sample], wanted, tz=tz)
    except MissingSymbolsError as exc:
        missing, held = ", ".join(exc.missing), ", ".join(exc.held) or "no named symbol"
        if chosen is not None:
            raise ConfigError(
                f"--symbols {symbols}: no bars for {missing} in {exc.path} (it holds {held})"
            ) from None
        if settings is None or not configured:
            raise
        raise ConfigError(
            f"{settings.source}: symbols {', '.join(wanted)} are not all in the data: no bars "
            f"for {missing} in {exc.path} (it holds {held}); set symbols to the data's or "
            "choose them with --symbols"
        ) from None
    return bar_set


def _trading(settings: AppConfig, bar_set: BarSet) -> AppConfig:
    """The settings, trading the data's symbols (a lone file that does not say its own leaves
    the settings' one symbol, QQQ by default)."""
    if not bar_set.named or bar_set.symbols == settings.engine.symbols:
        return settings
    return replace(settings, engine=replace(settings.engine, symbols=bar_set.symbols))


def _data_name(bar_set: BarSet) -> str:
    """The file's name for one symbol (as before several symbols), else the symbols."""
    if len(bar_set.files) == 1:
        return bar_set.files[0].path.name
    return ", ".join(bar_set.symbols)


def _symbols(text: str) -> list[str]:
    """`QQQ,spy` → ["QQQ", "SPY"]; refused unless each is a ticker."""
    chosen: list[str] = []
    for item in text.split(","):
        symbol = item.strip().upper()
        if not SYMBOL.match(symbol):
            raise ConfigError(
                f"--symbols {text!r}: {item.strip()!r} is not a ticker (letters, digits, a dot)"
            )
        if symbol not in chosen:
            chosen.append(symbol)
    return chosen


def _detect(bar_set: BarSet, params: SignalParams) -> list[Signal]:
    """Each symbol's signals by its own detector, all in (time, symbol) order."""
    found: list[Signal] = []
    with _progress(bar_set.bar_count, "detecting") as advance:
        for bar_file in sorted(bar_set.files, key=lambda f: f.symbol or ""):
            update = IctDetector(bar_set.calendar, params).update
            for index, bar in enumerate(bar_file.bars):
                signal = update(bar)
                if signal is not None:
                    found.append(signal)
                if index % 4096 == 4095:
                    advance(4096)
    if len(bar_set.files) > 1:
        found.sort(key=lambda signal: signal.time)  # stable: symbols stay in order
    return found


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for large inputs; yields a function advancing it by n."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=total < PROGRESS_THRESHOLD,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _session_count(bars: Sequence[Bar]) -> int:
    return len({bar.time.date() for bar in bars}) if bars else 0


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except (BarDataError, ParamError, ConfigError, StoreError) as exc:
        _error_line(str(exc))
        raise typer.Exit(USER_ERROR) from None
    except DownloadError as exc:  # a rate limit or an outage may pass: exit 1, not 2
        _error_line(str(exc))
        raise typer.Exit(1 if exc.transient else USER_ERROR) from None


def _check_output(path: Path, option: str, what: str = "write") -> None:
    """Refuse an output path that cannot be written before the work, not after it."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: cannot {what}: it is a directory")
    if not path.parent.is_dir():
        raise ConfigError(
            f"{option} {path}: cannot {what}: the folder {path.parent} does not exist"
        )


@contextmanager
def _writing(path: Path, option: str) -> Iterator[None]:
    """A write that still fails (permissions, a full disk) as one line naming the option."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write: {exc.strerror or exc}") from None


def _settings(config: Path | None, param: list[str] | None) -> AppConfig:
    settings = load_config(config)
    for warning in settings.warnings():
        stderr.print(f"warning: {warning}", highlight=False)
    overrides = parse_param_assignments(param or [])
    if not overrides:
        return settings
    return replace(settings, signal=signal_params(settings.signal, overrides, from_file=False))


OptionQuotesOption = Annotated[
    Path | None,
    typer.Option(
        "--option-quotes",
        help="Price option profiles from this quote file (timestamp, symbol, bid, ask); "
        "overrides [options] quotes and pricing.",
    ),
]


def _option_pricing(
    settings: AppConfig, quotes: Path | None, calendar: NyseCalendar
) -> tuple[AppConfig, SimulatedDesk | None]:
    """The settings with `--option-quotes` applied and the option desk they describe (a quote
    file read and checked now); says where option premiums come from once it is usable."""
    if quotes is not None:
        settings = settings.with_option_quotes(quotes)
    desk = option_desk(settings, calendar)
    if desk is not None:
        stderr.print(f"option premiums: {settings.options.description()}", highlight=False)
    return settings, desk


@app.command()
def backtest(
    data: SourcesOption = None,
    tz: TzOption = None,
    symbols: SymbolsOption = None,
    date_from: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First session (New York date)."),
    ] = None,
    date_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last session (New York date)."),
    ] = None,
    config: ConfigOption = None,
    param: ParamOption = None,
    slippage_bps: Annotated[
        float | None,
        typer.Option(
            "--slippage-bps", min=0, max=MAX_SLIPPAGE_BPS, help="Market and stop slippage."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every metric and trade as JSON.")
    ] = None,
    html_out: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML report (opens offline)."),
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Record signals, orders, fills, trades here.")
    ] = None,
    option_quotes: OptionQuotesOption = None,
) -> None:
    """Backtest the strategy profiles on historical bars with the simulated broker."""
    with _user_errors():
        settings = _settings(config, param)
        if slippage_bps is not None:
            settings = replace(
                settings,
                simulation=replace(settings.simulation, slippage_bps=Decimal(str(slippage_bps))),
            )
        for path, option in ((json_out, "--json"), (html_out, "--html")):
            if path is not None:
                _check_output(path, option)
        bar_set = _market(data, tz, symbols, settings, date_from, date_to)
        settings = _trading(settings, bar_set)
        bars = select_bars(
            bar_set.merged(),
            date_from.date() if date_from else None,
            date_to.date() if date_to else None,
        )
        if not bars:
            raise ConfigError("no bars between --from and --to")
        settings, desk = _option_pricing(settings, option_quotes, bar_set.calendar)
        store = Store(db) if db is not None else None
    try:
        with _progress(len(bars), "backtesting") as advance:
            result = run_backtest(
                bars, bar_set.calendar, settings, store=store, desk=desk, progress=advance
            )
    finally:
        if store is not None:
            store.close()
    stdout.print(summary_table(result))
    if json_out is not None:
        with _user_errors(), _writing(json_out, "--json"):
            result.write_json(json_out)
        stderr.print(f"wrote {json_out}")
    if html_out is not None:
        with _user_errors(), _writing(html_out, "--html"):
            write_html_report(result, html_out)
        stderr.print(f"wrote {html_out}")


@app.command()
def sweep(
    grid_file: Annotated[Path, typer.Argument(help="Grid TOML: lists of values to try.")],
    data: SourceOption = None,
    tz: TzOption = None,
    symbols: Annotated[
        str | None,
        typer.Option("--symbols", help="With a downloaded folder: symbols, e.g. QQQ,SPY."),
    ] = None,
    date_from: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First session (New York date)."),
    ] = None,
    date_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last session (New York date)."),
    ] = None,
    config: ConfigOption = None,
    train: Annotated[
        int, typer.Option("--train", min=1, max=100_000, help="Sessions per train window.")
    ] = 60,
    test: Annotated[
        int, typer.Option("--test", min=1, max=100_000, help="Sessions per test window.")
    ] = 20,
    metric: Annotated[
        str, typer.Option("--metric", help=f"Chosen by: {', '.join(SWEEP_METRICS)}.")
    ] = "total_pnl",
    out: Annotated[
        Path, typer.Option("--out", help="Folder for sweep.csv, sweep.parquet, sweep.html.")
    ] = Path("sweep-out"),
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, max=1024, help="Local processes (all cores).")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="A Dask scheduler, e.g. tcp://10.0.0.5:8786."),
    ] = None,
) -> None:
    """Try a grid of settings with walk-forward selection; write a table and a report."""
    with _user_errors():
        if metric not in SWEEP_METRICS:
            raise ConfigError(f"--metric {metric!r}: one of {', '.join(SWEEP_METRICS)}")
        settings = _settings(config, None)
        grid = load_grid(grid_file, settings)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: is a file, expected a folder")
        if not out.parent.is_dir():
            raise ConfigError(f"--out {out}: the folder {out.parent} does not exist")
        chosen = _symbols(symbols) if symbols is not None else []
        path = data if data is not None else Path(str(files("ict_trader") / "data" / SAMPLE_NAME))
        if chosen and not path.is_dir():
            raise ConfigError(
                "--symbols chooses symbols of a folder from `ict-trader data download`"
            )
        first = date_from.date() if date_from else None
        last = date_to.date() if date_to else None
        picked: list[str | None] = [*chosen] or [None]
        sources = [BarSource(path, symbol, tz, first, last) for symbol in picked]
        check_sources(sources, settings, train=train, test=test)  # bad data: one line, here
        tasks = tasks_for(grid, sources, settings)
        results = execute(
            tasks,
            workers=workers,
            cluster=cluster,
            on_start=lambda: stderr.print(
                f"{len(grid.configurations)} configurations, {len(tasks)} tasks"
            ),
        )
        outcome = analyse(
            grid,
            results,
            metric=metric,
            train=train,
            test=test,
            starting_equity=settings.simulation.starting_equity,
        )
        with _writing(out, "--out"):
            out.mkdir(exist_ok=True)
            write_table(outcome, out / "sweep.csv", out / "sweep.parquet")
            write_html(outcome, out / "sweep.html")
    for line in summary_lines(outcome):
        stdout.print(line)
    stderr.print(f"wrote {out / 'sweep.csv'}, {out / 'sweep.parquet'}, {out / 'sweep.html'}")


DashboardHostOption = Annotated[
    str, typer.Option("--dashboard-host", help="Address to serve the dashboard on.")
]
DashboardPortOption = Annotated[
    int,
    typer.Option(
        "--dashboard-port",
        min=0,
        max=65535,
        envvar="ICT_TRADER_DASHBOARD_PORT",
        help="Dashboard TCP port (0: any free port).",
    ),
]
AllowRemoteOption = Annotated[
    bool,
    typer.Option("--allow-remote", help="Allow a non-loopback --dashboard-host (warns)."),
]


@app.command()
def run(
    data: SourcesOption = None,
    tz: TzOption = None,
    symbols: SymbolsOption = None,
    config: ConfigOption = None,
    param: ParamOption = None,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=0,
            max=MAX_SPEED,
            help="Replay: market minutes per wall-clock minute (60: a bar a second; 0: no pause).",
        ),
    ] = 60.0,
    db: Annotated[
        Path, typer.Option("--db", help="SQLite store; an unfinished run in it is resumed.")
    ] = Path("ict-trader.db"),
    quiet: Annotated[bool, typer.Option("--quiet", help="Only print the summary.")] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Replay: delete the store's previous replay first.")
    ] = False,
    replay: Annotated[
        bool, typer.Option("--replay", help="Replay bundled/--data bars even with credentials.")
    ] = False,
    alpaca_url: Annotated[
        str | None,
        typer.Option(
            "--alpaca-url", help="Trade against this Alpaca-compatible server (emulator)."
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option("--live", help=f"Real money (also needs {LIVE_OPT_IN}=yes). Paper otherwise."),
    ] = False,
    feed: Annotated[str, typer.Option("--feed", help="Market data feed: iex (free) or sip.")] = (
        "iex"
    ),
    sessions: Annotated[
        int,
        typer.Option(
            "--sessions",
            min=0,
            max=MAX_SESSIONS,
            help="Live: sessions to trade, then exit (0: until stopped).",
        ),
    ] = 0,
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            min=0,
            max=MAX_CONNECT_TIMEOUT_SECONDS,
            help="Live: seconds to keep retrying Alpaca at start before giving up (exit 1).",
        ),
    ] = CONNECT_TIMEOUT_SECONDS,
    dashboard: Annotated[
        bool, typer.Option("--dashboard/--no-dashboard", help="Serve the web dashboard.")
    ] = True,
    dashboard_host: DashboardHostOption = DEFAULT_HOST,
    dashboard_port: DashboardPortOption = DEFAULT_PORT,
    allow_remote: AllowRemoteOption = False,
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="JSON-lines log (default: the store's name + .log)."),
    ] = None,
    option_quotes: OptionQuotesOption = None,
) -> None:
    """Trade: live on Alpaca paper with credentials, else replay real bars offline.

    With ALPACA_API_KEY/ALPACA_API_SECRET (environment or .env) or --alpaca-url, trades through
    Alpaca (paper unless --live with ICT_TRADER_ALLOW_LIVE=yes). Without, replays bars through
    the simulated broker at --speed.
    """
    try:
        with _user_errors():
            # Everything is checked before anything is written: a refused run leaves neither a
            # store nor a log behind (and never a store that a later resume would pick up).
            settings = _settings(config, param)
            credentials = find_credentials()
            if alpaca_url is not None and credentials is None:
                credentials = Credentials("emulator-key", "emulator-secret")
            serve = _dashboard_starter(dashboard, dashboard_host, dashboard_port, allow_remote)
            _check_output(db, "--db", "open the store")
            _check_output(log_file or db.with_suffix(".log"), "--log-file", "write the log")
            if credentials is not None and not replay:
                if symbols is not None:  # live: the symbols to trade, no data to choose from
                    chosen = tuple(_symbols(symbols))
                    settings = replace(settings, engine=replace(settings.engine, symbols=chosen))
                if feed not in {"iex", "sip"}:
                    raise ConfigError(f"--feed {feed!r}: use iex or sip")
                paper = check_live_money(live)
                endpoints = endpoints_for(alpaca_url, feed)
                # A bad ICT_TRADER_APPRISE_URLS stops the run here, before the log or the store.
                with _notifier() as notifier:
                    setup_logging(log_file or db.with_suffix(".log"))
                    try:
                        _run_live(
                            settings,
                            credentials,
                            endpoints,
                            db,
                            serve,
                            notifier,
                            paper=paper,
                            sessions=sessions,
                            connect_timeout=connect_timeout,
                        )
                    except BrokerUnreachableError as exc:
                        _error_line(str(exc))
                        raise typer.Exit(BROKER_UNREACHABLE) from None
                return
            if live:
                raise ConfigError(
                    "--live needs Alpaca credentials (ALPACA_API_KEY/ALPACA_API_SECRET)"
                )
            bar_set = _market(data, tz, symbols, settings)
            settings = _trading(settings, bar_set)
            settings, desk = _option_pricing(settings, option_quotes, bar_set.calendar)
            notifier = _start_notifier()
        try:
            with _user_errors():
                setup_logging(log_file or db.with_suffix(".log"))
                if fresh:
                    _delete_replay_store(db)
                store = Store(db)
            _say(notifier.describe())
            web = serve(db)
            try:
                with _user_errors():
                    stderr.print(
                        f"replaying {bar_set.bar_count:,} bars of {_data_name(bar_set)} at "
                        f"speed {speed:g} (store: {db}); Ctrl-C stops cleanly and the same "
                        "command resumes"
                    )
                    outcome = run_replay(
                        bar_set.merged(),
                        bar_set.calendar,
                        settings,
                        store,
                        _fingerprint(bar_set),
                        speed=speed,
                        console=stdout,
                        quiet=quiet,
                        notifier=notifier,
                        desk=desk,
                    )
                    _print_replay_summary(store, outcome)
            finally:
                store.close()
                if web is not None:
                    web.stop()
                    stderr.print(f"to look at this run again: ict-trader dashboard --db {db}")
        finally:
            notifier.close()
        if outcome.interrupted:
            raise typer.Exit(130)
    finally:
        close_logging()


def _run_live(
    settings: AppConfig,
    credentials: Credentials,
    endpoints: LiveEndpoints,
    db: Path,
    serve: Callable[[Path], Dashboard | None],
    notifier: Notifier,
    *,
    paper: bool,
    sessions: int,
    connect_timeout: float,
) -> None:
    store = Store(db)
    _say(notifier.describe())
    narrator = Narrator(stdout)
    web = serve(db)
    try:
        with contextlib.suppress(KeyboardInterrupt), sigterm_as_interrupt():
            run_live(
                settings,
                credentials,
                endpoints,
                store,
                paper=paper,
                observer=narrator,
                say=lambda text: stderr.print(text, highlight=False, soft_wrap=True),
                sessions=sessions,
                notifier=notifier,
                connect_timeout=connect_timeout,
                daily_audit=daily_audit_line,
                # an emulator's clock may jump (its bars are replayed): ask it every second
                poll_seconds=1.0 if endpoints.rest_url is not None else 60.0,
            )
    finally:
        store.close()
        if web is not None:
            web.stop()


def _start_notifier() -> Notifier:
    """Pushover if configured (environment or .env); checked now, said once the store is open
    (a refused start says only why it was refused)."""
    return notifier_from_env(settings_environment())


@contextmanager
def _notifier() -> Iterator[Notifier]:
    notifier = _start_notifier()
    try:
        yield notifier
    finally:
        notifier.close()  # flushes what is queued, within a few seconds


def _say(text: str) -> None:
    """A message for the user on stderr, never wrapped (a token must stay copyable)."""
    stderr.print(text, highlight=False, soft_wrap=True)


def _dashboard_starter(
    enabled: bool, host: str, port: int, allow_remote: bool
) -> Callable[[Path], Dashboard | None]:
    """Checks the address now (a user error stops the run before it starts); serving starts
    once the store exists. A busy port does not stop trading: the run goes on without it."""
    if enabled:
        check_address(host, allow_remote)

    def start(db: Path) -> Dashboard | None:
        if not enabled:
            return None
        try:
            return open_dashboard(
                db,
                host,
                port,
                allow_remote=allow_remote,
                environ=os.environ,
                say=_say,
            )
        except DashboardError as exc:
            stderr.print(f"[yellow]{exc}; running without the dashboard[/]", highlight=False)
            return None

    return start


def _fingerprint(bar_set: BarSet) -> str:
    """What identifies the replayed data, so a resume never continues on other data: the file's
    (as before several symbols), else each file's or folder's, after the symbols."""
    prints = []
    for path in bar_set.paths:
        if path.is_dir():  # one symbol's folder of monthly files
            digest = hashlib.sha256()
            for _, month in month_files(path):
                digest.update(month.name.encode() + b"\0" + month.read_bytes())
            prints.append(f"{path.name}/ sha256:{digest.hexdigest()[:16]}")
        else:
            prints.append(data_fingerprint(path))
    if len(bar_set.files) == 1:
        return prints[0]
    return f"{','.join(bar_set.symbols)}: {'; '.join(prints)}"


def _print_replay_summary(store: Store, outcome: ReplayOutcome) -> None:
    trades = store.trades()
    closed = [t for t in trades if t.status == "closed"]
    open_ = [t for t in trades if t.status in {"pending", "open", "exiting"}]
    if outcome.interrupted:
        stderr.print(
            f"stopped after {outcome.bars_done} of {outcome.bars_total} bars; "
            "run the same command to resume"
        )
    elif outcome.bars_total == 0:
        stderr.print("this replay is already complete; add --fresh to start it again")
    by_profile: dict[str, list[Decimal]] = {}
    for trade in closed:
        by_profile.setdefault(trade.profile, []).append(trade.pnl or Decimal(0))
    for profile, pnls in sorted(by_profile.items()):
        wins = sum(p > 0 for p in pnls)
        stdout.print(
            f"{profile}: {len(pnls)} trades, {wins} wins, P&L {sum(pnls, Decimal(0)):+,.2f}",
            highlight=False,
        )
    if open_:
        stdout.print(f"{len(open_)} trade(s) still open (resume to manage them)")


def _delete_replay_store(db: Path) -> None:
    """Remove a replay store so a new replay starts from scratch; never a live one."""
    if not db.exists():
        return
    store = Store(db)
    try:
        run = store.last_run()
    finally:
        store.close()
    if run is not None and run["mode"] != "replay":
        raise ConfigError(f"--fresh: {db} holds a {run['mode']} run, not a replay; not deleting")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


@app.command("emulate-alpaca")
def emulate_alpaca(
    data: SourcesOption = None,
    tz: TzOption = None,
    symbols: SymbolsOption = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="TCP port on 127.0.0.1.")
    ] = 8765,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=0,
            max=MAX_SPEED,
            help="Market minutes per wall-clock minute; 0 = manual.",
        ),
    ] = 60.0,
    start_bar: Annotated[
        int, typer.Option("--start-bar", min=0, help="Bars already completed at start.")
    ] = 0,
    key: Annotated[str, typer.Option("--key", help="API key id the emulator accepts.")] = (
        "emulator-key"
    ),
    secret: Annotated[str, typer.Option("--secret", help="API secret it accepts.")] = (
        "emulator-secret"
    ),
    slippage_bps: Annotated[
        float, typer.Option("--slippage-bps", min=0, max=MAX_SLIPPAGE_BPS)
    ] = 0.0,
    spread: Annotated[
        float,
        typer.Option(
            "--spread", min=0, max=100, help="Bid/ask spread in dollars (quotes: price ± half)."
        ),
    ] = 0.02,
    partial_fill_rate: Annotated[
        float, typer.Option("--partial-fill-rate", min=0, max=1, help="Alpaca paper: 10 %.")
    ] = 0.1,
    reject_rate: Annotated[float, typer.Option("--reject-rate", min=0, max=1)] = 0.0,
    duplicate_fill_rate: Annotated[
        float, typer.Option("--duplicate-fill-rate", min=0, max=1)
    ] = 0.0,
    latency_ms: Annotated[int, typer.Option("--latency-ms", min=0, max=60_000)] = 0,
    error_500_rate: Annotated[float, typer.Option("--error-500-rate", min=0, max=1)] = 0.0,
    error_429_rate: Annotated[float, typer.Option("--error-429-rate", min=0, max=1)] = 0.0,
    order_504_rate: Annotated[float, typer.Option("--order-504-rate", min=0, max=1)] = 0.0,
    drop_socket_every: Annotated[
        int, typer.Option("--drop-socket-every", min=0, max=1_000_000)
    ] = 0,
    no_wash_trade_check: Annotated[bool, typer.Option("--no-wash-trade-check")] = False,
    extended_hours: Annotated[
        bool,
        typer.Option("--extended-hours", help="Keep the file's pre- and after-market bars."),
    ] = False,
    plan: Annotated[
        str, typer.Option("--plan", help="Market data plan: free (IEX only) or sip.")
    ] = "free",
    missing_minute_rate: Annotated[
        float, typer.Option("--missing-minute-rate", min=0, max=1, help="IEX minutes with no bar.")
    ] = DataOptions.missing_minute_rate,
    updated_bar_rate: Annotated[
        float, typer.Option("--updated-bar-rate", min=0, max=1, help="Bars revised a minute later.")
    ] = DataOptions.updated_bar_rate,
    iex_volume_share: Annotated[
        float,
        typer.Option(
            "--iex-volume-share",
            min=0.001,
            max=1,
            help="Share of each minute's trades IEX prints (modelled IEX bars; 1: SIP's bars).",
        ),
    ] = DataOptions.iex_volume_share,
    closed_between_sessions: Annotated[
        bool,
        typer.Option(
            "--closed-between-sessions/--open-between-sessions",
            help="Closed clock after each session until the next bar (Alpaca's), or not.",
        ),
    ] = True,
    option_volatility: Annotated[
        float | None,
        typer.Option(
            "--option-volatility",
            min=0.01,
            max=10,
            help="Annualised volatility (trading-minute clock) the option quotes are modelled "
            "at. Default: the underlying's realized volatility.",
        ),
    ] = None,
    option_spread: Annotated[
        float,
        typer.Option(
            "--option-spread",
            min=0,
            max=10,
            help="Dollars of the modelled option bid-ask at least (also 1 % of the price).",
        ),
    ] = float(Spread().absolute),
    options_level: Annotated[
        int,
        typer.Option(
            "--options-level", min=0, max=3, help="The account's options trading level (2: buy)."
        ),
    ] = OptionSettings.trading_level,
) -> None:
    """Serve Alpaca's paper API on 127.0.0.1, replaying real bars (for the live path, offline).

    Option contracts of every served symbol expire daily; their quotes and greeks are modelled
    (Black-Scholes-Merton from the underlying's bars), as Alpaca's free indicative feed is."""
    with _user_errors():
        if plan not in {"free", "sip"}:
            raise ConfigError(f"--plan {plan!r}: use free or sip")
        served, calendar, name = _served(data, tz, symbols, extended_hours=extended_hours)
        minutes = len({bar.time for bars in served.values() for bar in bars})
        if start_bar >= minutes:
            raise ConfigError(f"--start-bar {start_bar}: the data has {minutes} minutes")
    data_options = DataOptions(
        plan="sip" if plan == "sip" else "free",
        missing_minute_rate=missing_minute_rate,
        updated_bar_rate=updated_bar_rate,
        iex_volume_share=iex_volume_share,
    )
    options = EmulatorOptions(
        slippage_bps=Decimal(str(slippage_bps)),
        spread=Decimal(str(spread)),
        wash_trade_check=not no_wash_trade_check,
        partial_fill_rate=partial_fill_rate,
        reject_rate=reject_rate,
        duplicate_fill_rate=duplicate_fill_rate,
        closed_between_sessions=closed_between_sessions,
        option_settings=OptionSettings(
            volatility=option_volatility,
            spread=Spread(absolute=Decimal(str(option_spread))),
            trading_level=options_level,
        ),
    )
    faults = Faults(
        latency_ms=latency_ms,
        error_500_rate=error_500_rate,
        error_429_rate=error_429_rate,
        order_504_rate=order_504_rate,
        drop_data_socket_every=drop_socket_every,
    )
    account = PaperAccount(served, calendar, options=options)
    for _ in range(start_bar):
        account.complete_bar()
    account.drain_updates()
    server = EmulatorServer(
        account, key=key, secret=secret, speed=speed, faults=faults, port=port, data=data_options
    )

    async def serve() -> None:
        await server.start()
        stderr.print(
            f"Alpaca emulator on {server.base_url} replaying {name} "
            f"from {account.now:%Y-%m-%d %H:%M}Z at speed {speed:g}\n"
            f"  REST: {server.base_url}  (TradingClient/StockHistoricalDataClient url_override)\n"
            f"  data stream: ws://127.0.0.1:{server.port}/v2/iex   "
            f"trade updates: ws://127.0.0.1:{server.port}/stream\n"
            f"  key {key!r}; Ctrl-C stops"
        )
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


StoreOption = Annotated[Path, typer.Option("--db", help="The bot's SQLite store.")]


def _existing_store(db: Path) -> Store:
    """A connection beside the bot: it never takes the one-writer lock the running bot holds
    (kill and resume still write, each in its own committed transaction)."""
    if not db.exists():
        raise ConfigError(f"--db {db}: no such store (start `ict-trader run` first, or pass --db)")
    return Store(db, reader=True)


def _read_store(db: Path, read: Callable[[Store], dict[str, object]]) -> dict[str, object]:
    """Run `read` on the store; a database error is one line naming it, not a traceback."""
    store = _existing_store(db)
    try:
        return read(store)
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: cannot read the store: {exc}") from None
    finally:
        store.close()


@app.command()
def kill(
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")],
    db: StoreOption = Path("ict-trader.db"),
) -> None:
    """Engage the kill switch: cancel ict-trader's orders, flatten its positions, no entries.

    A running bot obeys within a bar (or a clock tick); a stopped one starts halted. It holds
    until `ict-trader resume`.
    """
    _control_request("kill", reason, db)


@app.command()
def resume(
    reason: Annotated[str, typer.Option("--reason", help="Why it is safe to trade again.")],
    db: StoreOption = Path("ict-trader.db"),
) -> None:
    """Lift the kill switch (or a reduce-only block); entries are allowed again."""
    _control_request("resume", reason, db)


@app.command()
def reconcile(
    accept_broker: Annotated[
        bool,
        typer.Option(
            "--accept-broker",
            help="The broker is right: stop managing the ledger's open trades (no P&L booked).",
        ),
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit log).")] = "",
    db: StoreOption = Path("ict-trader.db"),
) -> None:
    """Settle a dispute between Alpaca's position and the ledger (e.g. a position closed by hand).

    Without --accept-broker, shows the dispute: the ledger's open trades and the latest
    reconciliation notes. With it, the bot — once it has checked with Alpaca that the two still
    disagree — marks its open trades *released* (closed outside ict-trader: no fill booked, no P&L
    counted) and cancels their orders. Entries stay blocked until `ict-trader resume`.
    """
    if not accept_broker:
        with _user_errors():
            store = _existing_store(db)
            try:
                trades = [t for t in store.trades() if t.status in {"pending", "open", "exiting"}]
                notes = [
                    e
                    for e in store.audit_events(200)
                    if str(e["kind"]).startswith(("reconcile.", "order.held", "release."))
                ][:5]
            finally:
                store.close()
        for trade in trades:
            side = -1 if trade.direction == "short" else 1
            stdout.print(
                f"{trade.trade_id}: {trade.status}, {side * trade.qty:+d} {trade.entry_price}",
                markup=False,
                highlight=False,
            )
        for note in notes:
            stdout.print(f"{note['time']} {note['kind']}: {note['message']}", markup=False)
        if not trades:
            stdout.print("the ledger holds no open trade", highlight=False)
        return
    with _user_errors():
        store = _existing_store(db)
        try:
            run = store.last_run()
        finally:
            store.close()
        if run is None or run["mode"] not in {"paper", "live"}:
            raise ConfigError(f"--db {db}: not a paper or live store; there is no broker to agree")
    _control_request("release", reason, db)


@app.command()
def audit(
    db: StoreOption = Path("ict-trader.db"),
    date_from: Annotated[
        datetime | None,
        typer.Option(
            "--from", formats=["%Y-%m-%d"], help="First New York date (default: the store's first)."
        ),
    ] = None,
    date_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last New York date (default: today)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the whole report, every order, as JSON.")
    ] = None,
    alpaca_url: Annotated[
        str | None,
        typer.Option(
            "--alpaca-url", help="Audit against this Alpaca-compatible server (emulator)."
        ),
    ] = None,
) -> None:
    """Check a paper or live store against Alpaca's records and the backtest on SIP bars.

    Orders and fills against Alpaca's order history and FILL activities; the live bars and their
    signals against consolidated (SIP) bars; each live fill against the backtest's; signals per
    week, target-hit and win rates with 95% intervals, live and backtest. Reads only (the report
    is kept in the store for the dashboard). Exit code 1 when the records differ.
    """
    with _user_errors():
        if date_from is not None and date_to is not None and date_from > date_to:
            raise ConfigError(f"--from {date_from:%Y-%m-%d} is after --to {date_to:%Y-%m-%d}")
        if json_out is not None:
            _check_output(json_out, "--json")
        credentials = find_credentials()
        if alpaca_url is not None and credentials is None:
            credentials = Credentials("emulator-key", "emulator-secret")
        if credentials is None:
            raise ConfigError(
                "audit needs Alpaca credentials (ALPACA_API_KEY/ALPACA_API_SECRET in the "
                "environment or .env), or --alpaca-url"
            )
        url = endpoints_for(alpaca_url, "iex").rest_url
        store = _existing_store(db)
        try:
            run_record = store.last_run()
            paper = run_record is None or run_record["mode"] != "live"
            clients = connect(credentials.key, credentials.secret, paper=paper, url=url)
            try:
                report = run_audit(
                    store,
                    clients,
                    first_day=date_from.date() if date_from else None,
                    last_day=date_to.date() if date_to else None,
                )
            except AuditError as exc:
                raise ConfigError(str(exc)) from None
            except sqlite3.Error as exc:
                raise StoreError(f"{db}: cannot read the store: {exc}") from None
            try:
                save_report(store, report)
            except StoreError as exc:  # the audit stands; only the dashboard misses it
                stderr.print(f"warning: not kept for the dashboard: {exc}", highlight=False)
        finally:
            store.close()
    for item in renderables(report):
        stdout.print(item, highlight=False)
    if json_out is not None:
        with _user_errors(), _writing(json_out, "--json"):
            json_out.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
        stderr.print(f"wrote {json_out}")
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _control_request(kind: str, reason: str, db: Path) -> None:
    with _user_errors():
        if not reason.strip():
            raise ConfigError("--reason must say why")
        try:
            store = _existing_store(db)
            try:
                number = control.request(store, kind, reason.strip(), "cli")
            finally:
                store.close()
        except StoreError as exc:  # busy after retries, disk full: the user must know
            raise StoreError(f"{exc} — the {kind} request was NOT recorded") from None
    # Said only now: the request is committed, the bot will see it.
    stderr.print(f"{kind} requested (#{number}): {reason.strip()}")


@app.command("dashboard")
def dashboard_command(
    db: StoreOption = Path("ict-trader.db"),
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = (
        DEFAULT_PORT
    ),
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (warns).")
    ] = False,
) -> None:
    """Serve the web dashboard of a store (a running bot's or a finished run's) until Ctrl-C."""
    with _user_errors():
        _existing_store(db).close()
        try:
            web = open_dashboard(
                db,
                host,
                port,
                allow_remote=allow_remote,
                environ=os.environ,
                say=_say,
            )
        except DashboardError as exc:
            raise ConfigError(str(exc)) from None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        web.stop()


@app.command()
def status(
    db: StoreOption = Path("ict-trader.db"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Trading state, today's P&L (per symbol when several), open trades, breakers and the last
    bar, from the store."""
    with _user_errors():
        report: dict[str, Any] = _read_store(db, collect_status)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    colour = {"active": "green", "reducing": "yellow", "halted": "red"}.get(report["state"], "red")
    stdout.print(
        f"state [bold {colour}]{report['state']}[/]"
        + (
            f" — {report['state_reason']} ({report['state_actor']})"
            if report["state_reason"]
            else ""
        ),
        highlight=False,
    )
    for item in report["pending_requests"]:
        stdout.print(
            f"pending: {item['kind']} #{item['request']} by {item['actor']} ({item['reason']}) — "
            "applied at the bot's next bar, or when it starts",
            highlight=False,
        )
    if report["pending_requests"]:
        recorded = report["recorded_state"]
        stdout.print(f"(the bot last recorded: {recorded['state']})", highlight=False)
    stdout.print(
        f"mode {report['mode']} · feed {report['feed']} · last bar {report['last_bar']} · "
        f"equity {report['equity']}",
        highlight=False,
    )
    pnl = report["pnl_today"]
    stdout.print(
        f"P&L {report['session']}: realized {pnl['realized']}, unrealized {pnl['unrealized']}",
        highlight=False,
    )
    for profile, figures in pnl["per_profile"].items():
        stdout.print(
            f"  {profile}: realized {figures['realized']}, unrealized {figures['unrealized']}",
            highlight=False,
        )
    if len(report["symbols"]) > 1:  # one symbol: its figures are the lines above
        for symbol, figures in report["symbols"].items():
            units = figures["position"]
            held = "flat" if units == 0 else f"{abs(units)} {'long' if units > 0 else 'short'}"
            stdout.print(
                f"symbol {symbol}: {held} · last close {figures['last_close']} · "
                f"realized {figures['realized']}, unrealized {figures['unrealized']}",
                highlight=False,
            )
    for trade in report["open_trades"]:
        stdout.print(open_trade_line(trade), highlight=False)
    for name, breaker in report["breakers"].items():
        mark = "[red]TRIPPED[/]" if breaker["tripped"] else "ok"
        stdout.print(f"breaker {name}: {mark} ({breaker['meaning']})", highlight=False)


@app.command()
def health(
    db: StoreOption = Path("ict-trader.db"),
    max_heartbeat_age: Annotated[
        float,
        typer.Option(
            "--max-heartbeat-age", min=1, help="Seconds without a loop pass that count as down."
        ),
    ] = DEFAULT_MAX_HEARTBEAT_AGE,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """For supervisors: exit 0 if the bot's heartbeat is fresh and its broker ok, else 1."""
    with _user_errors():
        report: dict[str, Any] = _read_store(
            db, lambda store: collect_health(store, None, max_heartbeat_age)
        )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        broker = report["broker"]
        typer.echo(
            f"{'healthy' if report['healthy'] else 'UNHEALTHY'} · state {report['state']} · "
            f"heartbeat {report['heartbeat']} ({report['heartbeat_age_seconds']} s ago) · "
            f"last bar {report['last_bar_time']} ({report['last_bar_age_seconds']} s ago) · "
            f"broker {'ok' if broker['ok'] else 'NOT ok'} (checked {broker['checked_at']})"
        )
        for problem in report["problems"]:
            typer.echo(f"  {problem}")
    if not report["healthy"]:
        raise typer.Exit(1)


data_app = typer.Typer(
    cls=_OneLineErrorsGroup,
    help="Market data: download Alpaca's minute-bar history into a folder.",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


@data_app.command("download")
def data_download(
    symbols: Annotated[
        str, typer.Option("--symbols", help="Comma-separated tickers, e.g. QQQ,SPY.")
    ],
    date_from: Annotated[
        datetime,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day (New York date)."),
    ],
    date_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (New York date; default today)."),
    ] = None,
    feed: Annotated[
        str,
        typer.Option(
            "--feed",
            help="sip (every US exchange; the free plan: up to 15 "
            "minutes ago) or iex (one exchange).",
        ),
    ] = "sip",
    adjustment: Annotated[
        str,
        typer.Option("--adjustment", help="raw (as traded), split or all (splits and dividends)."),
    ] = "raw",
    out: Annotated[
        Path, typer.Option("--out", help="Folder for <SYMBOL>/<YYYY-MM>.parquet files.")
    ] = Path("alpaca-bars"),
    extended_hours: Annotated[
        bool,
        typer.Option("--extended-hours", help="Keep pre- and after-market bars (04:00-20:00)."),
    ] = False,
    alpaca_url: Annotated[
        str | None,
        typer.Option("--alpaca-url", help="Download from an Alpaca-compatible server (emulator)."),
    ] = None,
) -> None:
    """Download 1-minute bars from Alpaca, one Parquet file per symbol and month; resumable.

    Credentials: ALPACA_API_KEY/ALPACA_API_SECRET (environment or .env).

    A re-run fetches only the months the folder does not hold completely (the current one).
    """
    with _user_errors():
        chosen = _symbols(symbols)
        if feed not in FEEDS:
            raise ConfigError(f"--feed {feed!r}: use sip or iex")
        if adjustment not in ADJUSTMENTS:
            raise ConfigError(f"--adjustment {adjustment!r}: use raw, split or all")
        first = date_from.date()
        last = date_to.date() if date_to is not None else datetime.now(NEW_YORK).date()
        if last < first:
            raise ConfigError(f"--to {last} is before --from {first}")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: not a folder")
        credentials = find_credentials()
        if alpaca_url is not None and credentials is None:
            credentials = Credentials("emulator-key", "emulator-secret")
        if credentials is None:
            raise ConfigError(
                "no Alpaca credentials: set ALPACA_API_KEY and ALPACA_API_SECRET (environment "
                "or .env); a free Alpaca account's paper keys serve market data"
            )
        rest_url = endpoints_for(alpaca_url, feed).rest_url
        now = _alpaca_now(credentials, rest_url)
        if first > now.astimezone(NEW_YORK).date():
            today = now.astimezone(NEW_YORK).date()
            raise ConfigError(f"--from {first} is after today ({today})")
        client = StockHistoricalDataClient(
            credentials.key, credentials.secret, raw_data=True, url_override=rest_url
        )
        request = DownloadRequest(
            symbols=tuple(chosen),
            first=first,
            last=last,
            out=out,
            feed="sip" if feed == "sip" else "iex",
            adjustment=adjustment,
            extended_hours=extended_hours,
        )
        total = len(chosen) * len(months_of(request, now))
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        ) as progress:
            task = progress.add_task("downloading", total=total)

            def done(item: MonthDone) -> None:
                progress.update(
                    task, advance=1, description=f"{item.symbol} {item.month.name} {item.outcome}"
                )

            reports = download(request, client, now, on_month=done, say=_say)
    for report in reports:
        stdout.print(
            f"{report.symbol}: {len(report.fetched)} months fetched ({report.bars:,} bars), "
            f"{len(report.up_to_date)} up to date, {len(report.empty)} without bars "
            f"→ {out / report.symbol}",
            highlight=False,
            soft_wrap=True,
        )
    nothing = [r.symbol for r in reports if not (r.fetched or r.up_to_date)]
    if nothing:
        with _user_errors():
            raise DownloadError(
                f"Alpaca has no bars for {', '.join(nothing)} from {first} to {last} on feed "
                f"{feed} (is the symbol right? listed then?); nothing written for it"
            )


def _alpaca_now(credentials: Credentials, rest_url: str | None) -> datetime:
    """Now, by the clock that decides what Alpaca serves: the wall clock, or an emulator's
    (it replays the past, so its months end and its SIP delay runs by its own clock)."""
    if rest_url is None:
        return datetime.now(UTC)
    trading = TradingClient(credentials.key, credentials.secret, url_override=rest_url)
    trading._retry = 0
    try:
        clock: Any = trading.get_clock()
    except (APIError, requests.RequestException) as exc:
        status = getattr(exc, "status_code", None)
        raise DownloadError(
            f"--alpaca-url {rest_url}: cannot read its clock (/v2/clock: "
            f"{f'HTTP {status}' if status else type(exc).__name__})"
        ) from None
    moment: datetime = clock.timestamp
    return moment.astimezone(UTC)
