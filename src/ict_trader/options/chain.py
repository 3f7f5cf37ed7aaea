"""Which contract an entry buys and how many: the strikes listed around the underlying, the
strike rules of an option profile, and sizing by premium.

Strike rules (a call on a long signal, a put on a short one):

- `atm`: the listed strike nearest the underlying, min |K - S|. Halfway between two strikes,
  the one **in the money**: the lower strike for a call, the higher for a put (its delta is at
  least 0.5 in size, so it follows the underlying at least as closely as the other, and it is
  never the one with more time value to lose).
- `otm = N`: the N-th listed strike out of the money, strictly above the underlying for a call
  and strictly below it for a put (a strike equal to the underlying is at the money, not out of
  it). None when fewer than N are listed.
- `delta = D`: the listed strike whose |delta| is nearest D (0 < D < 1), from the greeks of the
  quotes (Alpaca's snapshot, or the model); a strike without a delta is passed over. Ties go to
  the strike nearer the underlying, then as for `atm`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

from ict_trader.core.instruments import OPTION_MULTIPLIER, OptionRight
from ict_trader.core.sizing import Size
from ict_trader.errors import ConfigError

QQQ_STRIKE_STEP = Decimal(1)  # QQQ's daily expiries list $1 strikes near the money


def strike_grid(
    spot: Decimal | float, *, step: Decimal = QQQ_STRIKE_STEP, count: int = 10
) -> list[Decimal]:
    """The strikes an exchange would list around `spot`: multiples of `step`, the `count`
    highest at or below `spot` and the `count` lowest above it (positive ones only), ascending."""
    spot = as_decimal(spot)
    if step <= 0 or count < 1:
        raise ValueError(f"strike step {step} and count {count} must be positive")
    if spot <= 0:
        raise ValueError(f"spot {spot} is not positive")
    below = (spot / step).to_integral_value(rounding=ROUND_FLOOR)
    first = max(below - count + 1, Decimal(1))
    last = below + count
    return [(first + n) * step for n in range(int(last - first) + 1)]


@dataclass(frozen=True, slots=True)
class Atm:
    def __str__(self) -> str:
        return "atm"


@dataclass(frozen=True, slots=True)
class Otm:
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"otm = {self.steps}: the number of strikes must be at least 1")

    def __str__(self) -> str:
        return f"otm = {self.steps}"


@dataclass(frozen=True, slots=True)
class DeltaTarget:
    delta: float

    def __post_init__(self) -> None:
        if not (0 < self.delta < 1):
            raise ValueError(f"delta = {self.delta}: the target must be between 0 and 1")

    def __str__(self) -> str:
        return f"delta = {self.delta:g}"


StrikeRule = Atm | Otm | DeltaTarget
_RULE = re.compile(r"\s*(atm|otm|delta)\s*(?:=\s*(\S+)\s*)?", re.IGNORECASE)


def parse_strike_rule(text: str, key: str = "strike") -> StrikeRule:
    """`atm`, `otm = N` (N >= 1) or `delta = D` (0 < D < 1), as a profile writes it; a
    ConfigError naming `key` otherwise."""
    match = _RULE.fullmatch(text)
    usage = "expected 'atm', 'otm = N' (N >= 1 strikes) or 'delta = D' (0 < D < 1)"
    if match is None:
        raise ConfigError(f"{key}: {text!r} is not a strike rule; {usage}")
    kind, argument = match.group(1).lower(), match.group(2)
    try:
        if kind == "atm" and argument is None:
            return Atm()
        if kind == "otm" and argument is not None and argument.isdigit():
            return Otm(int(argument))
        if kind == "delta" and argument is not None:
            return DeltaTarget(float(argument))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    raise ConfigError(f"{key}: {text!r} is not a strike rule; {usage}")


def choose_strike(
    rule: StrikeRule,
    right: OptionRight,
    spot: Decimal | float,
    strikes: Iterable[Decimal],
    deltas: Mapping[Decimal, float | None] | None = None,
) -> Decimal | None:
    """The strike `rule` picks among the listed `strikes` for a contract of `right` with the
    underlying at `spot` (see the module docstring), or None when none qualifies. `deltas`
    (strike -> delta, either sign) is needed by a delta rule only."""
    spot = as_decimal(spot)
    listed = sorted(set(strikes))
    if not listed:
        return None
    call = right is OptionRight.CALL
    if isinstance(rule, Atm):
        return min(listed, key=lambda strike: _nearness(strike, spot, call))
    if isinstance(rule, Otm):
        beyond = [k for k in listed if k > spot] if call else [k for k in listed if k < spot][::-1]
        return beyond[rule.steps - 1] if len(beyond) >= rule.steps else None
    if deltas is None:
        raise ValueError("a delta rule needs the contracts' deltas")
    scored = [
        (abs(abs(delta) - rule.delta), _nearness(strike, spot, call), strike)
        for strike in listed
        if (delta := deltas.get(strike)) is not None and math.isfinite(delta)
    ]
    return min(scored)[2] if scored else None


def as_decimal(amount: Decimal | float) -> Decimal:
    """A price as a Decimal; a float (a bar's close) as the number its shortest repr shows."""
    if isinstance(amount, Decimal):
        return amount
    if not math.isfinite(amount):
        raise ValueError(f"price {amount} is not a finite number")
    return Decimal(repr(float(amount)))


def _nearness(strike: Decimal, spot: Decimal, call: bool) -> tuple[Decimal, bool]:
    """Sort key: distance from the underlying, then out of the money after in the money."""
    out_of_the_money = strike > spot if call else strike < spot
    return abs(strike - spot), out_of_the_money


# ---------------------------------------------------------------------------- sizing


def contracts_for_premium(
    budget: Decimal,
    ask: Decimal,
    *,
    multiplier: int = OPTION_MULTIPLIER,
    max_contracts: int | None = None,
    max_premium: Decimal | None = None,
) -> Size:
    """How many contracts the premium `budget` buys at `ask`: floor(budget / (ask x 100)), then
    cut to `max_contracts` and to `max_premium` dollars at risk (the premium paid is all a
    bought option can lose). `Size.qty` is the number of contracts; `cuts` say which cap cut it;
    `refused` says why none."""
    if ask <= 0:
        return Size(0, 0, refused=f"0 contracts: no ask to buy at ({ask})")
    unit = ask * multiplier  # the premium of one contract
    wanted = max(int((budget / unit).to_integral_value(rounding=ROUND_DOWN)), 0)
    if wanted == 0:
        return Size(
            0, 0, refused=f"0 contracts: budget {budget:.2f} is less than one contract at {ask}"
        )
    qty = wanted
    cuts: list[str] = []
    if max_contracts is not None and qty > max_contracts:
        qty = max(max_contracts, 0)
        cuts.append(f"max_contracts {max_contracts}")
    if max_premium is not None and qty * unit > max_premium:
        qty = max(int((max_premium / unit).to_integral_value(rounding=ROUND_DOWN)), 0)
        cuts.append(f"max_premium {max_premium:.2f}")
    if qty == 0:
        return Size(wanted, 0, tuple(cuts), refused=f"0 contracts after {', '.join(cuts)}")
    return Size(wanted, qty, tuple(cuts))
