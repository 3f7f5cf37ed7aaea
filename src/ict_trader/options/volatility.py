"""The underlying's realized volatility from 1-minute bars, on the pricing model's clock.

    r_i    = ln(close_i / close_{i-1})      for consecutive bars of one New York day
    m_i    = minutes between their stamps   (1 for consecutive minutes)
    sigma  = sqrt( sum r_i**2 / sum m_i  x  98,280 )

That is the realized variance per trading minute (the sum of squared returns over the minutes
they span: the usual high-frequency estimator, not demeaned — a minute's drift is a millionth of
its variance), annualised with the 98,280 trading minutes of the pricing model's year
(`pricing.MINUTES_PER_YEAR`), so `sigma**2 x years` is the variance of the minutes left to
expiry. A return across the night is left out: the model's clock does not run overnight, and
a 0DTE option never holds through one. A gap inside a day (a minute without a trade) counts for
the minutes it spans, so it does not inflate the estimate.

Give it regular-hours bars: pre- and after-market minutes are thinner and would count too.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK
from ict_trader.options.pricing import MINUTES_PER_YEAR


def realized_volatility(bars: Iterable[Bar]) -> float | None:
    """The annualised realized volatility of the closes of `bars` (in time order), or None
    with no return to measure (fewer than two bars on any one day)."""
    tracker = RealizedVolatility(window=None)
    for bar in bars:
        tracker.update(bar)
    return tracker.value


class RealizedVolatility:
    """The same estimate over the last `window` returns (None: all of them), bar by bar: what a
    backtest asks at each entry without keeping the whole history."""

    def __init__(self, window: int | None = 390) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window {window} must be at least 1 return")
        self._returns: deque[tuple[float, float]] = deque(maxlen=window)
        self._last: Bar | None = None

    def update(self, bar: Bar) -> None:
        """Add the bar after the previous one (a later stamp; ValueError otherwise)."""
        if not (math.isfinite(bar.close) and bar.close > 0):
            raise ValueError(f"bar {bar.time} has close {bar.close}, not a positive price")
        last = self._last
        if last is not None:
            minutes = (bar.time - last.time).total_seconds() / 60.0
            if minutes <= 0:
                raise ValueError(f"bar {bar.time} is not after the previous bar {last.time}")
            if bar.time.astimezone(NEW_YORK).date() == last.time.astimezone(NEW_YORK).date():
                self._returns.append((math.log(bar.close / last.close), minutes))
        self._last = bar

    @property
    def returns(self) -> int:
        """How many returns the estimate rests on."""
        return len(self._returns)

    @property
    def value(self) -> float | None:
        if not self._returns:
            return None
        variance = math.fsum(r * r for r, _ in self._returns)
        minutes = math.fsum(m for _, m in self._returns)
        return math.sqrt(variance / minutes * MINUTES_PER_YEAR)
