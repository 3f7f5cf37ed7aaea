"""Performance figures of a set of trades, computed only from fills (never hypothetical prices).

Definitions (the README repeats them for users):
- win: a closed trade with P&L > 0; win rate comes with a 95% Wilson score interval, because
  with ~80 trades a year a bare percentage says little;
- expectancy: mean P&L per closed trade; profit factor: gross profit / gross loss;
- drawdown: largest drop of closed-trade equity (starting equity + realized P&L) from its peak;
- signals per week: signals / (sessions / 5), the trading weeks the data covers;
- daily Sharpe: mean / standard deviation of daily returns over every session in the data
  (days without trades count as 0), times sqrt(252);
- exposure: share of the data's regular-hours minutes with a position open.

Every per-period figure counts the sessions the data holds, never the calendar between its first
and last day: a file of a few months from different years covers those months, not the years
in between (their calendar span made 1.4 signals a week look like 0.34).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ict_trader.calendar import NEW_YORK, Session
from ict_trader.events import ExitReason, TradeView

Z_95 = 1.959963984540054
TRADING_DAYS_PER_YEAR = 252
SESSIONS_PER_WEEK = 5


@dataclass(frozen=True)
class Metrics:
    signals: int
    trades: int
    skipped: int
    signals_per_week: float
    target_hit_rate: float | None
    time_exit_rate: float | None
    session_end_rate: float | None
    stop_rate: float | None
    wins: int
    losses: int
    win_rate: float | None
    win_rate_ci95: tuple[float, float] | None
    average_win: Decimal | None
    average_loss: Decimal | None
    expectancy: Decimal | None
    profit_factor: float | None
    total_pnl: Decimal
    max_drawdown: Decimal
    max_drawdown_pct: float
    sharpe_daily_annualized: float | None
    exposure: float

    def as_dict(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in asdict(self).items()}


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None without trials."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def compute_metrics(
    trades: Sequence[TradeView],
    *,
    signals: int,
    skipped: int,
    sessions: Sequence[Session],
    starting_equity: Decimal,
) -> Metrics:
    closed = sorted(
        (t for t in trades if t.status == "closed" and t.pnl is not None),
        key=lambda t: (t.exit_time or datetime.min, t.trade_id),
    )
    pnls = [t.pnl for t in closed if t.pnl is not None]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p <= 0]
    count = len(closed)
    gross_win = sum(wins, Decimal(0))
    gross_loss = -sum(losses, Decimal(0))
    weeks = _weeks(sessions)
    drawdown, drawdown_pct = _max_drawdown(pnls, starting_equity)
    return Metrics(
        signals=signals,
        trades=count,
        skipped=skipped,
        signals_per_week=signals / weeks if weeks else 0.0,
        target_hit_rate=_rate(closed, ExitReason.TARGET),
        time_exit_rate=_rate(closed, ExitReason.TIME),
        session_end_rate=_rate(closed, ExitReason.SESSION_END),
        stop_rate=_rate(closed, ExitReason.STOP),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / count if count else None,
        win_rate_ci95=wilson_interval(len(wins), count),
        average_win=_mean(wins),
        average_loss=_mean(losses),
        expectancy=_mean(pnls),
        profit_factor=float(gross_win / gross_loss) if gross_loss > 0 else None,
        total_pnl=sum(pnls, Decimal(0)),
        max_drawdown=drawdown,
        max_drawdown_pct=drawdown_pct,
        sharpe_daily_annualized=_sharpe(closed, sessions, starting_equity),
        exposure=_exposure(closed, sessions),
    )


def _rate(trades: Sequence[TradeView], reason: ExitReason) -> float | None:
    if not trades:
        return None
    return sum(t.exit_reason == reason for t in trades) / len(trades)


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(Decimal("0.01"))


def _weeks(sessions: Sequence[Session]) -> float:
    """Trading weeks of data: sessions / 5. Not "weeks with a session", which would count a
    lone session (or a holiday week) as a whole week and understate the rate."""
    return len(sessions) / SESSIONS_PER_WEEK


def _max_drawdown(pnls: Iterable[Decimal], starting_equity: Decimal) -> tuple[Decimal, float]:
    equity = peak = starting_equity
    worst = Decimal(0)
    worst_pct = 0.0
    for pnl in pnls:
        equity += pnl
        peak = max(peak, equity)
        drop = peak - equity
        if drop > worst:
            worst = drop
            worst_pct = float(drop / peak) if peak > 0 else 0.0
    return worst, worst_pct


def _session_day(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def _sharpe(
    trades: Sequence[TradeView], sessions: Sequence[Session], starting_equity: Decimal
) -> float | None:
    """One return per session in the data, annualized with 252 sessions a year: the weeks or
    years between the sessions of a non-contiguous file are not days of zero return."""
    if len(sessions) < 2:
        return None
    daily: dict[date, Decimal] = {s.day: Decimal(0) for s in sessions}
    for trade in trades:
        if trade.exit_time is not None and trade.pnl is not None:
            day = _session_day(trade.exit_time)
            daily[day] = daily.get(day, Decimal(0)) + trade.pnl
    equity = starting_equity
    returns: list[float] = []
    for day in sorted(daily):
        returns.append(float(daily[day] / equity) if equity > 0 else 0.0)
        equity += daily[day]
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if variance == 0:
        return None
    return mean / math.sqrt(variance) * math.sqrt(TRADING_DAYS_PER_YEAR)


def _exposure(trades: Sequence[TradeView], sessions: Sequence[Session]) -> float:
    """Position time over the regular-hours time of the sessions in the data (nights and the
    gaps between sessions count in neither)."""
    total = sum((s.close - s.open).total_seconds() for s in sessions)
    if total <= 0:
        return 0.0
    intervals = sorted((t.entry_time, t.exit_time) for t in trades if t.entry_time and t.exit_time)
    covered = 0.0
    current_start: datetime | None = None
    current_end: datetime | None = None
    for start, end in intervals:
        if current_end is None or start > current_end:
            if current_start is not None and current_end is not None:
                covered += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        elif end > current_end:
            current_end = end
    if current_start is not None and current_end is not None:
        covered += (current_end - current_start).total_seconds()
    return covered / total


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
