"""The backtest report as one self-contained HTML file (plotly.js embedded once, no CDN).

It opens offline, years later, on any machine: metrics per profile, the equity curve with its
drawdown, the distribution of trade P&L, every trade on the 1-minute candles of its session
(one session at a time, picked from a menu), and the trade list with order ids.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK
from ict_trader.core.events import TradeView
from ict_trader.notify.option_words import (
    MODEL_PRICED,
    contract_name,
    greeks_text,
    modelled,
    premium_dollars,
)
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.reporting.backtest_summary import LABELS, column_name, metric_cells, premium_note
from ict_trader.reporting.market_axis import MarketAxis

_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pos{color:#11772d}.neg{color:#b3261e}.muted{color:#666;font-size:13px}
.modelled{color:#8a5a00;font-size:11px;font-weight:600;margin-left:4px}
"""
_MODELLED = f'<span class="modelled">{MODEL_PRICED}</span>'


def _ny(moment: datetime) -> str:
    return moment.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M")


def _closed_equity(
    result: BacktestResult, profile: str | None
) -> tuple[list[datetime], list[float]]:
    """Starting equity plus realized P&L at each exit (one profile, or all when None)."""
    start = result.config.simulation.starting_equity
    trades = [t for t in result.closed_trades() if profile is None or t.profile == profile]
    trades.sort(key=lambda t: t.exit_time or datetime.min)
    times = [result.sessions[0].open] if result.sessions else []
    values = [float(start)] if result.sessions else []
    equity = start
    for trade in trades:
        assert trade.exit_time is not None and trade.pnl is not None
        equity += trade.pnl
        times.append(trade.exit_time)
        values.append(float(equity))
    if result.sessions:  # the curve runs to the end of the data, not to the last exit
        times.append(result.sessions[-1].close)
        values.append(float(equity))
    return times, values


def _on_axis(axis: MarketAxis, times: list[datetime]) -> dict[str, Any]:
    """A trace's x in market minutes, with the New York time shown on hover."""
    return {
        "x": [round(axis.position(t), 2) for t in times],
        "customdata": [_ny(t) for t in times],
        "hovertemplate": "%{customdata}<br>%{y:,.2f}",
    }


def _equity_figure(result: BacktestResult) -> go.Figure:
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.7, 0.3],
        vertical_spacing=0.05,
        subplot_titles=("Equity", "Drawdown from peak (closed-trade equity, all profiles)"),
    )
    axis = MarketAxis(result.sessions)
    profiles = [p.name for p in result.config.engine.profiles if p.enabled]
    for index, profile in enumerate(profiles):
        times, values = _closed_equity(result, profile)
        # Each profile's curve alone: start + its own realized P&L.
        figure.add_trace(
            go.Scatter(
                **_on_axis(axis, times),
                y=values,
                name=f"{column_name(result, profile)} (closed trades)",
                mode="lines",
                line={"shape": "hv", "color": _COLOURS[index % len(_COLOURS)]},
            ),
            row=1,
            col=1,
        )
    if result.equity_curve:
        figure.add_trace(
            go.Scatter(
                **_on_axis(axis, [t for t, _ in result.equity_curve]),
                y=[round(float(v), 2) for _, v in result.equity_curve],
                name="account (marked to market)",
                mode="lines",
                line={"shape": "hv", "color": "#999", "width": 1},
            ),
            row=1,
            col=1,
        )
    times, values = _closed_equity(result, None)
    peak = float("-inf")
    drawdown = []
    for value in values:
        peak = max(peak, value)
        drawdown.append(round(value - peak, 2))
    figure.add_trace(
        go.Scatter(
            **_on_axis(axis, times),
            y=drawdown,
            name="drawdown $",
            fill="tozeroy",
            line={"color": "#b3261e", "shape": "hv"},
        ),
        row=2,
        col=1,
    )
    figure.update_layout(height=600, margin={"t": 40, "l": 60, "r": 20, "b": 40})
    # Market time only: nights, weekends, holidays and gaps in the data take no room.
    tick_values, tick_labels = axis.ticks()
    figure.update_xaxes(
        type="linear",
        range=[0, axis.length],
        tickmode="array",
        tickvals=tick_values,
        ticktext=tick_labels,
    )
    figure.update_xaxes(title_text="market time (regular hours only)", row=2, col=1)
    figure.update_yaxes(tickformat=",.0f", row=1, col=1)  # dollars, not "100.05k"
    for gap in axis.gaps():  # where the data skips trading days
        figure.add_vline(x=gap, line={"dash": "dot", "color": "#888", "width": 1})
    return figure


def _pnl_figure(result: BacktestResult) -> go.Figure:
    figure = go.Figure()
    by_profile: dict[str, list[float]] = defaultdict(list)
    for trade in result.closed_trades():
        if trade.pnl is not None:
            by_profile[trade.profile].append(round(float(trade.pnl), 2))
    for index, (profile, pnls) in enumerate(sorted(by_profile.items())):
        figure.add_trace(
            go.Histogram(
                x=pnls,
                name=column_name(result, profile),
                opacity=0.6,
                nbinsx=40,
                marker={"color": _COLOURS[index % len(_COLOURS)]},
            )
        )
    figure.update_layout(
        barmode="overlay",
        height=350,
        xaxis_title="P&L per trade ($)",
        yaxis_title="trades",
        margin={"t": 20, "l": 60, "r": 20, "b": 50},
    )
    return figure


def _session_traces(bars: list[Bar], trades: list[TradeView]) -> list[go.BaseTraceType]:
    x = [_ny(bar.time)[11:] for bar in bars]
    traces: list[go.BaseTraceType] = [
        go.Candlestick(
            x=x,
            open=[b.open for b in bars],
            high=[b.high for b in bars],
            low=[b.low for b in bars],
            close=[b.close for b in bars],
            name="QQQ 1 min",
            showlegend=False,
        )
    ]
    entries_x, entries_y, entries_text = [], [], []
    exits_x, exits_y, exits_text = [], [], []
    target_x: list[str | None] = []
    target_y: list[float | None] = []
    closes = {bar.time: bar.close for bar in bars}
    for trade in trades:
        if trade.entry_time is None or trade.entry_price is None:
            continue
        marks = _marks(trade, closes)
        entries_x.append(_ny(trade.entry_time)[11:])
        entries_y.append(marks.entry)
        entries_text.append(
            f"{trade.profile} {trade.direction} {_bought(trade)} @ {trade.entry_price}"
            f"{marks.note}<br>{trade.entry_order_id}"
        )
        if trade.exit_time is not None and trade.exit_price is not None and marks.exit:
            exits_x.append(_ny(trade.exit_time)[11:])
            exits_y.append(marks.exit)
            reason = trade.exit_reason.value if trade.exit_reason else "exit"
            exits_text.append(
                f"{trade.profile} {reason} exit @ {trade.exit_price}{marks.note}"
                f"<br>P&L {trade.pnl}{marks.note}"
            )
        if marks.target is not None and trade.exit_time is not None:
            target_x += [_ny(trade.entry_time)[11:], _ny(trade.exit_time)[11:], None]
            target_y += [marks.target, marks.target, None]
    traces.append(
        go.Scatter(
            x=entries_x,
            y=entries_y,
            mode="markers",
            name="entry",
            text=entries_text,
            hoverinfo="text",
            marker={"symbol": "triangle-right", "size": 12, "color": "#1f77b4"},
        )
    )
    traces.append(
        go.Scatter(
            x=exits_x,
            y=exits_y,
            mode="markers",
            name="exit",
            text=exits_text,
            hoverinfo="text",
            marker={"symbol": "x", "size": 11, "color": "#222"},
        )
    )
    traces.append(
        go.Scatter(
            x=target_x,
            y=target_y,
            mode="lines",
            name="target",
            line={"dash": "dot", "color": "#11772d"},
            hoverinfo="skip",
        )
    )
    return traces


@dataclass(frozen=True)
class _Marks:
    """Where a trade is drawn on its underlying's candles. A share trade at its fills and
    target; an option trade (its prices are premiums) at the underlying's price when it was
    entered, the close of the bar its exit followed, and the underlying's target."""

    entry: float
    exit: float | None
    target: float | None
    note: str  # an option trade's contract and model label, for the hover text


def _marks(trade: TradeView, closes: dict[datetime, float]) -> _Marks:
    option = trade.option
    if option is None:
        return _Marks(
            float(trade.entry_price or 0),
            None if trade.exit_price is None else float(trade.exit_price),
            None if trade.target_price is None else float(trade.target_price),
            "",
        )
    exit_close = None
    if trade.exit_time is not None:
        done = [t for t in closes if t + timedelta(minutes=1) <= trade.exit_time]
        exit_close = closes[max(done)] if done else None
    label = f" ({MODEL_PRICED})" if modelled(trade) else ""
    return _Marks(
        float(option.underlying_entry),
        exit_close,
        None if option.underlying_target is None else float(option.underlying_target),
        f" premium{label}<br>{contract_name(trade.symbol)}",
    )


def _bought(trade: TradeView) -> str:
    return f"{trade.qty} contracts" if trade.option is not None else str(trade.qty)


def _trades_figure(result: BacktestResult) -> go.Figure | None:
    trades_by_day: dict[date, list[TradeView]] = defaultdict(list)
    for trade in result.closed_trades():
        if trade.entry_time is not None:
            trades_by_day[trade.entry_time.astimezone(NEW_YORK).date()].append(trade)
    if not trades_by_day:
        return None
    bars_by_day: dict[date, list[Bar]] = defaultdict(list)
    for bar in result.bars:
        day = bar.time.date()  # regular-hours bars: UTC date == New York date
        if day in trades_by_day:
            bars_by_day[day].append(bar)
    figure = go.Figure()
    spans: list[tuple[date, int, int]] = []
    for day in sorted(trades_by_day):
        first = len(figure.data)
        for trace in _session_traces(bars_by_day[day], trades_by_day[day]):
            trace.visible = not spans
            figure.add_trace(trace)
        spans.append((day, first, len(figure.data)))
    total = len(figure.data)
    buttons = []
    for day, first, last in spans:
        pnl = sum((t.pnl or Decimal(0)) for t in trades_by_day[day])
        visible = [first <= index < last for index in range(total)]
        buttons.append(
            {
                "label": f"{day:%a %Y-%m-%d}  ({len(trades_by_day[day])} trades, {pnl:+.2f})",
                "method": "update",
                "args": [{"visible": visible}, {"title.text": f"{day:%A %Y-%m-%d}, New York time"}],
            }
        )
    figure.update_layout(
        updatemenus=[{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.15, "yanchor": "top"}],
        title={"text": f"{spans[0][0]:%A %Y-%m-%d}, New York time", "x": 0.98, "xanchor": "right"},
        height=560,
        xaxis={"rangeslider": {"visible": False}, "type": "category", "nticks": 14},
        margin={"t": 90, "l": 60, "r": 20, "b": 40},
    )
    return figure


def _metrics_table(result: BacktestResult) -> str:
    names = [column_name(result, name) for name in result.metrics]
    cells = [metric_cells(m) for m in result.metrics.values()]
    head = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    rows = []
    for index, label in enumerate(LABELS):
        values = "".join(f'<td class="num">{html.escape(column[index])}</td>' for column in cells)
        rows.append(f"<tr><th>{html.escape(label)}</th>{values}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _trade_table(result: BacktestResult) -> str:
    """Every closed trade with its order id; with option trades, also each one's contract,
    contracts, premiums paid and received (x 100), greeks at entry and premium source, and
    `model-priced` on every figure a modelled premium gave."""
    options = bool(result.option_trades())
    header = (
        "<tr><th>trade</th><th>profile</th><th>side</th><th>shares</th><th>entry (NY)</th>"
        "<th>entry $</th><th>target $</th><th>exit (NY)</th><th>exit $</th><th>reason</th>"
        "<th>P&amp;L $</th><th>entry order id</th>"
        + (
            "<th>contract</th><th>contracts</th><th>premium paid $</th>"
            "<th>premium received $</th><th>delta, IV at entry</th><th>premium source</th>"
            if options
            else ""
        )
        + "</tr>"
    )
    rows = []
    for t in result.closed_trades():
        pnl = t.pnl or Decimal(0)
        css = "pos" if pnl > 0 else "neg"
        label = _MODELLED if modelled(t) else ""
        cells = [
            html.escape(t.trade_id),
            html.escape(t.profile),
            html.escape(t.direction),
            "" if t.option is not None else str(t.qty),
            _ny(t.entry_time) if t.entry_time else "",
            f"{t.entry_price}{label}",
            str(t.target_price),
            _ny(t.exit_time) if t.exit_time else "",
            f"{t.exit_price}{label}",
            html.escape(t.exit_reason.value if t.exit_reason else ""),
            f'<span class="{css}">{pnl:+.2f}</span>{label}',
            html.escape(t.entry_order_id),
        ]
        if options:
            cells += _option_cells(t, label)
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return f"<table>{header}{''.join(rows)}</table>"


def _option_cells(trade: TradeView, label: str) -> list[str]:
    option = trade.option
    if option is None:
        return [""] * 6
    paid = premium_dollars(trade.entry_price or Decimal(0), trade.qty, trade.symbol)
    received = premium_dollars(trade.exit_price or Decimal(0), trade.qty, trade.symbol)
    return [
        f"{html.escape(contract_name(trade.symbol))} ({html.escape(trade.symbol)})",
        str(trade.qty),
        f"{paid:,.2f}{label}",
        f"{received:,.2f}{label}",
        html.escape(greeks_text(option)),
        html.escape(option.source.value),
    ]


def _settings_line(config: dict[str, Any]) -> str:
    symbols = config["symbols"]
    parts = [f"symbol{'s' if len(symbols) > 1 else ''} {', '.join(symbols)}"]
    for section in ("signal", "exits", "simulation"):
        values = ", ".join(f"{key}={value}" for key, value in config[section].items())
        parts.append(f"{section}: {values}")
    profiles = ", ".join(
        f"{p['name']} {p['allocation']}" + ("" if p["enabled"] else " (disabled)")
        for p in config["profiles"]
    )
    parts.append(f"profiles: {profiles}")
    return " · ".join(parts)


def render_html_report(result: BacktestResult) -> str:
    sessions = result.sessions
    period = f"{sessions[0].day} … {sessions[-1].day}" if sessions else "no sessions"
    sim = result.config.simulation
    config = result.config.describe()
    figures = [
        ("Equity and drawdown", _equity_figure(result)),
        ("P&L per trade", _pnl_figure(result)),
    ]
    trades_figure = _trades_figure(result)
    if trades_figure is not None:
        figures.append(("Trades on the 1-minute candles (pick a session)", trades_figure))
    parts = []
    for index, (title, figure) in enumerate(figures):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(
            pio.to_html(
                figure,
                include_plotlyjs=index == 0,  # the library once, inline: the file works offline
                full_html=False,
                config={"displaylogo": False},
            )
        )
    total = result.metrics["all"].total_pnl if "all" in result.metrics else Decimal(0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ict-trader backtest {html.escape(period)}</title>
<style>{_STYLE}</style></head><body>
<h1>ict-trader backtest · {html.escape(period)}</h1>
<p class="muted">{len(sessions)} sessions · {len(result.bars):,} bars · starting equity
${sim.starting_equity:,} · slippage {sim.slippage_bps} bp · commission {sim.commission_per_share}
per share · total P&amp;L <b id="total-pnl">{total:+,.2f}</b></p>
<p class="muted">settings: {html.escape(_settings_line(config))}</p>
{_premium_paragraph(result)}
<h2>Figures per profile</h2>
{_metrics_table(result)}
{"".join(parts)}
<h2>Trades</h2>
{_trade_table(result)}
</body></html>
"""


def _premium_paragraph(result: BacktestResult) -> str:
    """Where option premiums came from; a modelled run says its figures are model-priced."""
    note = premium_note(result)
    if not note:
        return ""
    warning = (
        f" Figures marked {MODEL_PRICED} come from modelled premiums, not a market."
        if result.modelled_profiles()
        else ""
    )
    return f'<p class="muted" id="premiums">{html.escape(note)}.{warning}</p>'


def write_html_report(result: BacktestResult, path: Path) -> None:
    path.write_text(render_html_report(result), encoding="utf-8")
