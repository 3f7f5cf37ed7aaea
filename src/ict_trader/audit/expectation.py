"""Expectation: what live trading has shown so far next to what the backtest shows on SIP bars
for the same sessions, each figure with its 95 % interval (see `audit.stats`).

- signals per week: signals ÷ weeks, weeks being the calendar days from the first to the last
  audited session ÷ 7 (the backtest's definition); live: the signals the detector finds on the
  live bars the bot recorded (what it saw), backtest: those it finds on the SIP bars of the same
  minutes; exact Poisson (Garwood) interval;
- per profile, over closed trades: target-hit rate (exits at the target) and win rate (P&L > 0),
  each with its Wilson interval. The profiles trade the same signals, so they are not pooled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ict_trader.audit.stats import rate_interval, wilson_interval
from ict_trader.core.events import ExitReason, TradeView


@dataclass(frozen=True)
class Rate:
    """`hits` of `trials`, with its 95 % interval."""

    hits: int
    trials: int

    @property
    def value(self) -> float | None:
        return self.hits / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.hits, self.trials)

    def as_json(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "trials": self.trials,
            "rate": _round(self.value),
            "ci95": _pair(self.interval),
        }


@dataclass(frozen=True)
class Figures:
    """One side's figures (live or backtest) for the audited sessions."""

    signals: int
    weeks: float
    target_hit: dict[str, Rate]
    win: dict[str, Rate]

    @property
    def signals_per_week(self) -> float | None:
        return self.signals / self.weeks if self.weeks else None

    @property
    def signals_per_week_ci(self) -> tuple[float, float] | None:
        return rate_interval(self.signals, self.weeks)

    def as_json(self) -> dict[str, Any]:
        return {
            "signals": self.signals,
            "weeks": round(self.weeks, 4),
            "signals_per_week": _round(self.signals_per_week),
            "signals_per_week_ci95": _pair(self.signals_per_week_ci),
            "profiles": {
                name: {
                    "target_hit": self.target_hit[name].as_json(),
                    "win": self.win[name].as_json(),
                }
                for name in self.target_hit
            },
        }


def weeks_of(days: Sequence[date]) -> float:
    """Calendar days from the first to the last session (inclusive) ÷ 7, as the backtest's."""
    if not days:
        return 0.0
    return ((max(days) - min(days)).days + 1) / 7


def figures(
    signals: int, weeks: float, trades: Sequence[TradeView], profiles: Sequence[str]
) -> Figures:
    """The figures of `signals` and the closed `trades` among those given."""
    closed = [t for t in trades if t.status == "closed" and t.pnl is not None]
    target: dict[str, Rate] = {}
    win: dict[str, Rate] = {}
    for profile in profiles:
        mine = [t for t in closed if t.profile == profile]
        target[profile] = Rate(sum(t.exit_reason is ExitReason.TARGET for t in mine), len(mine))
        win[profile] = Rate(sum(t.pnl is not None and t.pnl > 0 for t in mine), len(mine))
    return Figures(signals=signals, weeks=weeks, target_hit=target, win=win)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pair(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]
