"""A sweep's outputs: the table (CSV and Parquet, byte for byte the same for the same inputs),
a self-contained HTML report (heatmaps, the stitched out-of-sample equity, the deflated Sharpe
ratio and the probability of backtest overfitting in plain words), and the summary lines the
command prints."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pyarrow as pa
import pyarrow.parquet as pq

from ict_trader.research.overfitting import DEFAULT_BLOCKS, Overfitting
from ict_trader.research.walkforward import Honesty, SweepOutcome, metric_value, pbo_statistic


def table(outcome: SweepOutcome) -> pd.DataFrame:
    frame = pd.DataFrame(outcome.rows)
    return frame.sort_values(["symbol", "config", "fold", "part"], kind="stable").reset_index(
        drop=True
    )


def write_table(outcome: SweepOutcome, csv: Path, parquet: Path) -> None:
    frame = table(outcome)
    csv.write_text(frame.to_csv(index=False, float_format="%.8g", lineterminator="\n"))
    arrow = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(arrow, parquet, compression="zstd")


def _heatmaps(outcome: SweepOutcome) -> list[tuple[str, go.Figure]]:
    axes = [(name, values) for name, values in outcome.grid.dimensions if len(values) > 1]
    if len(axes) < 2:
        return []
    (x_name, x_values), (y_name, y_values) = axes[0], axes[1]
    figures = []
    for symbol in sorted({s for s, _ in outcome.full}):
        cells: dict[tuple[int, int], list[float]] = {}
        for configuration in outcome.grid.configurations:
            chosen = dict(configuration.values)
            value = metric_value(outcome.full[(symbol, configuration.index)], outcome.metric)
            if value is None or math.isnan(value):
                continue
            key = (x_values.index(chosen[x_name]), y_values.index(chosen[y_name]))
            cells.setdefault(key, []).append(value)
        z = [
            [
                round(sum(cells[(i, j)]) / len(cells[(i, j)]), 6) if (i, j) in cells else None
                for i in range(len(x_values))
            ]
            for j in range(len(y_values))
        ]
        figure = go.Figure(
            go.Heatmap(
                z=z, x=[str(v) for v in x_values], y=[str(v) for v in y_values], colorscale="RdYlGn"
            )
        )
        figure.update_layout(xaxis_title=x_name, yaxis_title=y_name, height=420)
        title = f"{symbol}: {outcome.metric} over the whole period (mean over the other dimensions)"
        figures.append((title, figure))
    return figures


def _equity(outcome: SweepOutcome) -> go.Figure:
    figure = go.Figure()
    for symbol, curve in sorted(outcome.oos_equity.items()):
        figure.add_trace(
            go.Scatter(
                x=[day.isoformat() for day, _ in curve], y=[v for _, v in curve], name=symbol
            )
        )
    figure.update_layout(yaxis_title="equity (out of sample only)", height=420)
    return figure


def _honesty_text(outcome: SweepOutcome) -> str:
    parts = []
    for h in outcome.honesty:
        label = html.escape(outcome.grid.configurations[h.config].label)
        if h.probability is None or h.sharpe is None or h.threshold is None:
            parts.append(
                f"<p><b>{h.symbol}</b>: configuration {h.config} ({label}) has no Sharpe ratio "
                "to deflate (too few sessions or no variation).</p>"
            )
        else:
            annual = math.sqrt(252)
            parts.append(
                f"<p><b>{h.symbol}</b>: over the whole period, {outcome.metric} picks "
                f"configuration {h.config} ({label}); its Sharpe ratio is "
                f"{h.sharpe * annual:.2f} a year. With {h.trials} configurations tried, the best "
                f"of them would be expected to reach about {h.threshold * annual:.2f} by luck "
                "alone. The <b>deflated Sharpe ratio</b>, the probability that this "
                f"configuration's true Sharpe ratio is above that, is <b>{h.probability:.1%}</b> "
                f"(over {h.sessions} sessions, with their skew and fat tails). Below 95% the edge "
                "is not established.</p>"
            )
        parts.append(f"<p>{_overfitting_text(h, outcome.metric)}</p>")
    return "".join(parts)


def _ranked_by(metric: str) -> str:
    if pbo_statistic(metric) == "mean":
        return "mean session return (the nearest to total_pnl in session returns)"
    if metric == "sharpe_daily_annualized":
        return "Sharpe ratio of session returns (what sharpe_daily_annualized chooses by)"
    return f"Sharpe ratio of session returns ({metric} has no form in session returns)"


def _overfitting_text(h: Honesty, metric: str) -> str:
    """PBO in plain words: what was measured, what the number says, what a high one means."""
    o = h.overfitting
    if o is None:
        return (
            f"<b>{h.symbol}</b>: the probability of backtest overfitting cannot be measured: it "
            f"needs at least {DEFAULT_BLOCKS} sessions and two configurations with different "
            "results."
        )
    median = "above" if o.median_logit > 0 else "at or below"
    return (
        f"<b>{h.symbol}</b>: <b>probability of backtest overfitting {o.probability:.0%}</b> "
        f"(CSCV, Bailey, Borwein, López de Prado &amp; Zhu). The last {o.sessions} sessions were "
        f"cut into {o.blocks} blocks of {o.block_sessions}; each of the {o.splits:,} ways to "
        "take half of the blocks picks the configuration with the best "
        f"{html.escape(_ranked_by(metric))} on that half and ranks it among the "
        f"{o.distinct} configurations with different results on the other half, which it "
        f"was not picked on. In {o.overfit_splits:,} of them ({o.probability:.0%}) it was at or "
        "below the median configuration there; typically it was "
        f"{median} the median (median logit {o.median_logit:+.2f}). "
        "Near 0%: the backtest's favourite keeps beating most configurations on sessions it "
        "was not chosen on, so choosing by the backtest carries information. Around 50%: it "
        "does no better than a configuration drawn at random. Above 50%: it does worse — what "
        "made it best was luck in those sessions (overfitting), and its backtest figures "
        "overstate what to expect."
    )


def summary_lines(outcome: SweepOutcome) -> list[str]:
    """What `ict-trader sweep` prints: each fold's pick and test result, then per symbol the
    deflated Sharpe ratio and the probability of backtest overfitting, each with what it
    means, so a reader of the terminal alone is not left with bare numbers."""
    configurations = outcome.grid.configurations
    lines = [
        f"{fold.symbol} fold {fold.index}: config {fold.chosen}"
        f"{configurations[fold.chosen].priced_note} on "
        f"{fold.test[0].day}..{fold.test[-1].day}: {fold.test_metrics.trades} trades, "
        f"P&L {fold.test_metrics.total_pnl:+,.2f}"
        for fold in outcome.folds
    ]
    for h in outcome.honesty:
        if h.probability is None:
            lines.append(
                f"{h.symbol}: config {h.config}{configurations[h.config].priced_note} is best "
                f"by {outcome.metric} over the whole period; it has no Sharpe ratio to deflate "
                "(too few sessions or no variation)"
            )
        else:
            lines.append(
                f"{h.symbol}: config {h.config}{configurations[h.config].priced_note} is best "
                f"by {outcome.metric} over the whole period; deflated Sharpe ratio "
                f"{h.probability:.1%}: the probability that its "
                f"edge is real after trying {h.trials} configurations (below 95%: not "
                "established)"
            )
        lines.append(_overfitting_line(h.symbol, h.overfitting))
    return lines


def _overfitting_line(symbol: str, o: Overfitting | None) -> str:
    if o is None:
        return (
            f"{symbol}: probability of backtest overfitting not measured (needs at least "
            f"{DEFAULT_BLOCKS} sessions and two configurations with different results)"
        )
    return (
        f"{symbol}: probability of backtest overfitting {o.probability:.0%}: in {o.splits:,} "
        f"splits of {o.sessions} sessions into halves, the best configuration of one half was "
        "at or below the median on the other half this often (near 0%: the choice carries "
        "information; 50% or more: the winner is luck)"
    )


def render(outcome: SweepOutcome) -> str:
    figures = [("Stitched out-of-sample equity", _equity(outcome)), *_heatmaps(outcome)]
    blocks = []
    for index, (title, figure) in enumerate(figures):
        blocks.append(f"<h2>{html.escape(title)}</h2>")
        blocks.append(
            pio.to_html(
                figure,
                include_plotlyjs=index == 0,
                full_html=False,
                div_id=f"figure-{index}",  # fixed ids: the same inputs give the same file
                config={"displaylogo": False},
            )
        )
    rows = "".join(
        f"<tr><td>{f.symbol}</td><td>{f.index}</td><td>{f.train[0].day} … {f.train[-1].day}</td>"
        f"<td>{f.test[0].day} … {f.test[-1].day}</td>"
        f"<td>{f.chosen}{outcome.grid.configurations[f.chosen].priced_note}</td>"
        f"<td>{html.escape(outcome.grid.configurations[f.chosen].label)}</td>"
        f"<td>{'' if f.train_value is None else f'{f.train_value:.4g}'}</td>"
        f"<td>{f.test_metrics.trades}</td><td>{f.test_metrics.total_pnl:+,.2f}</td></tr>"
        for f in outcome.folds
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ict-trader sweep</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style>
</head><body>
<h1>ict-trader sweep</h1>
<p>{len(outcome.grid.configurations)} configurations. Walk-forward: each fold chooses the
configuration with the best <b>{outcome.metric}</b> over {outcome.train} training sessions and
reports only the {outcome.test} sessions after them, which it never saw.</p>
{_priced_paragraph(outcome)}
<h2>How much to trust the best configuration</h2>
{_honesty_text(outcome)}
<h2>Walk-forward folds</h2>
<table><tr><th>symbol</th><th>fold</th><th>train</th><th>test</th><th>config</th>
<th>settings</th><th>train {outcome.metric}</th><th>test trades</th><th>test P&amp;L</th></tr>
{rows}</table>
{"".join(blocks)}
</body></html>
"""


def _priced_paragraph(outcome: SweepOutcome) -> str:
    """Which configurations trade options, and where their premiums came from."""
    modelled = [c.index for c in outcome.grid.configurations if c.premiums == "model"]
    filed = [c.index for c in outcome.grid.configurations if c.premiums == "file"]
    parts = []
    if modelled:
        parts.append(
            f"Configurations {', '.join(map(str, modelled))} trade 0DTE options whose premiums "
            "come from the pricing model: <b>their figures are model-priced</b>, not real fills."
        )
    if filed:
        parts.append(
            f"Configurations {', '.join(map(str, filed))} trade options priced from a quote file."
        )
    return f"<p>{' '.join(parts)}</p>" if parts else ""


def write_html(outcome: SweepOutcome, path: Path) -> None:
    path.write_text(render(outcome), encoding="utf-8")
