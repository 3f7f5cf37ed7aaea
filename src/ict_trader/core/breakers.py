"""The circuit breakers, in one registry that the engine, the live shell, `status` and the
dashboard iterate — so adding one is one entry here, and which one tripped is a typed value,
not text parsed out of an actor string.

Each breaker names its `[risk]` setting (0 turns it off), what it watches, and what it does when
it trips: `kill` engages the kill switch (everything flattened, nothing new until a person
resumes), `reduce` only stops new entries until the condition clears by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

ACTOR_PREFIX = "breaker:"


class Breaker(StrEnum):
    DAILY_LOSS = "daily_loss"
    RAPID_LOSS = "rapid_loss"
    ERROR_RATE = "error_rate"
    DRAWDOWN = "drawdown"
    STALE_DATA = "stale_data"

    @property
    def actor(self) -> str:
        """Who the trading-state change is attributed to, in the store and on the pages."""
        return ACTOR_PREFIX + self.value


@dataclass(frozen=True, slots=True)
class BreakerSpec:
    breaker: Breaker
    setting: str  # the RiskLimits field (and `[risk]` key) that sets it; 0 turns it off
    meaning: str  # what trips it, with `{}` for the setting's value
    action: Literal["kill", "reduce"]


BREAKERS: tuple[BreakerSpec, ...] = (
    BreakerSpec(
        Breaker.DAILY_LOSS,
        "daily_loss_limit",
        "session P&L (realized + unrealized) at or below -{}",
        "kill",
    ),
    BreakerSpec(Breaker.RAPID_LOSS, "rapid_loss", "{} lost within rapid_loss_minutes", "kill"),
    BreakerSpec(
        Breaker.ERROR_RATE, "max_errors", "{} order errors within error_window_minutes", "kill"
    ),
    BreakerSpec(Breaker.DRAWDOWN, "max_drawdown_pct", "{}% below the equity peak", "kill"),
    BreakerSpec(
        Breaker.STALE_DATA,
        "stale_data_minutes",
        "no new bar for {} minutes (live; entries pause)",
        "reduce",
    ),
)


def tripped_by(actor: str | None) -> Breaker | None:
    """The breaker a trading state is attributed to, if a breaker it was."""
    if not actor or not actor.startswith(ACTOR_PREFIX):
        return None
    try:
        return Breaker(actor.removeprefix(ACTOR_PREFIX))
    except ValueError:
        return None
