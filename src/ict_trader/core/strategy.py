"""Strategy profiles (how much to trade) and exit settings (when to get out).

Kept apart from the engine so configuration can be validated and shown to users on its own,
with errors that name the key. The rules that apply these settings are `core/sizing.py` and
`core/exits/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ict_trader import ranges
from ict_trader.core.exits.stop import StopMode
from ict_trader.core.instruments import equity
from ict_trader.core.risk import RiskLimits
from ict_trader.errors import ConfigError

MAX_PROFILE_NAME = 32  # longer names only make order ids and notifications unreadable


@dataclass(frozen=True, slots=True)
class StrategyProfile:
    """One way of trading every signal: a name and the share of equity each trade commits."""

    name: str
    allocation: Decimal
    enabled: bool = True

    def __post_init__(self) -> None:
        bare = self.name.replace("_", "").replace("-", "")
        if not bare or not bare.isascii() or not bare.isalnum():
            raise ConfigError(
                f"profiles: name {self.name!r} must be letters, digits, '-' or '_' only"
            )
        if len(self.name) > MAX_PROFILE_NAME:
            raise ConfigError(
                f"profiles: name {self.name[:MAX_PROFILE_NAME]!r}… is longer than "
                f"{MAX_PROFILE_NAME} characters"
            )
        # A finite share of equity: NaN would make sizing raise instead of answer.
        key = f"profiles.{self.name}.allocation"
        ranges.checked(ranges.PROFILE_ALLOCATION, self.allocation, key)


DEFAULT_PROFILES = (
    StrategyProfile("conservative", Decimal("0.03")),
    StrategyProfile("aggressive", Decimal("0.04")),
)


@dataclass(frozen=True, slots=True)
class ExitRules:
    """Exit parameters shared by all profiles; whichever exit triggers first wins.

    `core.exits.exit_plan` turns them into the rules the engine asks.
    """

    target_atr_multiple: Decimal = Decimal(5)
    max_hold_minutes: int = 60
    flatten_before_close_minutes: int = 5
    stop: StopMode = StopMode.NONE
    stop_atr_multiple: Decimal = Decimal(2)

    def __post_init__(self) -> None:
        # Also checked here, not only when a file is read: a huge multiple or hold time would
        # only fail after an entry had filled, leaving the position without its exits.
        for name, allowed in ranges.EXITS.items():
            ranges.checked(allowed, getattr(self, name), f"exits.{name}")


MAX_SYMBOLS = 50  # one detector and one bar stream each; far more is a different program


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine trades: every profile on every symbol's signals."""

    symbols: tuple[str, ...] = ("QQQ",)
    profiles: tuple[StrategyProfile, ...] = DEFAULT_PROFILES
    exits: ExitRules = field(default_factory=ExitRules)
    risk: RiskLimits = field(default_factory=RiskLimits)

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("symbols: at least one symbol is required")
        if len(self.symbols) > MAX_SYMBOLS:
            raise ConfigError(f"symbols: at most {MAX_SYMBOLS}, got {len(self.symbols)}")
        for symbol in self.symbols:
            equity(symbol)  # a ticker, or a ConfigError naming it
        if len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"symbols: duplicate symbols in {list(self.symbols)}")
        names = [profile.name for profile in self.profiles]
        if len(set(names)) != len(names):
            raise ConfigError(f"profiles: duplicate names in {names}")
        if not self.profiles:
            raise ConfigError("profiles: at least one profile is required")
