"""The one place P&L and positions are computed from the store, for every view.

`status`, the dashboard, the daily summary and the CLI used to add up trades each in their own
way, and after a partial exit they disagreed: a trade whose target had filled 3 of its 6 shares
showed unrealized P&L on all 6 and none of the 3 realized. Here a trade's figures come from its
fills: the shares still held are the entry's fills less the exits' fills, the realized P&L of a
trade still open is what its exit fills made, and a closed trade's is the P&L the engine booked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ict_trader.core.calendar import NEW_YORK
from ict_trader.core.events import TradeView
from ict_trader.core.instruments import instrument_of
from ict_trader.notify.option_words import any_modelled
from ict_trader.persistence.store import Store

UNFINISHED = frozenset({"pending", "open", "exiting"})
ExitFill = tuple[datetime, int, Decimal, Decimal]  # time, shares, price, commission


@dataclass(frozen=True, slots=True)
class TradeFigures:
    trade: TradeView
    exit_fills: tuple[ExitFill, ...]

    @property
    def sign(self) -> int:
        """+1 for a long position. A bought call or put is long whichever way its signal
        pointed: an option trade on a short signal holds long puts, not short ones."""
        if self.trade.direction == "long" or self.is_option:
            return 1
        return -1

    @property
    def is_option(self) -> bool:
        return self.trade.option is not None or instrument_of(self.trade.symbol).is_option

    @property
    def multiplier(self) -> int:
        """Dollars per unit per dollar of price: 1 for a share, 100 for an option contract."""
        return instrument_of(self.trade.symbol).multiplier

    @property
    def exited(self) -> int:
        return sum(qty for _, qty, _, _ in self.exit_fills)

    @property
    def held(self) -> int:
        """Shares the trade still holds (0 once closed, released or never filled)."""
        if self.trade.status not in UNFINISHED:
            return 0
        return max(0, self.trade.qty - self.exited)

    def realized(self, day: date | None = None) -> Decimal:
        """P&L realized (on `day`, New York, if given): a closed trade's booked P&L on its exit
        day; a trade still open, what its exit fills made so far."""
        if self.trade.status == "closed" and self.trade.pnl is not None:
            if day is None or _day(self.trade.exit_time) == day:
                return self.trade.pnl
            return Decimal(0)
        if self.trade.status not in UNFINISHED or self.trade.entry_price is None:
            return Decimal(0)
        entry = self.trade.entry_price
        multiplier = self.multiplier
        return sum(
            (
                self.sign * (price - entry) * qty * multiplier - commission
                for moment, qty, price, commission in self.exit_fills
                if day is None or _day(moment) == day
            ),
            Decimal(0),
        )

    def unrealized(self, marks: Mapping[str, Decimal]) -> Decimal:
        """P&L of the units still held at their symbol's mark in `marks` (0 without a mark or
        an entry price)."""
        mark = marks.get(self.trade.symbol)
        if not mark or self.trade.entry_price is None or self.held == 0:
            return Decimal(0)
        return self.sign * (mark - self.trade.entry_price) * self.held * self.multiplier


@dataclass(frozen=True, slots=True)
class Book:
    """Every trade's figures, read once; views ask it rather than add up trades themselves."""

    trades: tuple[TradeFigures, ...]

    @classmethod
    def of(cls, store: Store) -> Book:
        fills: dict[str, list[ExitFill]] = {}
        for trade_id, moment, qty, price, commission in store.exit_fills():
            fills.setdefault(trade_id, []).append((moment, qty, price, commission))
        return cls(tuple(TradeFigures(t, tuple(fills.get(t.trade_id, ()))) for t in store.trades()))

    def profiles(self) -> list[str]:
        return sorted({f.trade.profile for f in self.trades})

    def symbols(self) -> list[str]:
        return sorted({f.trade.symbol for f in self.trades})

    def underlyings(self) -> list[str]:
        """The symbols traded, an option counted under the symbol it is on."""
        return sorted({instrument_of(f.trade.symbol).root for f in self.trades})

    def of_profile(
        self, profile: str | None, symbol: str | None = None, underlying: str | None = None
    ) -> Iterable[TradeFigures]:
        """`symbol`: the trades in that instrument only; `underlying`: its shares and every
        option on it."""
        return (
            f
            for f in self.trades
            if (profile is None or f.trade.profile == profile)
            and (symbol is None or f.trade.symbol == symbol)
            and (underlying is None or instrument_of(f.trade.symbol).root == underlying)
        )

    def unfinished(self, profile: str | None = None) -> list[TradeFigures]:
        return [f for f in self.of_profile(profile) if f.trade.status in UNFINISHED]

    def closed(self, day: date | None = None, profile: str | None = None) -> list[TradeView]:
        """Closed trades with a booked P&L (exited on `day`, if given)."""
        return [
            f.trade
            for f in self.of_profile(profile)
            if f.trade.status == "closed"
            and f.trade.pnl is not None
            and (day is None or _day(f.trade.exit_time) == day)
        ]

    def realized(
        self,
        day: date | None = None,
        profile: str | None = None,
        symbol: str | None = None,
        underlying: str | None = None,
    ) -> Decimal:
        trades = self.of_profile(profile, symbol, underlying)
        return sum((f.realized(day) for f in trades), Decimal(0))

    def unrealized(
        self,
        marks: Mapping[str, Decimal],
        profile: str | None = None,
        symbol: str | None = None,
        underlying: str | None = None,
    ) -> Decimal:
        trades = self.of_profile(profile, symbol, underlying)
        return sum((f.unrealized(marks) for f in trades), Decimal(0))

    def position(self, symbol: str) -> int:
        """Net units of `symbol` the unfinished trades hold (negative when short), as the
        engine counts."""
        return sum(f.sign * f.held for f in self.of_profile(None, symbol))

    def contracts_on(self, underlying: str) -> int:
        """Option contracts the unfinished trades hold on `underlying` (always bought)."""
        return sum(f.held for f in self.of_profile(None, None, underlying) if f.is_option)

    def modelled(self, profile: str | None = None, underlying: str | None = None) -> bool:
        """Whether any of the trades' premiums came from the pricing model."""
        return any_modelled(f.trade for f in self.of_profile(profile, None, underlying))


def _day(moment: datetime | None) -> date | None:
    return None if moment is None else moment.astimezone(NEW_YORK).date()
