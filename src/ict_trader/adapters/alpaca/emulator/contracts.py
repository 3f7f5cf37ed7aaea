"""GET /v2/options/contracts and /v2/options/contracts/{symbol_or_id}, as the trading spec has them.

The contracts themselves (which exist when, on which strikes) are `emulator.options`' business;
this module reads the query, filters, pages and writes each contract as the spec's
`OptionContract`: strings for the strike, multiplier, size and open interest, as Alpaca sends
them (alpaca-py's tests; alpaca_options.md §1). Filters as the spec lists them:
`underlying_symbols` (comma list; default every served underlying), `status` (default `active`),
`expiration_date`, `expiration_date_gte`, `expiration_date_lte` (without any of the three, the
spec's default: expiring "before the upcoming weekend", i.e. by the coming Sunday),
`root_symbol`, `type`, `style`, `strike_price_gte`, `strike_price_lte`, `ppind`, `limit`
(default 100, at most 10000) and `page_token`; `show_deliverables` adds each contract's one
deliverable (100 shares of the underlying). The single-contract route always shows them: the
spec says only the list hides them unless asked.

Contracts come in OCC-symbol order (underlying, expiry, calls before puts, strike); Alpaca's own
order is not documented. A page token is the last symbol of the previous page, base64-encoded
(Alpaca's tokens are opaque base64 too), so paging survives a new session's contracts appearing
between two pages. A bad parameter is refused as the trading API refuses one: 422 40010001.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ict_trader.adapters.alpaca.emulator import validation as check
from ict_trader.adapters.alpaca.emulator.assets import asset
from ict_trader.adapters.alpaca.emulator.errors import ApiError
from ict_trader.adapters.alpaca.emulator.options import (
    OptionMarket,
    contract_id,
    contract_name,
    plain,
)
from ict_trader.core.calendar import NEW_YORK
from ict_trader.core.instruments import OPTION_MULTIPLIER, Instrument, OptionRight

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class ContractQuery:
    """The filters of one GET /v2/options/contracts, validated."""

    underlyings: frozenset[str] | None
    status: str
    expires_on: date | None
    expires_from: date | None
    expires_until: date | None
    root: str | None
    right: OptionRight | None
    style: str | None
    strike_from: Decimal | None
    strike_until: Decimal | None
    ppind: bool | None
    deliverables: bool
    limit: int
    after: str | None  # the last symbol of the previous page

    def admits(self, contract: Instrument, active: bool) -> bool:
        assert contract.expiry is not None and contract.strike is not None
        day, strike = contract.expiry, contract.strike
        return (
            (self.underlyings is None or contract.root in self.underlyings)
            and (self.status == "active") == active
            and (self.expires_on is None or day == self.expires_on)
            and (self.expires_from is None or day >= self.expires_from)
            and (self.expires_until is None or day <= self.expires_until)
            and (self.root is None or contract.root == self.root)
            and (self.right is None or contract.right is self.right)
            and self.style in {None, "american"}
            and (self.strike_from is None or strike >= self.strike_from)
            and (self.strike_until is None or strike <= self.strike_until)
            and self.ppind in {None, True}
            and (self.after is None or contract.symbol > self.after)
        )


def parse_query(query: Mapping[str, str], now: datetime) -> ContractQuery:
    """Validate the query string of GET /v2/options/contracts (422 on a bad parameter)."""
    refusal = check.TRADING
    symbols = query.get("underlying_symbols", "")
    underlyings = frozenset(s.strip().upper() for s in symbols.split(",") if s.strip())
    expires_on = check.calendar_date(query, "expiration_date", check.TRADING)
    expires_from = check.calendar_date(query, "expiration_date_gte", check.TRADING)
    expires_until = check.calendar_date(query, "expiration_date_lte", check.TRADING)
    if expires_on is None and expires_from is None and expires_until is None:
        today = now.astimezone(NEW_YORK).date()
        expires_until = today + timedelta(days=6 - today.weekday())  # the coming Sunday
    right = check.choice(query, "type", {"", "call", "put"}, "", refusal)
    style = check.choice(query, "style", {"", "american", "european"}, "", refusal)
    root = query.get("root_symbol", "").strip().upper()
    return ContractQuery(
        underlyings=underlyings or None,
        status=check.choice(query, "status", {"active", "inactive"}, "active", refusal),
        expires_on=expires_on,
        expires_from=expires_from,
        expires_until=expires_until,
        root=root or None,
        right=OptionRight(right) if right else None,
        style=style or None,
        strike_from=check.number(query, "strike_price_gte", check.TRADING),
        strike_until=check.number(query, "strike_price_lte", check.TRADING),
        ppind=check.boolean(query, "ppind", refusal) if "ppind" in query else None,
        deliverables=check.boolean(query, "show_deliverables", refusal),
        limit=check.integer(query, "limit", DEFAULT_LIMIT, refusal, low=1, high=MAX_LIMIT),
        after=decode_token(query.get("page_token"), refusal),
    )


def contracts_page(market: OptionMarket, query: ContractQuery, now: datetime) -> dict[str, Any]:
    """One page of the listing: `option_contracts` and the `next_page_token` (null at the end)."""
    chosen = [
        c for c in market.listed(now, query.underlyings) if query.admits(c, market.active(c, now))
    ]
    page = chosen[: query.limit]
    token = encode_token(page[-1].symbol) if len(chosen) > query.limit else None
    return {
        "option_contracts": [contract_json(market, c, now, query.deliverables) for c in page],
        "next_page_token": token,
    }


def one_contract(market: OptionMarket, symbol_or_id: str, now: datetime) -> dict[str, Any]:
    """GET /v2/options/contracts/{symbol_or_id}: 404 with the spec's message when unlisted."""
    contract = market.contract(symbol_or_id, now)
    if contract is None:
        raise ApiError(404, 40410000, f"option contract {symbol_or_id} not found")
    return contract_json(market, contract, now, deliverables=True)


def contract_json(
    market: OptionMarket, contract: Instrument, now: datetime, deliverables: bool
) -> dict[str, Any]:
    """A contract as the spec's `OptionContract` writes it (`close_price` and its date are left
    out: no contract here traded before its expiry day, and the spec does not allow null)."""
    assert contract.expiry is not None and contract.strike is not None
    assert contract.right is not None
    active = market.active(contract, now)
    underlying = asset(contract.root)
    session = market.session_of(contract)
    body: dict[str, Any] = {
        "id": contract_id(contract.symbol),
        "symbol": contract.symbol,
        "name": contract_name(contract),
        "status": "active" if active else "inactive",
        "tradable": active,
        "expiration_date": contract.expiry.isoformat(),
        "root_symbol": contract.root,
        "underlying_symbol": contract.root,
        "underlying_asset_id": underlying.id,
        "type": contract.right.value,
        "style": "american",
        "strike_price": plain(contract.strike),
        "multiplier": str(OPTION_MULTIPLIER),
        "size": str(OPTION_MULTIPLIER),
        "open_interest": str(market.settings.open_interest),
        "ppind": True,  # QQQ, SPY and IWM quote in pennies at any price (Penny Program)
    }
    if session.previous_day is not None:  # open interest is the previous day's count
        body["open_interest_date"] = session.previous_day.isoformat()
    if deliverables:
        body["deliverables"] = [
            {
                "type": "equity",
                "symbol": contract.root,
                "asset_id": underlying.id,
                "amount": str(OPTION_MULTIPLIER),
                "allocation_percentage": "100",
                "settlement_type": "T+1",
                "settlement_method": "CCC",
                "delayed_settlement": False,
            }
        ]
    return body


def encode_token(symbol: str) -> str:
    """The page token that continues after `symbol` (contract and snapshot pages alike)."""
    return base64.urlsafe_b64encode(symbol.encode()).decode().rstrip("=")


def decode_token(raw: str | None, refusal: check.Refusal) -> str | None:
    """The symbol a page token continues after; a token the emulator did not write is
    refused as `refusal` says (422 on the trading API, 400 on market data)."""
    if not raw:
        return None
    try:
        symbol = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refusal.error(f"invalid page_token: {raw!r}") from None
    if not symbol.isalnum():
        raise refusal.error(f"invalid page_token: {raw!r}")
    return symbol
