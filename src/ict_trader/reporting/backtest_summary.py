"""The terminal summary of a backtest: one column per profile plus the overall figures."""

from __future__ import annotations

from decimal import Decimal

from rich.table import Table

from ict_trader.notify.option_words import MODEL_PRICED
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.reporting.metrics import Metrics


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:+,.2f}"


def metric_cells(m: Metrics) -> list[str]:
    ci = m.win_rate_ci95
    win = "—" if m.win_rate is None else f"{m.win_rate:.1%}"
    if ci is not None:
        win += f" ({ci[0]:.0%}-{ci[1]:.0%})"
    return [
        str(m.signals),
        str(m.trades),
        str(m.skipped),
        f"{m.signals_per_week:.2f}",
        _pct(m.target_hit_rate),
        _pct(m.time_exit_rate),
        _pct(m.session_end_rate),
        win,
        _money(m.average_win),
        _money(m.average_loss),
        _money(m.expectancy),
        "—" if m.profit_factor is None else f"{m.profit_factor:.2f}",
        _money(m.total_pnl),
        f"{-m.max_drawdown:,.2f} ({m.max_drawdown_pct:.2%})",
        "—" if m.sharpe_daily_annualized is None else f"{m.sharpe_daily_annualized:.2f}",
        f"{m.exposure:.1%}",
    ]


LABELS = [
    "signals",
    "trades",
    "skipped",
    "signals / week",
    "target hit",
    "time exit",
    "session-end exit",
    "win rate (95% CI)",
    "average win $",
    "average loss $",
    "expectancy $ / trade",
    "profit factor",
    "total P&L $",
    "max drawdown $ (%)",
    "Sharpe (daily, annualized)",
    "exposure",
]


def column_name(result: BacktestResult, name: str) -> str:
    """A metrics column's heading: the profile (or total), and `model-priced` when its P&L
    comes from modelled option premiums."""
    return f"{name} ({MODEL_PRICED})" if result.is_modelled(name) else name


def premium_note(result: BacktestResult) -> str:
    """Where the option trades' premiums came from, for a report's heading ('' without)."""
    options = result.option_trades()
    if not options:
        return ""
    sources = sorted({t.option.source.value for t in options if t.option is not None})
    words = {"model": f"the pricing model ({MODEL_PRICED})", "file": "a quote file"}
    named = " and ".join(words.get(source, source) for source in sources)
    return f"{len(options)} option trades, premiums from {named}"


def summary_table(result: BacktestResult) -> Table:
    period = (
        f"{result.sessions[0].day} … {result.sessions[-1].day}, {len(result.sessions)} sessions"
        if result.sessions
        else "no sessions"
    )
    sim = result.config.simulation
    note = premium_note(result)
    table = Table(
        title=(
            f"Backtest {period} · start ${sim.starting_equity:,} · slippage {sim.slippage_bps} bp"
            + (f" · {note}" if note else "")
        ),
        title_justify="left",
    )
    table.add_column("")
    # every profile, all of them together, then (several symbols) each symbol's trades
    shown = {**result.metrics, **result.metrics_by_symbol}
    for name in shown:
        table.add_column(column_name(result, name), justify="right")
    columns = [metric_cells(m) for m in shown.values()]
    for index, label in enumerate(LABELS):
        table.add_row(label, *(column[index] for column in columns))
    return table
