"""Each live trade's fills against the fills the backtest would have simulated for its signal.

The simulated broker fills an entry (a market order sent at the signal bar's close) at the next
bar's open, worsened by `slippage_bps`; here that next bar is the SIP bar of the trade's own
symbol, as in a backtest on consolidated bars. The exit is compared when the backtest on the
SIP bars took the same trade (same signal, same profile): its exit fill against the live one.
Slippage is signed so that positive is worse for the account: paid above the simulated price on
a buy, received below it on a sell; in $ per share, in basis points of the simulated price, and
in $ for the trade's shares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ict_trader.core.bars import Bar
from ict_trader.core.events import TradeView
from ict_trader.signals import Signal

_ONE_MINUTE = timedelta(minutes=1)
_BPS = Decimal(10_000)
_STEP = Decimal("0.0001")


@dataclass(frozen=True)
class Slippage:
    """Live minus simulated, signed worse-is-positive."""

    live: Decimal
    simulated: Decimal
    per_share: Decimal
    bps: Decimal
    total: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "live": str(self.live),
            "simulated": str(self.simulated),
            "per_share": str(self.per_share),
            "bps": str(self.bps),
            "total": str(self.total),
        }


@dataclass(frozen=True)
class TradeSlippage:
    trade_id: str
    profile: str
    direction: str
    shares: int
    signal_time: datetime
    entry: Slippage | None  # None: no SIP bar after the signal (yet)
    exit: Slippage | None  # None: not closed, or the SIP backtest did not take this trade
    live_exit_reason: str | None
    backtest_exit_reason: str | None
    symbol: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "trade_id": self.trade_id,
            "symbol": self.symbol,
            "profile": self.profile,
            "direction": self.direction,
            "shares": self.shares,
            "signal_time": self.signal_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "entry": None if self.entry is None else self.entry.as_json(),
            "exit": None if self.exit is None else self.exit.as_json(),
            "live_exit_reason": self.live_exit_reason,
            "backtest_exit_reason": self.backtest_exit_reason,
        }


def slippage_of(
    trades: Sequence[TradeView],
    signals: Mapping[str, Signal],
    sip: Mapping[str, Sequence[Bar]],
    backtest: Mapping[str, TradeView],
    slippage_bps: Decimal,
) -> list[TradeSlippage]:
    """A row per live trade with an entry fill whose signal is known; `sip`: each symbol's
    SIP bars."""
    sip_by_time = {(symbol, bar.time): bar for symbol, bars in sip.items() for bar in bars}
    rows = []
    for trade in trades:
        signal = signals.get(trade.signal_id)
        if trade.entry_price is None or signal is None:
            continue
        buy_entry = trade.direction == "long"
        symbol = trade.symbol or signal.symbol
        following = sip_by_time.get((symbol, signal.time + _ONE_MINUTE))
        entry = None
        if following is not None:
            simulated = _slipped(Decimal(repr(following.open)), buy_entry, slippage_bps)
            entry = _slippage(trade.entry_price, simulated, buy_entry, trade.qty)
        twin = backtest.get(trade.trade_id)
        exit_ = None
        if trade.exit_price is not None and twin is not None and twin.exit_price is not None:
            exit_ = _slippage(trade.exit_price, twin.exit_price, not buy_entry, trade.qty)
        rows.append(
            TradeSlippage(
                trade_id=trade.trade_id,
                profile=trade.profile,
                direction=trade.direction,
                shares=trade.qty,
                signal_time=signal.time,
                entry=entry,
                exit=exit_,
                live_exit_reason=trade.exit_reason.value if trade.exit_reason else None,
                backtest_exit_reason=(
                    twin.exit_reason.value if twin is not None and twin.exit_reason else None
                ),
                symbol=symbol,
            )
        )
    return rows


def _slipped(price: Decimal, buy: bool, bps: Decimal) -> Decimal:
    """The simulated broker's market fill: worse by `bps` (simulated.py `_slipped`)."""
    if not bps:
        return price
    factor = 1 + bps / _BPS if buy else 1 - bps / _BPS
    return (price * factor).quantize(_STEP, rounding=ROUND_HALF_EVEN)


def _slippage(live: Decimal, simulated: Decimal, buy: bool, shares: int) -> Slippage:
    worse = (live - simulated) if buy else (simulated - live)
    bps = (worse / simulated * _BPS).quantize(Decimal("0.01")) if simulated else Decimal(0)
    return Slippage(
        live=live,
        simulated=simulated,
        per_share=worse.quantize(_STEP),
        bps=bps,
        total=(worse * shares).quantize(Decimal("0.01")),
    )
