"""What an order trades: a share of a stock or fund, or an option contract on one.

An instrument is named by its symbol everywhere it travels (bars, orders, fills, trades, store
rows): a share by its ticker (`QQQ`), an option by its OCC symbol (`QQQ241115C00500000`, the form
Alpaca uses). The OCC symbol spells out underlying, expiry, right and strike, so the symbol alone
is a complete key and `instrument_of` recovers the whole instrument from a stored row; nothing
else has to be kept in step with it.

The multiplier is what P&L needs: one option contract moves 100 shares' worth per dollar of
premium, a share moves one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache

from ict_trader.errors import ConfigError

CENT = Decimal("0.01")
OPTION_MULTIPLIER = 100  # standard US equity option: one contract is 100 shares
# Tickers as exchanges write them: letters, digits and a class dot (BRK.B); at most 10 long
# keeps client order ids within Alpaca's 48 characters.
_TICKER = re.compile(r"[A-Z][A-Z0-9.]{0,9}")
# OCC: root (1-6), YYMMDD, C/P, strike x 1000 in 8 digits.
_OCC = re.compile(r"([A-Z][A-Z0-9.]{0,5})(\d{2})(\d{2})(\d{2})([CP])(\d{8})")


class InstrumentKind(StrEnum):
    EQUITY = "equity"
    OPTION = "option"


class OptionRight(StrEnum):
    CALL = "call"
    PUT = "put"


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable thing. Option fields are None for shares."""

    symbol: str
    kind: InstrumentKind = InstrumentKind.EQUITY
    multiplier: int = 1
    tick: Decimal = CENT  # the smallest price step an order may carry
    underlying: str | None = None
    expiry: date | None = None
    strike: Decimal | None = None
    right: OptionRight | None = None

    @property
    def is_option(self) -> bool:
        return self.kind is InstrumentKind.OPTION

    @property
    def root(self) -> str:
        """The symbol signals are detected on: the underlying of an option, else itself."""
        return self.underlying if self.underlying is not None else self.symbol


def equity(symbol: str) -> Instrument:
    """A share of `symbol` (checked: a ticker, upper case)."""
    if not _TICKER.fullmatch(symbol):
        raise ConfigError(
            f"symbol {symbol!r} is not a ticker (upper-case letters, digits and '.', "
            "at most 10 characters, starting with a letter)"
        )
    return Instrument(symbol)


def option(underlying: str, expiry: date, right: OptionRight, strike: Decimal) -> Instrument:
    """An option contract with its OCC symbol, multiplier 100 and a cent tick."""
    thousandths = strike * 1000
    if strike <= 0 or thousandths != thousandths.to_integral_value() or thousandths >= 10**8:
        raise ValueError(f"strike {strike} cannot be written in an OCC symbol")
    letter = "C" if right is OptionRight.CALL else "P"
    symbol = f"{underlying}{expiry:%y%m%d}{letter}{int(thousandths):08d}"
    return Instrument(
        symbol=symbol,
        kind=InstrumentKind.OPTION,
        multiplier=OPTION_MULTIPLIER,
        underlying=underlying,
        expiry=expiry,
        strike=strike.normalize(),
        right=right,
    )


@lru_cache(maxsize=4096)
def instrument_of(symbol: str) -> Instrument:
    """The instrument a stored or received symbol names: an OCC symbol is an option."""
    match = _OCC.fullmatch(symbol)
    if match is None:
        return Instrument(symbol)
    root, yy, mm, dd, letter, strike = match.groups()
    return option(
        root,
        date(2000 + int(yy), int(mm), int(dd)),
        OptionRight.CALL if letter == "C" else OptionRight.PUT,
        Decimal(strike) / 1000,
    )
