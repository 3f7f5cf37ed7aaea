"""The signals the detector finds on the live bars and on SIP bars, side by side.

Each SIP signal is paired with a live one of the same direction: at the same bar (`same`), or
within `SHIFT_WINDOW` of it (`shifted`, the nearest first); an unpaired SIP signal is `missing`
on the live feed (the backtest would have traded it, the bot did not), an unpaired live one is
`extra` (the bot traded what the backtest would not have). A signal pairs only with one of its
own symbol: several symbols' signals are compared in one go, each pair naming its symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ict_trader.signals import Signal

SHIFT_WINDOW = timedelta(minutes=5)
SAME, SHIFTED, MISSING, EXTRA = "same", "shifted", "missing", "extra"


@dataclass(frozen=True)
class SignalPair:
    """One row of the side-by-side list: a live signal, a SIP signal, or both."""

    status: str
    direction: str
    live: datetime | None
    sip: datetime | None
    live_close: float | None = None
    sip_close: float | None = None
    symbol: str = ""

    @property
    def time(self) -> datetime:
        moment = self.sip or self.live
        assert moment is not None
        return moment

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "status": self.status,
            "direction": self.direction,
            "live": _iso(self.live),
            "sip": _iso(self.sip),
            "live_close": self.live_close,
            "sip_close": self.sip_close,
        }


@dataclass
class SignalsAudit:
    pairs: list[SignalPair] = field(default_factory=list)
    # signals the bot recorded that the stored bars do not give again (another warm-up, or
    # bars the store lacks): shown, not counted as differences between the feeds
    unreproduced: list[str] = field(default_factory=list)

    def count(self, status: str, symbol: str | None = None) -> int:
        """Pairs of `status` (of `symbol`'s signals only, if given)."""
        return sum(
            1
            for pair in self.pairs
            if pair.status == status and (symbol is None or pair.symbol == symbol)
        )

    def differ_on(self, symbol: str | None = None) -> bool:
        """Whether any pair (of `symbol`'s) is not `same`."""
        return any(
            pair.status != SAME and (symbol is None or pair.symbol == symbol) for pair in self.pairs
        )

    @property
    def differ(self) -> bool:
        return self.differ_on()

    def counts(self, symbol: str | None = None) -> dict[str, int]:
        return {status: self.count(status, symbol) for status in (SAME, SHIFTED, MISSING, EXTRA)}

    def as_json(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "pairs": [pair.as_json() for pair in self.pairs],
            "unreproduced": list(self.unreproduced),
        }


def compare_signals(
    live: Sequence[Signal], sip: Sequence[Signal], window: timedelta = SHIFT_WINDOW
) -> SignalsAudit:
    """Pair the live signals with the SIP signals (see the module docstring)."""
    audit = SignalsAudit()
    unpaired = list(live)
    for wanted in sip:
        same = next(
            (
                s
                for s in unpaired
                if s.time == wanted.time
                and s.direction == wanted.direction
                and s.symbol == wanted.symbol
            ),
            None,
        )
        near = same or min(
            (
                s
                for s in unpaired
                if s.direction == wanted.direction
                and s.symbol == wanted.symbol
                and abs(s.time - wanted.time) <= window
            ),
            key=lambda s: abs(s.time - wanted.time),
            default=None,
        )
        if near is None:
            audit.pairs.append(
                SignalPair(
                    MISSING,
                    wanted.direction.value,
                    None,
                    wanted.time,
                    None,
                    wanted.close,
                    wanted.symbol,
                )
            )
            continue
        unpaired.remove(near)
        audit.pairs.append(
            SignalPair(
                SAME if near is same else SHIFTED,
                wanted.direction.value,
                near.time,
                wanted.time,
                near.close,
                wanted.close,
                wanted.symbol,
            )
        )
    for extra in unpaired:
        audit.pairs.append(
            SignalPair(
                EXTRA, extra.direction.value, extra.time, None, extra.close, symbol=extra.symbol
            )
        )
    audit.pairs.sort(key=lambda pair: (pair.time, pair.symbol))
    return audit


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
