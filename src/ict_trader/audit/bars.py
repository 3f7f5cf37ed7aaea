"""Live bars against consolidated ones, minute by minute.

The free plan's live bars come from IEX, which prints a few percent of QQQ's trades: some minutes
have no bar at all, and a minute's bar has thinner volume and, usually, an open, high, low and
close other than the consolidated (SIP) bar's. The backtests use SIP bars, so this is where live
signals can start to differ. The figures (README, `ict-trader audit`):

- `minutes`: SIP minutes compared (regular hours, in the audited period, up to the SIP cut-off);
- `missing_live`: of those, minutes the live feed has no bar for; `live_only`: live bars SIP
  does not have (expected: none);
- `different`: minutes whose live open, high, low or close differs from SIP's;
- `outside_range`: live bars with a high above or a low below SIP's (a subset of the trades
  cannot reach beyond the whole: expected none, except late trades revising one side);
- `max_close_difference`, `mean_close_difference`: |live close - SIP close| in $;
- `volume_share`: live volume ÷ SIP volume over the minutes both have.

With several symbols each symbol's bars are compared with its own SIP bars, and `combine_bars`
adds the symbols up: counts summed, the largest difference the largest of all, the mean over
every minute compared, the volume share of all the shares traded in those minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ict_trader.core.bars import Bar


@dataclass(frozen=True)
class BarsAudit:
    minutes: int
    missing_live: int
    live_only: int
    different: int
    outside_range: int
    max_close_difference: float | None
    mean_close_difference: float | None
    volume_share: float | None
    # the volumes behind `volume_share` (to add symbols up; not in the JSON)
    live_volume: float = 0.0
    sip_volume: float = 0.0

    @property
    def both(self) -> int:
        """Minutes with a live and a SIP bar."""
        return self.minutes - self.missing_live

    def as_json(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes,
            "missing_live": self.missing_live,
            "live_only": self.live_only,
            "different": self.different,
            "outside_range": self.outside_range,
            "max_close_difference": _round(self.max_close_difference),
            "mean_close_difference": _round(self.mean_close_difference),
            "volume_share": None if self.volume_share is None else round(self.volume_share, 4),
        }


def compare_bars(live: Sequence[Bar], sip: Sequence[Bar]) -> BarsAudit:
    """Compare the live bars of the minutes SIP covers with SIP's bars of those minutes."""
    sip_by_time = {bar.time: bar for bar in sip}
    live_by_time = {bar.time: bar for bar in live}
    both = [(live_by_time[t], s) for t, s in sip_by_time.items() if t in live_by_time]
    first = min(sip_by_time, default=None)
    last = max(sip_by_time, default=None)
    live_only = sum(
        1
        for t in live_by_time
        if t not in sip_by_time and first is not None and last is not None and first <= t <= last
    )
    closes = [abs(a.close - b.close) for a, b in both]
    sip_volume = sum(b.volume for _, b in both)
    return BarsAudit(
        minutes=len(sip_by_time),
        missing_live=len(sip_by_time) - len(both),
        live_only=live_only,
        different=sum(
            1
            for a, b in both
            if (a.open, a.high, a.low, a.close) != (b.open, b.high, b.low, b.close)
        ),
        outside_range=sum(1 for a, b in both if a.high > b.high or a.low < b.low),
        max_close_difference=max(closes, default=None),
        mean_close_difference=sum(closes) / len(closes) if closes else None,
        volume_share=sum(a.volume for a, _ in both) / sip_volume if sip_volume else None,
        live_volume=sum(a.volume for a, _ in both),
        sip_volume=sip_volume,
    )


def combine_bars(parts: Sequence[BarsAudit]) -> BarsAudit | None:
    """Several symbols' comparisons as one (one symbol's is itself; none: None)."""
    if len(parts) <= 1:
        return parts[0] if parts else None
    both = sum(p.both for p in parts)
    closes = [p.max_close_difference for p in parts if p.max_close_difference is not None]
    live_volume = sum(p.live_volume for p in parts)
    sip_volume = sum(p.sip_volume for p in parts)
    return BarsAudit(
        minutes=sum(p.minutes for p in parts),
        missing_live=sum(p.missing_live for p in parts),
        live_only=sum(p.live_only for p in parts),
        different=sum(p.different for p in parts),
        outside_range=sum(p.outside_range for p in parts),
        max_close_difference=max(closes, default=None),
        mean_close_difference=(
            sum((p.mean_close_difference or 0.0) * p.both for p in parts) / both if both else None
        ),
        volume_share=live_volume / sip_volume if sip_volume else None,
        live_volume=live_volume,
        sip_volume=sip_volume,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
