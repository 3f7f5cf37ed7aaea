"""Risk limits and circuit breakers, evaluated inside the pure engine.

Living in the engine means backtests and replays apply exactly the limits live trading does,
and a breaker that would have tripped in 2024 shows up in the 2024 backtest. All inputs arrive
as events (fills, bars, account snapshots, rejections); nothing here reads a clock.

Defaults (each configurable under `[risk]`, 0 disables a limit):
- daily_loss_limit $1,000: realized + unrealized P&L of the session; trips the kill switch;
- rapid_loss $500 within rapid_loss_minutes (15): the session P&L fell that much from its best
  point of the window; trips the kill switch;
- max_errors 5 order errors within error_window_minutes (10); trips the kill switch;
- max_drawdown_pct 5 % from the account's equity peak; trips the kill switch;
- per-trade size: max_shares_per_trade, max_notional_per_trade, max_equity_pct_per_trade (10 %);
  in total over open trades: max_total_shares, max_total_notional, max_total_equity_pct (20 %);
  per symbol over its open trades (several symbols): max_symbol_shares, max_symbol_notional,
  max_symbol_equity_pct (all off by default);
- symbol_daily_loss_limit (off by default): a symbol whose session P&L (realized + unrealized)
  reached -limit takes no new entry that session; the other symbols trade on;
  an entry over a limit is reduced to fit (or refused if nothing fits), with the reason recorded;
- buying power: an entry costing more than the account's buying power is reduced or refused;
- stale_data_minutes (5), live only: no new bar, on the stream or over REST, for that long ->
  reduce-only until bars return (applied by the live shell, which owns the wall clock).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from ict_trader.core.breakers import Breaker
from ict_trader.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RiskLimits:
    daily_loss_limit: Decimal = Decimal(1000)
    rapid_loss: Decimal = Decimal(500)
    rapid_loss_minutes: int = 15
    max_errors: int = 5
    error_window_minutes: int = 10
    max_drawdown_pct: Decimal = Decimal(5)
    max_shares_per_trade: int = 0
    max_notional_per_trade: Decimal = Decimal(0)
    max_equity_pct_per_trade: Decimal = Decimal(10)
    max_total_shares: int = 0
    max_total_notional: Decimal = Decimal(0)
    max_total_equity_pct: Decimal = Decimal(20)
    max_symbol_shares: int = 0
    max_symbol_notional: Decimal = Decimal(0)
    max_symbol_equity_pct: Decimal = Decimal(0)
    symbol_daily_loss_limit: Decimal = Decimal(0)
    stale_data_minutes: int = 5  # live: no new bar this long -> no new entries until bars return

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 0:
                raise ConfigError(f"risk.{name} must not be negative")
        if self.rapid_loss_minutes < 1 or self.error_window_minutes < 1:
            raise ConfigError("risk.*_minutes must be at least 1")


def _whole(amount: Decimal) -> int:
    return int(amount.to_integral_value(rounding=ROUND_DOWN)) if amount > 0 else 0


@dataclass(frozen=True, slots=True)
class Exposure:
    """What open trades hold: units (shares or contracts) and their value at a price."""

    units: int = 0
    notional: Decimal = Decimal(0)


def fit_entry(
    wanted: int,
    price: Decimal,
    *,
    equity: Decimal,
    buying_power: Decimal | None,
    open_shares: int,
    open_notional: Decimal,
    limits: RiskLimits,
    symbol_open: Exposure = Exposure(),
    multiplier: int = 1,
) -> tuple[int, list[str]]:
    """The largest quantity ≤ `wanted` that respects every size limit, and why it was cut.

    `open_shares`/`open_notional` are every open trade's, `symbol_open` those of the entry's own
    symbol; one unit costs `price` x `multiplier` (100 for an option contract).
    """
    unit = price * multiplier
    caps: list[tuple[int, str]] = []
    if limits.max_shares_per_trade:
        caps.append((limits.max_shares_per_trade, f"max {limits.max_shares_per_trade} shares"))
    if limits.max_notional_per_trade:
        caps.append(
            (_whole(limits.max_notional_per_trade / unit), f"max ${limits.max_notional_per_trade}")
        )
    if limits.max_equity_pct_per_trade:
        budget = equity * limits.max_equity_pct_per_trade / 100
        caps.append((_whole(budget / unit), f"max {limits.max_equity_pct_per_trade}% of equity"))
    if limits.max_symbol_shares:
        caps.append(
            (
                limits.max_symbol_shares - symbol_open.units,
                f"max {limits.max_symbol_shares} shares in the symbol",
            )
        )
    if limits.max_symbol_notional:
        room = limits.max_symbol_notional - symbol_open.notional
        caps.append((_whole(room / unit), f"max ${limits.max_symbol_notional} in the symbol"))
    if limits.max_symbol_equity_pct:
        room = equity * limits.max_symbol_equity_pct / 100 - symbol_open.notional
        caps.append(
            (_whole(room / unit), f"max {limits.max_symbol_equity_pct}% of equity in the symbol")
        )
    if limits.max_total_shares:
        caps.append(
            (
                limits.max_total_shares - open_shares,
                f"max {limits.max_total_shares} shares in total",
            )
        )
    if limits.max_total_notional:
        room = limits.max_total_notional - open_notional
        caps.append((_whole(room / unit), f"max ${limits.max_total_notional} in total"))
    if limits.max_total_equity_pct:
        room = equity * limits.max_total_equity_pct / 100 - open_notional
        caps.append((_whole(room / unit), f"max {limits.max_total_equity_pct}% of equity in total"))
    if buying_power is not None:
        caps.append((_whole(buying_power / unit), f"buying power ${buying_power:.2f}"))
    qty = wanted
    reasons = []
    for cap, why in caps:
        if max(cap, 0) < qty:
            qty = max(cap, 0)
            reasons.append(why)
    return qty, reasons


class RiskMonitor:
    """Session P&L, equity peak and error history; says when a breaker trips."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.day: date | None = None
        self.realized = Decimal(0)
        self.unrealized = Decimal(0)
        self.realized_by_symbol: dict[str, Decimal] = {}
        self.equity_peak: Decimal | None = None
        self.last_equity: Decimal | None = None
        # equity_may_matter's float bounds, and the peak they were made for
        self._peak_seen: Decimal | None = None
        self._below_peak = 0.0
        self._above_limit = 0.0
        self._window: deque[tuple[datetime, Decimal]] = deque()
        self._errors: deque[datetime] = deque()
        # check() runs every bar a trade is open: its windows are made once, not per call
        self._rapid_span = timedelta(minutes=limits.rapid_loss_minutes)
        self._error_span = timedelta(minutes=limits.error_window_minutes)

    @property
    def session_pnl(self) -> Decimal:
        return self.realized + self.unrealized

    def new_session(self, day: date) -> None:
        if day != self.day:
            self.day = day
            self.realized = Decimal(0)
            self.unrealized = Decimal(0)
            self.realized_by_symbol.clear()
            self._window.clear()

    def realize(self, pnl: Decimal, symbol: str = "") -> None:
        self.realized += pnl
        self.realized_by_symbol[symbol] = self.realized_by_symbol.get(symbol, Decimal(0)) + pnl

    def mark(self, unrealized: Decimal) -> None:
        self.unrealized = unrealized

    def equity(self, equity: Decimal) -> None:
        if self.equity_peak is None or equity > self.equity_peak:
            self.equity_peak = equity
        self.last_equity = equity

    def equity_matters(self, equity: Decimal) -> bool:
        """Whether seeing `equity` could change what the monitor decides: the first equity, a
        new peak, or a drawdown at or past the limit (the same arithmetic as `check`). Below
        the peak and above the limit, an equity changes nothing: an earlier one, which passed
        the same test, leads `check` to the same answer, so a run that keeps no equity curve
        (a sweep) need not show the monitor every minute's."""
        peak = self.equity_peak
        if peak is None or equity > peak:
            return True
        limit = self.limits.max_drawdown_pct
        return bool(limit and peak and (peak - equity) / peak * 100 >= limit)

    def equity_may_matter(self, estimate: float) -> bool:
        """`equity_matters` for an equity known only as a float `estimate` (within a part in
        10^13): False only when the equity surely matters not, being below the peak and above
        the drawdown limit by more than a millionth of the peak; otherwise ask `equity_matters`
        with the exact equity."""
        peak = self.equity_peak
        if peak is None:
            return True
        if peak is not self._peak_seen:  # the float bounds of this peak, made once
            self._peak_seen = peak
            top = float(peak)
            margin = abs(top) * 1e-6
            self._below_peak = top - margin
            limit = self.limits.max_drawdown_pct
            floor = top * (1 - float(limit) / 100) if limit else -math.inf
            self._above_limit = floor + margin
        return not self._above_limit < estimate < self._below_peak

    def error(self, now: datetime) -> None:
        self._errors.append(now)

    def check(self, now: datetime) -> tuple[Breaker, str] | None:
        """(breaker, reason) of the first limit breached at `now`, else None."""
        limits = self.limits
        pnl = self.realized + self.unrealized
        if limits.daily_loss_limit and pnl <= -limits.daily_loss_limit:
            return Breaker.DAILY_LOSS, (
                f"daily loss limit: session P&L {pnl:+.2f} reached -{limits.daily_loss_limit}"
            )
        if limits.rapid_loss:
            # A monotonic queue: the best P&L of the window is always at the left end, so each
            # check is O(1) amortized (it runs every bar a trade is open).
            window = self._window
            while window and window[-1][1] <= pnl:
                window.pop()
            window.append((now, pnl))
            horizon = now - self._rapid_span
            while window[0][0] < horizon:
                window.popleft()
            best = window[0][1]
            if best - pnl >= limits.rapid_loss:
                return Breaker.RAPID_LOSS, (
                    f"rapid loss: {best - pnl:.2f} lost within {limits.rapid_loss_minutes} "
                    f"minutes (limit {limits.rapid_loss})"
                )
        if limits.max_errors and self._errors:
            horizon = now - self._error_span
            while self._errors and self._errors[0] < horizon:
                self._errors.popleft()
            if len(self._errors) >= limits.max_errors:
                return Breaker.ERROR_RATE, (
                    f"error rate: {len(self._errors)} broker/order errors within "
                    f"{limits.error_window_minutes} minutes"
                )
        last = self.last_equity
        if limits.max_drawdown_pct and self.equity_peak and last is not None:
            drawdown = (self.equity_peak - last) / self.equity_peak * 100
            if drawdown >= limits.max_drawdown_pct:
                return Breaker.DRAWDOWN, (
                    f"drawdown {drawdown:.2f}% from the equity peak {self.equity_peak:.2f} "
                    f"(limit {limits.max_drawdown_pct}%)"
                )
        return None
