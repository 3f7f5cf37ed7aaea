"""The allowed range of every numeric setting, in one table, and the check that applies it.

A value Python can hold is not always a value the bot can trade with: `target_atr_multiple =
1e30` parses, then makes the target price overflow Decimal's precision *after* the entry has
filled, leaving a position without its exit; `max_hold_minutes = 1e12` overflows `timedelta`
mid-trade. So every number is checked when it is loaded, against a range a demanding trader
could still want, and refused before anything runs, with one message naming the key:

    exits.target_atr_multiple must be a finite number between 0.1 and 100, got inf

The README's configuration section lists the same ranges; `tests/test_misuse_inputs.py` tries
values outside each of them through the real command.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ict_trader.errors import ConfigError

SESSION_MINUTES = 390  # a full NYSE regular session
DAY_MINUTES = 1440
BILLION = Decimal(1_000_000_000)  # money caps: more than any account this bot should trade
_WHOLE_TEXT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds; `whole` settings take integers only (a fractional minute is a typo)."""

    low: Decimal
    high: Decimal
    whole: bool = False
    note: str = ""

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        note = f" ({self.note})" if self.note else ""
        return f"{kind} between {plain(self.low)} and {plain(self.high)}{note}"


def _whole(low: int, high: int | Decimal, note: str = "") -> Range:
    return Range(Decimal(low), Decimal(high), whole=True, note=note)


def _number(low: str | int, high: str | int | Decimal, note: str = "") -> Range:
    return Range(Decimal(low), Decimal(high), note=note)


OFF = "0 = off"
SIGNAL: Mapping[str, Range] = {
    "atr_period": _whole(1, 500),
    "swing_length": _whole(1, 50),
    "displacement_atr": _number(0, 20),
    "mss_window": _whole(1, SESSION_MINUTES),
    "open_delay_minutes": _whole(0, SESSION_MINUTES),
    "close_buffer_minutes": _whole(0, SESSION_MINUTES),
}
EXITS: Mapping[str, Range] = {
    "target_atr_multiple": _number("0.1", 100),
    "max_hold_minutes": _whole(1, DAY_MINUTES),  # longer than a session: the session end exits
    "flatten_before_close_minutes": _whole(1, 120),
    "stop_atr_multiple": _number("0.1", 100),
}
SIMULATION: Mapping[str, Range] = {
    "starting_equity": _number(1, BILLION),
    "slippage_bps": _number(0, 1000),
    "commission_per_share": _number(0, 10),
    "buying_power_multiple": _number(0, 4),
}
RISK: Mapping[str, Range] = {
    "daily_loss_limit": _number(0, BILLION, OFF),
    "rapid_loss": _number(0, BILLION, OFF),
    "rapid_loss_minutes": _whole(1, SESSION_MINUTES),
    "max_errors": _whole(0, 1000, OFF),
    "error_window_minutes": _whole(1, DAY_MINUTES),
    "max_drawdown_pct": _number(0, 100, OFF),
    "max_shares_per_trade": _whole(0, 10_000_000, OFF),
    "max_notional_per_trade": _number(0, BILLION, OFF),
    "max_equity_pct_per_trade": _number(0, 400, OFF),
    "max_total_shares": _whole(0, 10_000_000, OFF),
    "max_total_notional": _number(0, BILLION, OFF),
    "max_total_equity_pct": _number(0, 400, OFF),
    "max_symbol_shares": _whole(0, 10_000_000, OFF),
    "max_symbol_notional": _number(0, BILLION, OFF),
    "max_symbol_equity_pct": _number(0, 400, OFF),
    "symbol_daily_loss_limit": _number(0, BILLION, OFF),
    "stale_data_minutes": _whole(0, SESSION_MINUTES, OFF),
}
PROFILE_ALLOCATION = _number("0.0001", 1)
OPTION: Mapping[str, Range] = {
    "entry_timeout_minutes": _whole(1, 60),
    "premium_target_pct": _number(1, 10_000),
    "max_contracts": _whole(1, 10_000),
    "max_premium": _number(1, BILLION),
}
# The [options] table: the modelled market of a backtest or replay (docs/options.md).
OPTIONS: Mapping[str, Range] = {
    "volatility": _number("0.01", 10, 'or "realized"'),
    "realized_window_minutes": _whole(30, 20 * SESSION_MINUTES),
    "spread_absolute": _number(0, 10),
    "spread_relative": _number(0, 1),
    "slippage": _number(0, 10),
    "commission_per_contract": _number(0, 100),
    "rate": _number(0, 1),
    "dividend": _number(0, 1),
    "strike_step": _number("0.5", 100),
    "strike_count": _whole(1, 100),
    "staleness_minutes": _whole(0, 60),
}
TABLES: Mapping[str, Mapping[str, Range]] = {
    "signal": SIGNAL,
    "exits": EXITS,
    "simulation": SIMULATION,
    "risk": RISK,
}


def checked(allowed: Range, value: object, key: str, *, text: bool = False) -> Decimal:
    """`value` as a Decimal if it is a number inside `allowed`; else ConfigError naming `key`.

    `value` is what a TOML file holds (int, float), a Decimal, or — with `text`, for command
    options — a string. A quoted number in a file (`max_errors = "5"`) is refused: it usually
    means the user meant something else. So are booleans, although Python counts them as
    integers: `max_errors = true` is a mistake.
    """
    number = _as_number(value, allowed.whole, text)
    if number is not None and number.is_finite() and allowed.low <= number <= allowed.high:
        return number
    if number is not None and number.is_finite() and number < 0 and allowed.low == 0:
        raise ConfigError(f"{key} must not be negative ({allowed.describe()}), got {shown(value)}")
    raise ConfigError(f"{key} must be {allowed.describe()}, got {shown(value)}")


def setting(table: str, key: str, value: object) -> Decimal:
    """`checked` for `[table] key`, named `table.key` as in the README."""
    return checked(TABLES[table][key], value, f"{table}.{key}")


def _as_number(value: object, whole: bool, text: bool) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if not whole or value == value.to_integral_value() else None
    if isinstance(value, float):
        if whole:
            return None
        return Decimal(repr(value)) if math.isfinite(value) else Decimal("NaN")
    if isinstance(value, str) and text:
        stripped = value.strip()
        if whole:
            return Decimal(stripped) if _WHOLE_TEXT.fullmatch(stripped) else None
        try:
            return Decimal(stripped)
        except InvalidOperation:
            return None
    return None


def shown(value: object) -> str:
    """A value as it reads in TOML (`inf`, `true`, `"abc"`), cut short, for messages."""
    text = _toml_like(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _toml_like(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{…}"
    if isinstance(value, list):
        return "[…]"
    return str(value)


def plain(number: Decimal) -> str:
    """`1000000000` rather than `1E+9`: bounds as a user would type them."""
    return format(number.normalize(), "f")
