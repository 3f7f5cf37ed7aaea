"""Our trading rules expressed as a backtesting.py strategy: the trusted peer for cross-checks.

The peer receives our detector's signals (the shared input; the cross-check is about orders,
fills, exits and P&L, not about signal detection) and trades them with backtesting.py's own
broker: entry by market order at the next bar's open, a take-profit order at entry +- 5 x ATR
(rounded to the cent away from the entry, as our engine does), a close 60 minutes after the
entry fill or 5 minutes before the session close. Both profiles trade the same signals on one
account, so they are two concurrent backtesting.py trades tagged with the profile name.

Modelling notes that make the two comparable:
- the target is set from the entry fill, which is the next bar's open; backtesting.py needs the
  take-profit when the order is placed, so the peer reads that open from the data (only for
  this; slippage must be 0 for the target to equal fill ± 5 ATR);
- when our engine decides a time or session-end exit it cancels the resting target and then
  sends a market order; the peer does the same (`trade.tp = None`, then `trade.close()`),
  because otherwise backtesting.py lets the target fill inside the very bar whose open the
  market exit already took.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any, ClassVar

import pandas as pd
from backtesting import Backtest, Strategy

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar
from ict_trader.signals import Direction, Signal

CENT = Decimal("0.01")
MINUTE = timedelta(minutes=1)
PROFILES: tuple[tuple[str, Decimal], ...] = (
    ("conservative", Decimal("0.03")),
    ("aggressive", Decimal("0.04")),
)


@dataclass(frozen=True)
class PeerTrade:
    profile: str
    direction: str
    shares: int
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    exit_reason: str
    pnl: Decimal


def frame_of(bars: Sequence[Bar]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Open": [b.open for b in bars],
            "High": [b.high for b in bars],
            "Low": [b.low for b in bars],
            "Close": [b.close for b in bars],
            "Volume": [b.volume for b in bars],
        },
        index=pd.DatetimeIndex([b.time for b in bars]),
    )


def target_price(entry: Decimal, atr: float, direction: Direction, multiple: Decimal) -> Decimal:
    offset = multiple * Decimal(repr(atr))
    if direction is Direction.LONG:
        return (entry + offset).quantize(CENT, rounding=ROUND_CEILING)
    return (entry - offset).quantize(CENT, rounding=ROUND_FLOOR)


class IctPeerStrategy(Strategy):  # type: ignore[misc]
    """Set the class attributes below (via `Backtest.run(**kwargs)`) before running."""

    signals: ClassVar[dict[int, Signal]] = {}
    flatten_at: ClassVar[list[datetime]] = []
    bar_times: ClassVar[list[datetime]] = []
    next_open: ClassVar[list[float]] = []
    target_multiple: ClassVar[Decimal] = Decimal(5)
    max_hold: ClassVar[timedelta] = timedelta(minutes=60)

    def init(self) -> None:
        self.exit_requests: dict[tuple[int, str], str] = {}
        self.targets: dict[tuple[int, str], Decimal] = {}

    def next(self) -> None:
        index = len(self.data) - 1
        now = self.bar_times[index] + MINUTE
        flatten_at = self.flatten_at[index]
        for trade in list(self.trades):
            key = (trade.entry_bar, trade.tag)
            if key in self.exit_requests:
                continue
            entry_time = self.bar_times[trade.entry_bar]
            if now >= flatten_at:
                reason = "session_end"
            elif now >= entry_time + self.max_hold:
                reason = "time"
            else:
                continue
            self.exit_requests[key] = reason
            trade.tp = None  # cancel the resting target first, as a real broker requires
            trade.close()
        signal = self.signals.get(index)
        if signal is None or self.trades or now >= flatten_at or index + 1 >= len(self.next_open):
            return
        equity = Decimal(repr(float(self.equity))).quantize(Decimal("0.0001"))
        price = Decimal(repr(signal.close))
        entry = Decimal(repr(self.next_open[index]))
        target = target_price(entry, signal.atr, signal.direction, self.target_multiple)
        for name, allocation in PROFILES:
            shares = int((equity * allocation / price).to_integral_value(rounding=ROUND_DOWN))
            if shares == 0:
                continue
            self.targets[(index + 1, name)] = target
            if signal.direction is Direction.LONG:
                self.buy(size=shares, tp=float(target), tag=name)
            else:
                self.sell(size=shares, tp=float(target), tag=name)


def run_peer(
    bars: Sequence[Bar], calendar: NyseCalendar, signals: Sequence[Signal]
) -> tuple[list[PeerTrade], Any]:
    """Run backtesting.py over `bars` with our `signals`; return its trades and its stats."""
    index_of = {bar.time: i for i, bar in enumerate(bars)}
    flatten: list[datetime] = []
    cache: dict[object, datetime] = {}
    for bar in bars:
        day = bar.time.date()
        if day not in cache:
            session = calendar.session_at(bar.time)
            assert session is not None
            cache[day] = session.close - timedelta(minutes=5)
        flatten.append(cache[day])
    frame = frame_of(bars)
    backtest = Backtest(
        frame,
        IctPeerStrategy,
        cash=100_000,
        commission=0.0,
        margin=1.0,
        trade_on_close=False,
        hedging=False,
        exclusive_orders=False,
        finalize_trades=True,
    )
    stats = backtest.run(
        signals={index_of[s.time]: s for s in signals},
        flatten_at=flatten,
        bar_times=[bar.time for bar in bars],
        next_open=[bar.open for bar in bars[1:]],
    )
    strategy = stats._strategy
    trades: list[PeerTrade] = []
    for row in stats._trades.itertuples():
        key = (int(row.EntryBar), str(row.Tag))
        requested = strategy.exit_requests.get(key)
        target = strategy.targets.get(key)
        exit_price = Decimal(repr(float(row.ExitPrice))).quantize(Decimal("0.0001"))
        reason = requested or "target"
        if requested is None and target is None:
            reason = "unknown"
        entry_price = Decimal(repr(float(row.EntryPrice))).quantize(Decimal("0.0001"))
        shares = abs(int(row.Size))
        sign = 1 if int(row.Size) > 0 else -1
        trades.append(
            PeerTrade(
                profile=str(row.Tag),
                direction="long" if sign > 0 else "short",
                shares=shares,
                entry_time=bars[int(row.EntryBar)].time,
                exit_time=bars[int(row.ExitBar)].time,
                entry_price=entry_price,
                exit_price=exit_price,
                exit_reason=reason,
                pnl=(exit_price - entry_price) * shares * sign,
            )
        )
    return trades, stats
