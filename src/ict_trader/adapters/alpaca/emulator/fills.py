"""Paper-fill rules for a bar replay: quotes from bars, marketability, collars and allowances.

Alpaca's paper engine fills against the live NBBO (alpaca-docs content/trading/paper-trading.md,
"Rules and Assumptions"); a bar replay has no quotes, so the emulator derives them (an emulator
choice, documented here so tests and readers can check it):

- the quote at a price point is `bid = price - spread/2`, `ask = price + spread/2`; between bars
  the price is the open of the bar in progress (the latest trade);
- inside a completed bar the trades spanned [low, high], so the bid spanned
  [low - spread/2, high - spread/2] and the ask [low + spread/2, high + spread/2]: a sell limit was
  marketable during the bar if `high - spread/2 >= limit`, a buy limit if `low + spread/2 <= limit`;
- a stop is elected by a trade at or through it (orders.md, "Order Handling Standards"): a sell
  stop when `low <= stop`, a buy stop when `high >= stop`; it then fills as a market order at the
  bid (sell) or ask (buy) of that trade.

Pure functions on Decimals, so the rules can be property-tested on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

CENT = Decimal("0.01")
_FIFTY = Decimal(50)


@dataclass(frozen=True)
class Quote:
    """Best bid and offer derived from one price."""

    bid: Decimal
    ask: Decimal

    def for_side(self, side: str) -> Decimal:
        """The price a marketable order on `side` trades at: buyers lift the ask, sellers hit
        the bid."""
        return self.ask if side == "buy" else self.bid


def quote(price: Decimal, spread: Decimal) -> Quote:
    half = spread / 2
    return Quote(bid=price - half, ask=price + half)


def limit_marketable(side: str, limit: Decimal, at: Quote) -> bool:
    """paper-trading.md: a buy limit fills once `limit >= ask`, a sell limit once `limit <= bid`."""
    return at.ask <= limit if side == "buy" else at.bid >= limit


def limit_reached_in_bar(
    side: str, limit: Decimal, high: Decimal, low: Decimal, spread: Decimal
) -> bool:
    """Whether the quote was marketable against `limit` at some moment of a bar [low, high]."""
    half = spread / 2
    return low + half <= limit if side == "buy" else high - half >= limit


def stop_elected(side: str, stop: Decimal, high: Decimal, low: Decimal) -> bool:
    """A trade at or through the stop elects it (buy stops from above, sell stops from below)."""
    return high >= stop if side == "buy" else low <= stop


def buy_stop_collar(stop: Decimal) -> Decimal:
    """orders.md "Stop Order": Alpaca converts buy stops into stop-limits with a limit 4 % above
    a stop under $50, 2.5 % above a stop of $50 or more (sell stops are not converted). Rounded
    down to the cent, the grid a limit price must be on."""
    factor = Decimal("1.04") if stop < _FIFTY else Decimal("1.025")
    return (stop * factor).quantize(CENT, rounding=ROUND_DOWN)


def market_buy_price_allowance(price: Decimal) -> Decimal:
    """orders.md "Buying Power": a market buy is valued as a limit "2.5% to 4% above the current
    market price". The docs do not say which; the emulator uses the same split as the buy-stop
    collar of the same page (4 % under $50, 2.5 % from $50), so QQQ is valued at +2.5 %."""
    factor = Decimal("1.04") if price < _FIFTY else Decimal("1.025")
    return (price * factor).quantize(CENT, rounding=ROUND_UP)


def short_sale_price(ask: Decimal, limit: Decimal | None) -> Decimal:
    """orders.md "Buying Power": an opening short is valued at MAX(limit, ask + 3 %); a market
    short at ask + 3 %."""
    marked_up = (ask * Decimal("1.03")).quantize(CENT, rounding=ROUND_UP)
    return max(limit, marked_up) if limit is not None else marked_up
