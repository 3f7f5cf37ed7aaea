"""The symbols an emulator serves: their bars on one clock, and the asset each one is.

An emulator serves one symbol or several (as Alpaca serves every listed asset): it is given
bars as a mapping symbol -> bars, or as one sequence of bars that name their symbol
(`Bar.symbol`; bars that name none belong to the default symbol). The replay's clock steps
through every minute at which at least one served symbol has a bar; a symbol without a bar in
such a minute simply had no trade then (DIA in the real 2025 files has six such minutes) —
no bar on the stream, none in history, as on Alpaca, whose bars exist only for minutes with
trades ([OAS] market-data-api.json; alpaca_api.md §4.1 "only minutes with valid trades produce
a bar").

The asset route (GET /v2/assets/{symbol_or_asset_id}) knows only the served symbols; their ids,
names and listing exchanges come from `KNOWN` for the ETFs the project's data holds (QQQ's id is
Alpaca's, from alpaca_api.md; the others are generated, stable emulator ids) and are generic for
any other symbol.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import NamedTuple

from ict_trader.core.bars import Bar

DEFAULT_SYMBOL = "QQQ"  # the emulator's one symbol before it served several
QQQ_ASSET_ID = "b6d1aa75-5c9c-4353-a305-9e2caa1925ab"

Bars = Sequence[Bar] | Mapping[str, Sequence[Bar]]


class Asset(NamedTuple):
    """What the assets route says of a served symbol (all are active, tradable, shortable)."""

    id: str
    name: str
    exchange: str  # the spec's Exchange enum: AMEX, ARCA, BATS, NYSE, NASDAQ, NYSEARCA, OTC


def _generated_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ict-trader-emulator/asset/{symbol}"))


KNOWN = {
    "QQQ": Asset(QQQ_ASSET_ID, "Invesco QQQ Trust, Series 1", "NASDAQ"),
    "SPY": Asset(_generated_id("SPY"), "SPDR S&P 500 ETF Trust", "ARCA"),
    "IWM": Asset(_generated_id("IWM"), "iShares Russell 2000 ETF", "ARCA"),
    "DIA": Asset(_generated_id("DIA"), "SPDR Dow Jones Industrial Average ETF Trust", "ARCA"),
}


@cache
def asset(symbol: str) -> Asset:
    """The asset of `symbol` (upper case): a known ETF's, or a generic one."""
    return KNOWN.get(symbol) or Asset(_generated_id(symbol), symbol, "NYSE")


def by_symbol(bars: Bars, symbol: str | None = None) -> dict[str, list[Bar]]:
    """Each served symbol's bars, oldest first, in the order the symbols were given.

    A mapping names the symbols (`symbol`, if given, must be one of them and comes first: the
    account's default symbol). A sequence serves `symbol` (default QQQ) alone unless its bars
    name their symbols: each bar goes to `bar.symbol`, or to `symbol` when it names none.
    Raises ValueError for no bars at all, a symbol without bars, or bars out of time order."""
    grouped: dict[str, list[Bar]] = {}
    if isinstance(bars, Mapping):
        for name, members in bars.items():
            grouped.setdefault(name.strip().upper(), []).extend(members)
        if symbol is not None:
            first = symbol.strip().upper()
            if first not in grouped:
                raise ValueError(f"default symbol {first} has no bars")
            grouped = {first: grouped.pop(first), **grouped}
    else:
        default = (symbol or DEFAULT_SYMBOL).strip().upper()
        named = [_symbol_of(bar) for bar in bars]
        if not any(named):
            grouped[default] = list(bars)
        else:
            for bar, name in zip(bars, named, strict=True):
                grouped.setdefault((name or default).upper(), []).append(bar)
    if not grouped or not any(grouped.values()):
        raise ValueError("the emulator needs at least one bar to replay")
    for name, members in grouped.items():
        if not name:
            raise ValueError("a served symbol needs a name")
        if not members:
            raise ValueError(f"no bars for {name}")
        if any(b.time >= a.time for b, a in itertools.pairwise(members)):
            raise ValueError(f"{name}'s bars are not in time order, one per minute")
    return grouped


def _symbol_of(bar: Bar) -> str:
    """The symbol a bar names ("" for a bar of a file that does not say)."""
    return bar.symbol


def clock(bars: Mapping[str, Sequence[Bar]]) -> tuple[list[datetime], dict[str, list[int]]]:
    """The replay's minutes (every minute in which some symbol has a bar, oldest first) and,
    per symbol, the minute index of each of its bars."""
    if len(bars) == 1:  # one symbol: its bars are the clock (the common case, kept cheap)
        ((name, members),) = bars.items()
        return [b.time for b in members], {name: list(range(len(members)))}
    times = sorted({b.time for members in bars.values() for b in members})
    index = {moment: i for i, moment in enumerate(times)}
    return times, {name: [index[b.time] for b in members] for name, members in bars.items()}
