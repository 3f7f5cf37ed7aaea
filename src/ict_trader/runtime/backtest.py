"""Backtests: historical bars through the same engine, simulated broker and store as live.

`run_backtest` is the library entry point (the CLI, the benchmark and the cross-check test all
use it); it returns everything a report needs: trades, signals, skips, the equity curve and the
metrics per profile and overall.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ict_trader.adapters.simulated import SimulatedBroker
from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK, NyseCalendar, Session
from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    AccountUpdated,
    EntrySkipped,
    SignalDetected,
    TradeUpdated,
    TradeView,
)
from ict_trader.persistence.store import Store
from ict_trader.reporting.metrics import Metrics, compute_metrics
from ict_trader.runtime.kernel import Seen
from ict_trader.runtime.simulation import SimulationShell
from ict_trader.signals import IctDetector

OVERALL = "all"


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
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def select_bars(bars: Sequence[Bar], start: date | None, end: date | None) -> list[Bar]:
    """Bars whose New York session date lies in [start, end] (both optional, inclusive)."""
    if start is None and end is None:
        return list(bars)
    return [
        bar
        for bar in bars
        if (start is None or bar.time.astimezone(NEW_YORK).date() >= start)
        and (end is None or bar.time.astimezone(NEW_YORK).date() <= end)
    ]


def run_backtest(
    bars: Sequence[Bar],
    calendar: NyseCalendar,
    config: AppConfig,
    *,
    store: Store | None = None,
    on_bar: Callable[[Bar], None] | None = None,
    detector: IctDetector | Mapping[str, IctDetector] | None = None,
) -> BacktestResult:
    """Trade `bars` — of every symbol in `config.engine.symbols`, in (time, symbol) order, each
    naming its symbol; or of the one symbol, with or without its name.

    `detector`: a fresh one to use instead of `IctDetector(calendar, config.signal)` (one per
    symbol with several), e.g. a `SignalReplay` of signals detected earlier with
    `config.signal`."""
    sessions = _sessions_of(bars, calendar)
    result = BacktestResult(config=config, bars=bars, sessions=sessions)
    symbols = config.engine.symbols
    if detector is not None:
        engine = Engine(config.engine, detector)
    else:
        engine = Engine(
            config.engine, {symbol: IctDetector(calendar, config.signal) for symbol in symbols}
        )
    broker = SimulatedBroker(config.simulation)

    def observe(item: Seen) -> None:
        if isinstance(item, TradeUpdated):
            result.trades[item.trade.trade_id] = item.trade
        elif isinstance(item, SignalDetected):
            result.signals.append(item)
        elif isinstance(item, EntrySkipped):
            result.skips.append(item)
        elif isinstance(item, AccountUpdated):
            result.equity_curve.append((item.time, item.equity))

    shell = SimulationShell(engine, broker, store=store, observer=observe)
    if store is not None:
        store.start_run("backtest", None, config.describe())
    shell.run(bars, on_bar=on_bar)
    result.metrics = _all_metrics(result)
    return result


def _sessions_of(bars: Sequence[Bar], calendar: NyseCalendar) -> list[Session]:
    # Regular-hours bars have the same date in UTC and New York, and .date() is cheap.
    days = sorted({bar.time.date() for bar in bars})
    return [s for s in (calendar.session_on(day) for day in days) if s is not None]


def _all_metrics(result: BacktestResult) -> dict[str, Metrics]:
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
    if len(result.config.engine.symbols) > 1:
        signal_symbols = {s.signal_id: s.signal.symbol for s in result.signals}
        for symbol in result.config.engine.symbols:
            result.metrics_by_symbol[symbol] = compute_metrics(
                [t for t in trades if t.symbol == symbol],
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

    return {
        "trade_id": trade.trade_id,
        "signal_id": trade.signal_id,
        "profile": trade.profile,
        "symbol": trade.symbol,
        "direction": trade.direction,
        "shares": trade.qty,
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
