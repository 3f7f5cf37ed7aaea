"""The audit in the terminal: the verdict, the error lines, then one table per part.

Times are New York's; prices and slippage as the report holds them (decimal text). Everything
shown is also in `--json`, which has every order, not only the counts. With several symbols the
bars table has a column per symbol and one for all, the signals table a symbol column, and the
expectation table each symbol's rows after the overall ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from ict_trader.audit.bars import BarsAudit
from ict_trader.audit.expectation import Figures, Rate
from ict_trader.audit.report import OK, RECORDS_DIFFER, AuditReport
from ict_trader.core.calendar import NEW_YORK

_COLOUR = {OK: "green", RECORDS_DIFFER: "red"}


def renderables(report: AuditReport) -> Iterator[RenderableType]:
    """What `ict-trader audit` prints, in order."""
    yield Text(report.verdict(), style=f"bold {_COLOUR.get(report.status, 'yellow')}")
    for line in report.errors:
        yield Text(f"  ✗ {line}", style="red")
    for note in [*report.orders.notes, *report.notes]:
        yield Text(f"  · {note}", style="dim")
    yield _orders_table(report)
    if report.bars is not None:
        yield _bars_table(report)
        yield _signals_table(report)
    if report.slippage:
        yield _slippage_table(report)
    if report.live is not None and report.backtest is not None:
        yield _expectation_table(report)


def _orders_table(report: AuditReport) -> Table:
    orders = report.orders
    table = Table(
        title=(
            f"Orders and fills {report.first_day} … {report.last_day} "
            f"({report.mode}, {', '.join(report.symbols)}): the store against Alpaca"
        ),
        title_justify="left",
    )
    table.add_column("")
    table.add_column("count", justify="right")
    matched = sum(1 for m in orders.matched if not m.problems)
    table.add_row(
        "orders in the store for the period", str(len(orders.matched) + len(orders.notes))
    )
    table.add_row("matched with Alpaca's order, fields and fills equal", str(matched))
    table.add_row("FILL activities accounted for", str(orders.fills_matched))
    table.add_row("not at Alpaca, as the store says (refused, never sent)", str(len(orders.notes)))
    table.add_row("foreign: at Alpaca, not placed by ict-trader", str(len(orders.foreign)))
    table.add_row("differences (error lines above)", str(len(report.errors)))
    return table


def _bars_table(report: AuditReport) -> Table:
    bars = report.bars
    assert bars is not None
    feed = report.feed.upper()
    until = "" if report.sip_until is None else f" up to {_ny(report.sip_until)}"
    table = Table(
        title=f"Bars: the live {feed} bars against SIP, {len(report.sessions)} session(s){until}",
        title_justify="left",
    )
    table.add_column("")
    columns: list[BarsAudit] = [bars]
    if len(report.by_symbol) > 1:  # a column per symbol, then all of them
        columns = [part.bars for part in report.by_symbol.values()] + [bars]
        for symbol in report.by_symbol:
            table.add_column(symbol, justify="right")
        table.add_column("all", justify="right")
    else:
        table.add_column("value", justify="right")
    rows: list[tuple[str, Callable[[BarsAudit], str]]] = [
        ("SIP minutes compared", lambda b: str(b.minutes)),
        (f"minutes with no {feed} bar", lambda b: str(b.missing_live)),
        (f"{feed} bars SIP does not have", lambda b: str(b.live_only)),
        ("bars with another open/high/low/close", lambda b: str(b.different)),
        (f"{feed} high or low outside SIP's range", lambda b: str(b.outside_range)),
        ("largest |close difference|", lambda b: _money(b.max_close_difference)),
        ("mean |close difference|", lambda b: _money(b.mean_close_difference)),
        (
            f"{feed} volume ÷ SIP volume",
            lambda b: "—" if b.volume_share is None else f"{b.volume_share:.1%}",
        ),
    ]
    for name, shown in rows:
        table.add_row(name, *(shown(column) for column in columns))
    return table


def _signals_table(report: AuditReport) -> Table:
    table = Table(
        title=f"Signals: the detector on {report.feed.upper()} bars and on SIP bars",
        title_justify="left",
    )
    several = len(report.by_symbol) > 1
    names = ("direction", report.feed.upper(), "SIP", "")
    for name in ("symbol", *names) if several else names:
        table.add_column(name)
    for pair in report.signals.pairs:
        cells = (
            pair.direction,
            "—" if pair.live is None else _ny(pair.live),
            "—" if pair.sip is None else _ny(pair.sip),
            _SIGNAL_WORDS[pair.status],
        )
        table.add_row(*((pair.symbol, *cells) if several else cells))
    if not report.signals.pairs:
        table.add_row(*(("—",) if several else ()), "—", "no signal", "no signal", "same")
    return table


_SIGNAL_WORDS = {
    "same": "same",
    "shifted": "shifted",
    "missing": "missing on the live feed (SIP only)",
    "extra": "extra (live feed only)",
}


def _slippage_table(report: AuditReport) -> Table:
    table = Table(
        title="Fills against the backtest's simulated fills (positive = worse for the account)",
        title_justify="left",
    )
    for name in (
        "trade",
        "entry live",
        "simulated",
        "$/share",
        "bp",
        "$ total",
        "exit live",
        "backtest",
        "$/share",
        "bp",
        "exits",
    ):
        table.add_column(name, justify="left" if name in {"trade", "exits"} else "right")
    for row in report.slippage:
        entry, exit_ = row.entry, row.exit
        table.add_row(
            row.trade_id,
            "—" if entry is None else str(entry.live),
            "—" if entry is None else str(entry.simulated),
            "—" if entry is None else f"{entry.per_share:+}",
            "—" if entry is None else f"{entry.bps:+}",
            "—" if entry is None else f"{entry.total:+}",
            "—" if exit_ is None else str(exit_.live),
            "—" if exit_ is None else str(exit_.simulated),
            "—" if exit_ is None else f"{exit_.per_share:+}",
            "—" if exit_ is None else f"{exit_.bps:+}",
            f"{row.live_exit_reason or 'open'} / {row.backtest_exit_reason or '—'}",
        )
    return table


def _expectation_table(report: AuditReport) -> Table:
    live, backtest = report.live, report.backtest
    assert live is not None and backtest is not None
    table = Table(
        title="Expectation: live so far against the backtest on SIP bars, same sessions (95% CI)",
        title_justify="left",
    )
    table.add_column("")
    table.add_column("live", justify="right")
    table.add_column("backtest (SIP)", justify="right")
    _expectation_rows(table, "", live, backtest)
    if len(report.by_symbol) > 1:
        for symbol, part in report.by_symbol.items():
            _expectation_rows(table, f"{symbol} ", part.live, part.backtest)
    return table


def _expectation_rows(table: Table, prefix: str, live: Figures, backtest: Figures) -> None:
    table.add_row(f"{prefix}signals", str(live.signals), str(backtest.signals))
    table.add_row(f"{prefix}signals / week", _per_week(live), _per_week(backtest))
    for profile in live.target_hit:
        table.add_row(
            f"{prefix}{profile}: target hit",
            _rate(live.target_hit[profile]),
            _rate(backtest.target_hit[profile]),
        )
        table.add_row(
            f"{prefix}{profile}: win rate", _rate(live.win[profile]), _rate(backtest.win[profile])
        )


def _per_week(figures: Figures) -> str:
    value, ci = figures.signals_per_week, figures.signals_per_week_ci
    if value is None or ci is None:
        return "—"
    return f"{value:.2f} ({ci[0]:.2f}-{ci[1]:.2f})"


def _rate(rate: Rate) -> str:
    value, ci = rate.value, rate.interval
    if value is None or ci is None:
        return "— (0 trades)"
    return f"{value:.0%} of {rate.trials} ({ci[0]:.0%}-{ci[1]:.0%})"


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


def _ny(moment: datetime) -> str:
    return f"{moment.astimezone(NEW_YORK):%Y-%m-%d %H:%M}"
