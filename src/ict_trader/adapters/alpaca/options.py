"""Alpaca's option chain as the live shell's contract desk, through the unmodified alpaca-py.

The engine asks for "the same-day call (or put) on QQQ that `atm` picks" and is answered with
one quote; this module makes that answer from Alpaca's two option sources:

1. **The contracts listed** (`TradingClient.get_option_contracts`): the underlying, the expiry
   asked for, the right, strikes near the underlying. Alpaca pages the list and alpaca-py does
   not follow `next_page_token` (it makes one GET and hands the token back), so the pages are
   walked here; a strike missing from page 2 would otherwise be a strike never chosen.
2. **Their snapshots** (`OptionHistoricalDataClient.get_option_snapshot`): the latest bid and
   ask, the greeks and the implied volatility, which a `delta = D` rule needs and every
   premium is sized on. At most 100 symbols a request (Alpaca's limit; the SDK does not split).

Only the chosen strike is quoted for `atm` and `otm = N` (its market decides, not a neighbour's);
a delta rule needs every candidate's greeks first. A contract with no quote, an empty market
(no ask) or a crossed one (bid above ask) is not traded: the answer is `ContractUnavailable`
with the reason, and so is a failed call (the desk never raises into the engine's loop).

Quotes are `PremiumSource.BROKER`. On the free plan Alpaca's option feed is `indicative`, "a
free derivative of the original OPRA feed" whose prices Alpaca computes from the greeks: a
broker quote there is itself modelled (docs/options.md, "Live on Alpaca"). `feed=None` lets
Alpaca choose (OPRA with a subscription, otherwise indicative). Alpaca's implied volatility is
on a calendar-time clock, not the trading-minute clock of `options/pricing.py`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import OptionsFeed
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.models.snapshots import OptionsSnapshot
from alpaca.data.requests import OptionSnapshotRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import ContractType
from alpaca.trading.models import OptionContractsResponse
from alpaca.trading.requests import GetOptionContractsRequest
from pydantic import ValidationError

from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.events import ContractQuoted, ContractUnavailable, RequestContract
from ict_trader.core.instruments import CENT, Instrument, OptionRight, instrument_of
from ict_trader.errors import ConfigError
from ict_trader.options.chain import (
    DeltaTarget,
    Otm,
    StrikeRule,
    as_decimal,
    choose_strike,
    parse_strike_rule,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SNAPSHOT_BATCH = 100  # Alpaca's limit on symbols per snapshot request
CONTRACT_PAGE = 1000  # contracts per page asked for (Alpaca allows up to 10,000)
MAX_PAGES = 50  # a server handing out tokens forever is a fault, not a chain
# Strikes looked up around the underlying: at least this many dollars either side, or this
# share of the price (QQQ near $500: +-$15, fifteen $1 strikes each way).
STRIKE_WINDOW = Decimal(10)
STRIKE_WINDOW_SHARE = Decimal("0.03")
MAX_QUOTE_AGE = timedelta(minutes=5)  # an older quote is no market to size on
_FAILURES = (APIError, requests.RequestException, ValidationError)


class DeskError(Exception):
    """Why a request cannot be answered, in words for the skip the engine records."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A tradable contract of the day's chain: its OCC symbol and what that symbol spells."""

    symbol: str
    instrument: Instrument

    @property
    def strike(self) -> Decimal:
        assert self.instrument.strike is not None
        return self.instrument.strike


def _direct(call: Callable[[], T]) -> T:
    return call()


class AlpacaContractDesk:
    """Implements the core's `ContractDesk` on Alpaca's contracts and option snapshots.

    `read` runs each call (the live broker passes its bounded retry with backoff); `trading`
    should be a client with the SDK's own retries off, as the broker's read client is."""

    def __init__(
        self,
        trading: TradingClient,
        data: OptionHistoricalDataClient,
        *,
        read: Callable[[Callable[[], Any]], Any] = _direct,
        feed: OptionsFeed | None = None,
        max_quote_age: timedelta = MAX_QUOTE_AGE,
        page_size: int = CONTRACT_PAGE,
    ) -> None:
        self.trading = trading
        self.data = data
        self._read = read
        self.feed = feed
        self.max_quote_age = max_quote_age
        self.page_size = page_size

    # ------------------------------------------------------------------ ContractDesk

    def quote_contract(self, request: RequestContract) -> ContractQuoted | ContractUnavailable:
        """The contract `request.strike_rule` picks among the listed ones, quoted; or why not."""
        try:
            quote = self._pick(request)
        except DeskError as exc:
            return ContractUnavailable(request.time, request.request_id, str(exc))
        return ContractQuoted(request.time, request.request_id, quote)

    def quote(self, symbol: str, at: datetime) -> ContractQuote | None:
        """A held contract's quote now (None: no usable one). A failed call raises: the shell
        counts it as a broker error and the engine keeps the last mark."""
        try:
            snapshot = self._snapshots([symbol]).get(symbol)
        except ValidationError as exc:  # an answer alpaca-py cannot read: no mark this time
            log.warning("no mark for %s: %s", symbol, _said(exc))
            return None
        try:
            return _usable(symbol, snapshot, at, self.max_quote_age)
        except DeskError as exc:
            log.info("no mark for %s: %s", symbol, exc)
            return None

    # ------------------------------------------------------------------ picking

    def _pick(self, request: RequestContract) -> ContractQuote:
        try:
            rule = parse_strike_rule(request.strike_rule)
        except ConfigError as exc:
            raise DeskError(str(exc)) from None
        try:
            listed = self.contracts(request, rule)
        except _FAILURES as exc:
            raise DeskError(f"Alpaca's option contracts call failed: {_said(exc)}") from None
        what = f"{request.right} on {request.underlying} expiring {request.expiry}"
        if not listed:
            raise DeskError(f"Alpaca lists no tradable {what} near {request.spot}")
        by_strike = {contract.strike: contract for contract in listed}
        try:
            snapshots: dict[str, OptionsSnapshot | None] = {}
            deltas: dict[Decimal, float | None] | None = None
            if isinstance(rule, DeltaTarget):
                snapshots = self._snapshots([c.symbol for c in listed])
                deltas = {c.strike: _delta(snapshots.get(c.symbol)) for c in listed}
            strike = choose_strike(rule, request.right, request.spot, by_strike, deltas)
            if strike is None:
                raise DeskError(f"no listed {what} fits '{rule}' (spot {request.spot})")
            chosen = by_strike[strike].symbol
            if chosen not in snapshots:
                snapshots = self._snapshots([chosen])
        except _FAILURES as exc:
            raise DeskError(f"Alpaca's option snapshot call failed: {_said(exc)}") from None
        return _usable(chosen, snapshots.get(chosen), request.time, self.max_quote_age)

    def contracts(self, request: RequestContract, rule: StrikeRule | None = None) -> list[Listed]:
        """Every tradable contract of `request`'s underlying, expiry and right with a strike
        near the spot, over all of Alpaca's pages, by strike."""
        spot = as_decimal(request.spot)
        window = max(STRIKE_WINDOW, spot * STRIKE_WINDOW_SHARE)
        if isinstance(rule, Otm):  # room for N strikes out of the money even at $1 apart
            window = max(window, Decimal(rule.steps + 5))
        low, high = max(spot - window, Decimal(0)), spot + window
        found: dict[str, Listed] = {}
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            asked = GetOptionContractsRequest(
                underlying_symbols=[request.underlying],
                expiration_date=request.expiry,
                type=ContractType.CALL if request.right is OptionRight.CALL else ContractType.PUT,
                strike_price_gte=_plain(low),
                strike_price_lte=_plain(high),
                limit=self.page_size,
                page_token=token,
            )
            page = self._read(functools.partial(self.trading.get_option_contracts, asked))
            assert isinstance(page, OptionContractsResponse)
            for contract in page.option_contracts or []:
                listed = _listed(contract.symbol, contract.tradable, request)
                if listed is not None:
                    found[listed.symbol] = listed
            token = page.next_page_token
            if not token:
                break
            if token in seen:
                raise DeskError(f"Alpaca's contract pages loop (token {token!r} came twice)")
            seen.add(token)
        else:
            raise DeskError(f"Alpaca's contract list did not end within {MAX_PAGES} pages")
        return sorted(found.values(), key=lambda contract: contract.strike)

    def _snapshots(self, symbols: Sequence[str]) -> dict[str, OptionsSnapshot | None]:
        """The snapshots of `symbols`, 100 a request (alpaca-py follows the answer's pages)."""
        out: dict[str, OptionsSnapshot | None] = {}
        for start in range(0, len(symbols), SNAPSHOT_BATCH):
            batch = list(symbols[start : start + SNAPSHOT_BATCH])
            asked = OptionSnapshotRequest(symbol_or_symbols=batch, feed=self.feed)
            answer = self._read(functools.partial(self.data.get_option_snapshot, asked))
            assert isinstance(answer, dict)
            out.update(answer)
        return out


def _listed(symbol: str, tradable: bool, request: RequestContract) -> Listed | None:
    """The contract if it is one the request can trade: tradable, and its symbol spells the
    underlying, expiry and right asked for (Alpaca filters by them; this is not trusted blind)."""
    instrument = instrument_of(symbol)
    if (
        not tradable
        or not instrument.is_option
        or instrument.underlying != request.underlying
        or instrument.expiry != request.expiry
        or instrument.right is not request.right
    ):
        return None
    return Listed(symbol, instrument)


def _delta(snapshot: OptionsSnapshot | None) -> float | None:
    if snapshot is None or snapshot.greeks is None:
        return None
    return snapshot.greeks.delta


def _usable(
    symbol: str, snapshot: OptionsSnapshot | None, at: datetime, max_age: timedelta
) -> ContractQuote:
    """`symbol`'s snapshot as a quote to trade on, or a DeskError saying what is wrong with it.

    Prices go onto the cent grid Alpaca's orders use, outward (bid down, ask up), so a limit at
    the ask stays marketable and a premium is never understated."""
    quote = snapshot.latest_quote if snapshot is not None else None
    if quote is None:
        raise DeskError(f"Alpaca has no quote for {symbol}")
    bid = as_decimal(quote.bid_price).quantize(CENT, rounding=ROUND_FLOOR)
    ask = as_decimal(quote.ask_price).quantize(CENT, rounding=ROUND_CEILING)
    if ask <= 0:
        raise DeskError(f"{symbol} has an empty market: no ask (bid {bid}, ask {ask})")
    if bid < 0 or bid > ask:
        raise DeskError(f"{symbol} has a crossed market: bid {bid} above ask {ask}")
    age = at - quote.timestamp
    if age > max_age:
        raise DeskError(
            f"{symbol}'s quote is {age.total_seconds() / 60:.0f} minutes old "
            f"({quote.timestamp:%H:%M:%S}Z): no market to trade on"
        )
    assert snapshot is not None
    greeks = snapshot.greeks
    return ContractQuote(
        symbol=symbol,
        time=quote.timestamp,
        bid=bid,
        ask=ask,
        source=PremiumSource.BROKER,
        delta=greeks.delta if greeks is not None else None,
        iv=snapshot.implied_volatility,
    )


def _plain(amount: Decimal) -> str:
    """A strike bound as alpaca-py types it (a string), in plain digits: `485.5`, not `4.855E+2`."""
    return f"{amount.quantize(CENT):f}"


def _said(exc: BaseException) -> str:
    """The error in one short line (an APIError's message, else the exception's text)."""
    if isinstance(exc, APIError):
        try:
            return f"HTTP {exc.status_code}: {exc.message}"[:200]
        except (KeyError, ValueError):
            pass
    return f"{type(exc).__name__}: {exc}"[:200]


def held_options(positions: Iterable[str]) -> list[str]:
    """The OCC symbols among `positions` (the engine's open positions' keys), sorted."""
    return sorted(symbol for symbol in positions if instrument_of(symbol).is_option)
