"""What a backtest found: its trades, signals, skips, equity curve and metrics, and its JSON.

A report of the run, so it lives with the reports (`report_html.py`, `backtest_summary.py`);
`runtime/backtest.py` produces it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import Session
from ict_trader.core.events import EntrySkipped, SignalDetected, TradeView
from ict_trader.core.instruments import instrument_of
from ict_trader.notify.option_words import MODEL_PRICED, modelled
from ict_trader.reporting.metrics import Metrics, compute_metrics
from ict_trader.reporting.option_fields import option_fields

OVERALL = "all"
# With share and option profiles side by side: the figures of each kind's trades together.
ALL_SHARES = "all shares"
ALL_OPTIONS = "all options"


@dataclass
class BacktestResult:
    config: AppConfig
    bars: Sequence[Bar]
    sessions: list[Session]
    signals: list[SignalDetected] = field(default_factory=list)
    skips: list[EntrySkipped] = field(default_factory=list)
    trades: dict[str, TradeView] = field(default_factory=dict)
    equity_curve: list[tuple[datetime, Decimal]] = field(default_factory=list)
    metrics: dict[str, Metrics] = field(default_factory=dict)
    # with several symbols: each symbol's trades and signals on their own (every profile)
    metrics_by_symbol: dict[str, Metrics] = field(default_factory=dict)

    def closed_trades(self) -> list[TradeView]:
        return sorted(
            (t for t in self.trades.values() if t.status == "closed"),
            key=lambda t: (t.entry_time or datetime.min, t.profile),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config.describe(),
            "period": {
                "first_session": self.sessions[0].day.isoformat() if self.sessions else None,
                "last_session": self.sessions[-1].day.isoformat() if self.sessions else None,
                "sessions": len(self.sessions),
                "bars": len(self.bars),
            },
            "metrics": {name: m.as_dict() for name, m in self.metrics.items()},
            **(
                {"metrics_by_symbol": {s: m.as_dict() for s, m in self.metrics_by_symbol.items()}}
                if self.metrics_by_symbol
                else {}
            ),
            "trades": [_trade_json(t) for t in self.closed_trades()],
            "skipped": [
                {"signal_id": s.signal_id, "profile": s.profile, "reason": s.reason}
                for s in self.skips
            ],
            **({"options": self.options_json()} if self.option_trades() else {}),
        }

    def option_trades(self) -> list[TradeView]:
        return [t for t in self.closed_trades() if t.option is not None]

    def modelled_profiles(self) -> set[str]:
        """The profiles with a closed trade whose premiums came from the pricing model."""
        return {t.profile for t in self.closed_trades() if modelled(t)}

    def options_json(self) -> dict[str, Any]:
        """Where the option trades' premiums came from, and so which figures are modelled:
        `model_priced` lists the metrics (profiles, and the totals holding them) whose P&L
        comes from modelled premiums. A share-only run has no such section."""
        sources: dict[str, int] = {}
        for trade in self.option_trades():
            assert trade.option is not None
            sources[trade.option.source.value] = sources.get(trade.option.source.value, 0) + 1
        return {
            "trades": len(self.option_trades()),
            "premium_sources": dict(sorted(sources.items())),
            "label": MODEL_PRICED if self.modelled_profiles() else None,
            "model_priced": [name for name in self.metrics if self.is_modelled(name)],
        }

    def is_modelled(self, metrics_name: str) -> bool:
        """Whether the named metrics (a profile, `all`, `all options`) hold modelled P&L."""
        modelled_profiles = self.modelled_profiles()
        if metrics_name in (OVERALL, ALL_OPTIONS) or metrics_name in self.metrics_by_symbol:
            return bool(modelled_profiles)
        return metrics_name in modelled_profiles

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def all_metrics(result: BacktestResult) -> dict[str, Metrics]:
    starting = result.config.simulation.starting_equity
    trades = list(result.trades.values())
    metrics = {}
    for profile in result.config.engine.profiles:
        if not profile.enabled:
            continue
        metrics[profile.name] = compute_metrics(
            [t for t in trades if t.profile == profile.name],
            signals=len(result.signals),
            skipped=sum(s.profile == profile.name for s in result.skips),
            sessions=result.sessions,
            starting_equity=starting,
        )
    metrics[OVERALL] = compute_metrics(
        trades,
        signals=len(result.signals),
        skipped=len(result.skips),
        sessions=result.sessions,
        starting_equity=starting,
    )
    enabled = [p for p in result.config.engine.profiles if p.enabled]
    kinds = {p.name: p.trades_options for p in enabled}
    if len(set(kinds.values())) > 1:  # shares and options side by side: each kind's totals
        for name, options in ((ALL_SHARES, False), (ALL_OPTIONS, True)):
            mine = {p for p, kind in kinds.items() if kind is options}
            metrics[name] = compute_metrics(
                [t for t in trades if t.profile in mine],
                signals=len(result.signals),
                skipped=sum(s.profile in mine for s in result.skips),
                sessions=result.sessions,
                starting_equity=starting,
            )
    if len(result.config.engine.symbols) > 1:
        signal_symbols = {s.signal_id: s.signal.symbol for s in result.signals}
        for symbol in result.config.engine.symbols:
            result.metrics_by_symbol[symbol] = compute_metrics(
                [t for t in trades if instrument_of(t.symbol).root == symbol],  # options too
                signals=sum(s.signal.symbol == symbol for s in result.signals),
                skipped=sum(signal_symbols.get(s.signal_id) == symbol for s in result.skips),
                sessions=result.sessions,
                starting_equity=starting,
            )
    return metrics


def _trade_json(trade: TradeView) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None

    def num(value: Decimal | None) -> float | None:
        return float(value) if value is not None else None

    option = option_fields(trade, number=float)
    return {
        "trade_id": trade.trade_id,
        "signal_id": trade.signal_id,
        "profile": trade.profile,
        "symbol": trade.symbol,
        "direction": trade.direction,
        "shares": None if option else trade.qty,
        # an option trade: contracts, and the contract, its premiums and greeks (`option`)
        **({"contracts": trade.qty, "option": option} if option else {}),
        "entry_time": iso(trade.entry_time),
        "entry_price": num(trade.entry_price),
        "exit_time": iso(trade.exit_time),
        "exit_price": num(trade.exit_price),
        "exit_reason": trade.exit_reason.value if trade.exit_reason else None,
        "target_price": num(trade.target_price),
        "stop_price": num(trade.stop_price),
        "pnl": num(trade.pnl),
        "commission": num(trade.commission),
        "entry_order_id": trade.entry_order_id,
    }
