"""Strategy profiles (how much to trade) and exit settings (when to get out).

Kept apart from the engine so configuration can be validated and shown to users on its own,
with errors that name the key. The rules that apply these settings are `core/sizing.py` and
`core/exits/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal
from enum import StrEnum

from ict_trader import ranges
from ict_trader.core.exits.stop import StopMode
from ict_trader.core.instruments import equity
from ict_trader.core.risk import RiskLimits
from ict_trader.errors import ConfigError

MAX_PROFILE_NAME = 32  # longer names only make order ids and notifications unreadable


class InstrumentChoice(StrEnum):
    """What a profile trades on a signal: shares of its symbol, or a same-day option on it."""

    SHARES = "shares"
    OPTION = "option"


class OptionEntryPrice(StrEnum):
    MID = "mid"  # a limit at the mid: cheaper, may not fill (the entry timeout cancels it)
    ASK = "ask"  # a marketable limit at the ask: fills now, pays the spread


class OptionTarget(StrEnum):
    UNDERLYING = "underlying"  # the shares' target: the underlying at entry +/- N x ATR
    PREMIUM = "premium"  # a resting limit sell at the entry premium + premium_target_pct %


# Alpaca refuses new orders on a same-day QQQ option from 15:30 ET and liquidates from 15:45:
# the bot must be flat before either.
OPTION_CUTOFF = time(15, 30)
FULL_DAY_CLOSE = time(16, 0)


@dataclass(frozen=True, slots=True)
class OptionRules:
    """How an option profile picks, sizes, enters and leaves a same-day (0DTE) contract.

    `strike` is a strike rule's text (`atm`, `otm = N`, `delta = 0.40`): the shell that answers
    the engine's contract request applies it (`options/chain.py`), so the core never needs the
    pricing code; `config.py` checks the text when the file is read.
    """

    strike: str = "atm"
    entry_price: OptionEntryPrice = OptionEntryPrice.MID
    entry_timeout_minutes: int = 2
    target: OptionTarget = OptionTarget.UNDERLYING
    premium_target_pct: Decimal = Decimal(100)
    max_contracts: int = 10
    max_premium: Decimal = Decimal(5000)  # dollars of premium one trade may pay (= may lose)
    flatten_at: time = time(15, 20)  # ET on a full day; as many minutes before an early close

    def __post_init__(self) -> None:
        for name, allowed in ranges.OPTION.items():
            ranges.checked(allowed, getattr(self, name), f"option.{name}")
        if self.flatten_at > OPTION_CUTOFF or self.flatten_at < time(9, 31):
            raise ConfigError(
                f"option.flatten_at must be between 09:31 and {OPTION_CUTOFF:%H:%M} ET "
                f"(Alpaca refuses orders on an expiring option from {OPTION_CUTOFF:%H:%M}), "
                f"got {self.flatten_at:%H:%M}"
            )

    @property
    def flatten_before_close(self) -> timedelta:
        """How long before the close the flatten happens (40 minutes for 15:20): the same span
        before an early close, where Alpaca's cut-off moves with the close too."""
        close = FULL_DAY_CLOSE.hour * 60 + FULL_DAY_CLOSE.minute
        return timedelta(minutes=close - (self.flatten_at.hour * 60 + self.flatten_at.minute))


@dataclass(frozen=True, slots=True)
class StrategyProfile:
    """One way of trading every signal: a name, the share of equity each trade commits, and
    what it buys (shares, or an option whose premium the allocation budgets)."""

    name: str
    allocation: Decimal
    enabled: bool = True
    instrument: InstrumentChoice = InstrumentChoice.SHARES
    option: OptionRules = field(default_factory=OptionRules)

    @property
    def trades_options(self) -> bool:
        return self.instrument is InstrumentChoice.OPTION

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
