"""GET /v1beta1/options/snapshots and /v1beta1/options/snapshots/{underlying_symbol} (the chain).

The market-data spec's `option_snapshots_resp`: `snapshots` keyed by contract symbol, each with
`latestQuote` (bid/ask, sizes, exchanges, condition, time), `latestTrade`, `impliedVolatility`
and `greeks`, and `next_page_token`. Every figure is modelled (`emulator.options`): the quote is
the model's bid and ask at the emulator's clock; the implied volatility and greeks are the same
price on calendar time, as Alpaca reports them; the latest trade is a one-contract print at the
model's mid (rounded to the cent) — on the `indicative` feed `trade_delay` (15 minutes) back,
as Alpaca's free feed delays trades, on `opra` at the current minute; a contract listed less
than that long has no trade yet. Sizes, exchange codes and conditions are constants. The spec's
optional `dailyBar`, `minuteBar` and `prevDailyBar` are not served (alpaca-py drops them too).

`feed`: `indicative` or `opra`, default as the spec says — `opra` with a subscription (the
emulator's paid data plan), otherwise `indicative`. The chain lists the underlying's active
contracts; `/snapshots` answers for the listed contracts among `symbols` (at most 100; others are
left out). Both filter by `updated_since` and page by `limit` (default 100, at most 1000) in
symbol order. Bad parameters: 400, as the market-data spec lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ict_trader.adapters.alpaca.emulator import validation as check
from ict_trader.adapters.alpaca.emulator.contracts import decode_token, encode_token
from ict_trader.adapters.alpaca.emulator.paper import PaperAccount
from ict_trader.core.instruments import CENT, Instrument, OptionRight

MAX_SYMBOLS = 100
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
EXCHANGE = "C"  # an OPRA participant code (Cboe); the emulator's quotes come from no exchange
QUOTE_CONDITION = " "  # a regular quote
TRADE_CONDITION = "I"  # as in the spec's example trades


@dataclass(frozen=True)
class SnapshotQuery:
    """What both snapshot routes share: feed, `updated_since` and paging."""

    feed: str
    updated_since: datetime | None
    limit: int
    after: str | None


@dataclass(frozen=True)
class ChainFilter:
    """The chain route's contract filters."""

    right: OptionRight | None
    strike_from: float | None
    strike_until: float | None
    expires_on: date | None
    expires_from: date | None
    expires_until: date | None
    root: str | None

    def admits(self, contract: Instrument) -> bool:
        assert contract.expiry is not None and contract.strike is not None
        strike, day = float(contract.strike), contract.expiry
        return (
            (self.right is None or contract.right is self.right)
            and (self.strike_from is None or strike >= self.strike_from)
            and (self.strike_until is None or strike <= self.strike_until)
            and (self.expires_on is None or day == self.expires_on)
            and (self.expires_from is None or day >= self.expires_from)
            and (self.expires_until is None or day <= self.expires_until)
            and (self.root is None or contract.root == self.root)
        )


def parse_query(query: Mapping[str, str], paid_plan: bool) -> SnapshotQuery:
    refusal = check.MARKET_DATA
    default = "opra" if paid_plan else "indicative"
    return SnapshotQuery(
        feed=check.choice(query, "feed", {"opra", "indicative"}, default, refusal),
        updated_since=check.moment(query, "updated_since", refusal),
        limit=check.integer(query, "limit", DEFAULT_LIMIT, refusal, low=1, high=MAX_LIMIT),
        after=decode_token(query.get("page_token"), refusal),
    )


def parse_symbols(query: Mapping[str, str]) -> list[str]:
    """The `symbols` of /snapshots: required, comma-separated, at most 100."""
    raw = check.text(query, "symbols", check.MARKET_DATA, required=True)
    symbols = sorted({s.strip().upper() for s in raw.split(",") if s.strip()})
    if len(symbols) > MAX_SYMBOLS:
        raise check.MARKET_DATA.error(f"symbols: at most {MAX_SYMBOLS} symbols per request")
    return symbols


def parse_chain(query: Mapping[str, str]) -> ChainFilter:
    refusal = check.MARKET_DATA
    right = check.choice(query, "type", {"", "call", "put"}, "", refusal)
    root = query.get("root_symbol", "").strip().upper()
    return ChainFilter(
        right=OptionRight(right) if right else None,
        strike_from=_float(check.number(query, "strike_price_gte", check.MARKET_DATA)),
        strike_until=_float(check.number(query, "strike_price_lte", check.MARKET_DATA)),
        expires_on=check.calendar_date(query, "expiration_date", check.MARKET_DATA),
        expires_from=check.calendar_date(query, "expiration_date_gte", check.MARKET_DATA),
        expires_until=check.calendar_date(query, "expiration_date_lte", check.MARKET_DATA),
        root=root or None,
    )


def snapshots_page(
    account: PaperAccount, contracts: list[Instrument], query: SnapshotQuery
) -> dict[str, Any]:
    """One page of snapshots of `contracts` (in symbol order) and the next page's token."""
    chosen: list[tuple[str, dict[str, Any]]] = []
    following: str | None = None
    for contract in sorted(contracts, key=lambda c: c.symbol):
        if query.after is not None and contract.symbol <= query.after:
            continue
        snapshot = snapshot_json(account, contract, query.feed)
        if query.updated_since is not None and not _updated_since(snapshot, query.updated_since):
            continue
        if len(chosen) == query.limit:
            following = encode_token(chosen[-1][0])
            break
        chosen.append((contract.symbol, snapshot))
    return {"snapshots": dict(chosen), "next_page_token": following}


def snapshot_json(account: PaperAccount, contract: Instrument, feed: str) -> dict[str, Any]:
    """One contract's snapshot at the emulator's clock (see the module docstring)."""
    market = account.option_market
    now = account.now
    quote = market.quote(contract, account.mark(contract.root), now)
    terms = market.calendar_terms(contract, quote)
    size = market.settings.quote_size
    snapshot: dict[str, Any] = {
        "latestQuote": {
            "ap": float(quote.ask),
            "as": size,
            "ax": EXCHANGE,
            "bp": float(quote.bid),
            "bs": size if quote.bid > 0 else 0,
            "bx": EXCHANGE,
            "c": QUOTE_CONDITION,
            "t": _ts(quote.time),
        },
        "greeks": {
            "delta": terms.greeks.delta,
            "gamma": terms.greeks.gamma,
            "rho": terms.greeks.rho,
            "theta": terms.greeks.theta,
            "vega": terms.greeks.vega,
        },
    }
    if terms.implied_volatility is not None:
        snapshot["impliedVolatility"] = terms.implied_volatility
    delay = market.settings.trade_delay if feed == "indicative" else None
    traded_at = quote.time - delay if delay is not None else quote.time
    assert contract.expiry is not None
    day = market.expiry_day(contract.root, contract.expiry)
    if day is not None and traded_at >= day.listed_at:
        then = market.quote(contract, account.price_at(contract.root, traded_at), traded_at)
        price = max(then.mid.quantize(CENT, rounding=ROUND_HALF_UP), CENT)
        snapshot["latestTrade"] = {
            "c": TRADE_CONDITION,
            "p": float(price),
            "s": 1,
            "t": _ts(then.time),
            "x": EXCHANGE,
        }
    return snapshot


def _updated_since(snapshot: dict[str, Any], since: datetime) -> bool:
    """The spec: "the timestamp of the trade or the quote is greater than or equal to" it."""
    stamps = [snapshot["latestQuote"]["t"]]
    if "latestTrade" in snapshot:
        stamps.append(snapshot["latestTrade"]["t"])
    return any(datetime.fromisoformat(s.replace("Z", "+00:00")) >= since for s in stamps)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
