"""The emulator's option market: which contracts exist at a moment and what they are quoted at.

Alpaca lists real contracts and, on the free plan, quotes them from its `indicative` feed — "a
free derivative of the original OPRA feed: the quotes are not actual OPRA quotes", priced by an
Alpaca staff member's account "based upon the option's greeks using the Black Scholes model"
(docs/options.md). A bar replay has no option data at all, so the emulator models both, with the
project's own pricing model (`ict_trader.options`), and says so wherever it matters:

- **Listing.** Every regular session of a served underlying is an expiry day (QQQ, SPY and IWM
  list daily expiries; 0DTE). A session's contracts are calls and puts on the strikes of
  `strike_grid` around the underlying's price at that session's open — its first regular-hours
  bar's open — `strikes` multiples of `strike_step` at or below it and as many above it. They
  are listed from that bar on (the replay knows no price of a session before its first bar, and
  would otherwise leak it) and are `active` until the session's close, `inactive` after it.
  Before a session's first bar no contract of it exists here.
- **Quotes.** `OptionModel` (Black-Scholes-Merton on the trading-minute clock) prices a contract
  from the underlying's current price — the open of its bar in progress, as share fills use —
  and a volatility: `volatility` if set, else the realized volatility of the underlying's last
  `volatility_window` regular-hours 1-minute returns (`ict_trader.options.volatility`), or
  `fallback_volatility` while fewer than `min_returns` are known. `spread` widens the model
  price into a bid and an ask on the $0.01 grid. A contract past its expiry close is worth its
  intrinsic value at the underlying's last regular-hours close of that day.
- **Snapshot conventions.** Alpaca's snapshot `impliedVolatility` and greeks are "calculated
  using the Black-Scholes model" on calendar time; the model's own volatility is on trading
  time (pricing.py). `calendar_terms` re-expresses the same price on calendar time (seconds to
  the expiry close / 365 days, with the volatility that gives the same total variance), so the
  snapshot's IV and theta (per calendar day) mean what Alpaca's mean; delta and gamma are the
  same on either clock.
- **Expiry-day clock** (Alpaca, "How To Trade 0DTE Options on Alpaca"): new orders for a
  contract expiring today are rejected from 15:30 ET for broad-based ETFs (`broad_based`) and
  15:15 for other underlyings; expiring positions are liquidated from 15:45 (broad-based) or
  15:30. The emulator counts these back from the session's close (30/15 and 45/30 minutes), so
  an early-close day shifts them with it — Alpaca does not say what it does then.

Nothing here is market data: open interest (`open_interest`) and quote sizes (`quote_size`) are
constants, and there is no volatility skew.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar, Session
from ict_trader.core.instruments import Instrument, OptionRight, instrument_of, option
from ict_trader.options.chain import QQQ_STRIKE_STEP, strike_grid
from ict_trader.options.pricing import (
    TRADING_DAYS_PER_YEAR,
    Greeks,
    OptionModel,
    OptionQuote,
    Spread,
    value,
)
from ict_trader.options.volatility import RealizedVolatility

# Alpaca's 0DTE article names SPY and QQQ "etc." as the broad-based ETFs with the later cut-offs
BROAD_BASED_ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA"})
CALENDAR_YEAR = timedelta(days=365).total_seconds()


@dataclass(frozen=True)
class OptionSettings:
    """How the emulator lists and prices option contracts, and the account's option permissions.

    Defaults: $1 strikes (QQQ's daily expiries near the money), 25 each side of the open; the
    underlying's realized volatility (25 % before 30 returns are known: about QQQ's realized
    volatility on the bundled sample); the model's default spread (the larger of $0.02 and 1 %
    of the price); level 3 (the spec's example account; Alpaca does not document the paper
    default) — level 2 is what buying calls and puts needs."""

    strike_step: Decimal = QQQ_STRIKE_STEP
    strikes: int = 25
    volatility: float | None = None  # trading-time, annualised; None: realized from the bars
    volatility_window: int = 390  # returns (one session of minutes)
    min_returns: int = 30
    fallback_volatility: float = 0.25
    spread: Spread = field(default_factory=Spread)
    rate: float = 0.0
    dividend: float = 0.0
    quote_size: int = 10  # contracts shown at the bid and at the ask (not modelled)
    open_interest: int = 1000  # not modelled: no open-interest data exists in a bar replay
    trading_level: int = 3  # the account's options_approved_level and options_trading_level
    broad_based: frozenset[str] = BROAD_BASED_ETFS
    liquidate: bool = True  # Alpaca's expiry-day liquidation; off only to study the close
    trade_delay: timedelta = timedelta(minutes=15)  # the indicative feed's trades are late

    def __post_init__(self) -> None:
        if self.strike_step <= 0 or self.strikes < 1:
            raise ValueError(f"strike step {self.strike_step} and strikes {self.strikes}")
        if self.trading_level not in {0, 1, 2, 3}:
            raise ValueError(f"options trading level {self.trading_level} is not 0, 1, 2 or 3")
        for name, number in (
            ("volatility", self.volatility),
            ("fallback_volatility", self.fallback_volatility),
        ):
            if number is not None and not (math.isfinite(number) and number >= 0):
                raise ValueError(f"{name} {number} is not a number >= 0")
        if self.volatility_window < 1 or self.min_returns < 1 or self.quote_size < 1:
            raise ValueError("volatility_window, min_returns and quote_size must be >= 1")

    def cutoff(self, underlying: str) -> timedelta:
        """How long before its expiry close new orders for a contract are rejected."""
        return timedelta(minutes=30 if underlying in self.broad_based else 45)

    def liquidation(self, underlying: str) -> timedelta:
        """How long before its expiry close Alpaca starts liquidating expiring positions."""
        return timedelta(minutes=15 if underlying in self.broad_based else 30)


def contract_id(symbol: str) -> str:
    """A contract's id: stable across runs, as Alpaca's ids are for a contract's life."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ict-trader-emulator/option/{symbol}"))


def contract_name(contract: Instrument) -> str:
    """Alpaca's contract name, e.g. "AAPL Nov 03 2023 170 Call"."""
    assert contract.expiry is not None and contract.strike is not None
    right = "Call" if contract.right is OptionRight.CALL else "Put"
    return f"{contract.root} {contract.expiry:%b %d %Y} {plain(contract.strike)} {right}"


def plain(amount: Decimal) -> str:
    """A decimal as Alpaca writes strikes: no exponent, no trailing zeros ("170", "172.5")."""
    text = format(amount.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def option_symbol(symbol: str) -> Instrument | None:
    """The option contract an OCC symbol names, or None for any other symbol."""
    contract = instrument_of(symbol)
    return contract if contract.is_option else None


@dataclass(frozen=True)
class ExpiryDay:
    """One session of an underlying as an expiry: when its contracts were listed and the prices
    they are listed around and settle at."""

    session: Session
    listed_at: datetime  # the session's first regular-hours bar
    open: Decimal  # that bar's open: the centre of the strike grid
    close: Decimal  # the session's last regular-hours close: what contracts settle against


@dataclass(frozen=True)
class CalendarTerms:
    """A quote's price re-expressed on calendar time, as Alpaca's snapshot reports it."""

    implied_volatility: float | None  # None at expiry: no time left to imply a volatility from
    greeks: Greeks  # theta per calendar day, vega per point of the calendar-time volatility


class OptionMarket:
    """The contracts of every served underlying and their modelled quotes (see the module)."""

    def __init__(
        self,
        bars: Mapping[str, Sequence[Bar]],
        calendar: NyseCalendar,
        settings: OptionSettings | None = None,
    ) -> None:
        self.settings = settings or OptionSettings()
        self.calendar = calendar
        self._bars = bars
        self._times = {name: [b.time for b in members] for name, members in bars.items()}
        self._volatility = {
            name: RealizedVolatility(window=self.settings.volatility_window) for name in bars
        }
        self._chains: dict[tuple[str, date], list[Instrument]] = {}
        self._by_id: dict[str, str] = {}
        self.model = OptionModel(
            rate=self.settings.rate,
            dividend=self.settings.dividend,
            spread=self.settings.spread,
            calendar=calendar,
        )

    @property
    def underlyings(self) -> tuple[str, ...]:
        return tuple(self._bars)

    # ------------------------------------------------------------------ listing

    @cached_property
    def _days(self) -> dict[str, dict[date, ExpiryDay]]:
        """Each underlying's sessions with at least one regular-hours bar, oldest first."""
        found: dict[str, dict[date, ExpiryDay]] = {name: {} for name in self._bars}
        for session in self.calendar.sessions():
            for name, members in self._bars.items():
                times = self._times[name]
                first = bisect.bisect_left(times, session.open)
                last = bisect.bisect_left(times, session.close) - 1
                if first > last:
                    continue
                found[name][session.day] = ExpiryDay(
                    session,
                    times[first],
                    Decimal(repr(members[first].open)),
                    Decimal(repr(members[last].close)),
                )
        return found

    def expiry_day(self, underlying: str, day: date) -> ExpiryDay | None:
        """`underlying`'s session on `day` as an expiry (None: no such session in the replay)."""
        return self._days.get(underlying, {}).get(day)

    def expiries(self, underlying: str, now: datetime) -> list[ExpiryDay]:
        """The expiry days of `underlying` whose contracts are listed at `now`."""
        return [d for d in self._days.get(underlying, {}).values() if d.listed_at <= now]

    def chain(self, underlying: str, day: ExpiryDay) -> list[Instrument]:
        """Every contract of one expiry day, in symbol order (calls, then puts, by strike)."""
        key = (underlying, day.session.day)
        contracts = self._chains.get(key)
        if contracts is None:
            strikes = strike_grid(
                day.open, step=self.settings.strike_step, count=self.settings.strikes
            )
            contracts = [
                option(underlying, day.session.day, right, strike)
                for right in (OptionRight.CALL, OptionRight.PUT)
                for strike in strikes
            ]
            self._chains[key] = contracts
            self._by_id.update((contract_id(c.symbol), c.symbol) for c in contracts)
        return contracts

    def listed(self, now: datetime, underlyings: Iterable[str] | None = None) -> list[Instrument]:
        """Every contract listed at `now` (of `underlyings`, default all), in symbol order."""
        chosen = self.underlyings if underlyings is None else underlyings
        found = [
            contract
            for name in chosen
            if name in self._bars
            for day in self.expiries(name, now)
            for contract in self.chain(name, day)
        ]
        found.sort(key=lambda c: c.symbol)
        return found

    def contract(self, symbol_or_id: str, now: datetime) -> Instrument | None:
        """The listed contract named by an OCC symbol or a contract id (None: not listed)."""
        contract = option_symbol(symbol_or_id.upper())
        if contract is None:
            for name in self.underlyings:  # ids are known once their chain has been built
                for listed_day in self.expiries(name, now):
                    self.chain(name, listed_day)
            symbol = self._by_id.get(symbol_or_id.lower())
            contract = option_symbol(symbol) if symbol is not None else None
        if contract is None or contract.expiry is None:
            return None
        expiring = self.expiry_day(contract.root, contract.expiry)
        if expiring is None or expiring.listed_at > now:
            return None
        listed = {c.symbol for c in self.chain(contract.root, expiring)}
        return contract if contract.symbol in listed else None

    def active(self, contract: Instrument, now: datetime) -> bool:
        """Listed and not yet past its expiry close."""
        return now < self.session_of(contract).close

    def session_of(self, contract: Instrument) -> Session:
        assert contract.expiry is not None
        day = self.expiry_day(contract.root, contract.expiry)
        assert day is not None, f"{contract.symbol} is not listed"
        return day.session

    def settlement_price(self, contract: Instrument) -> Decimal:
        """The underlying's last regular-hours close on the expiry day."""
        assert contract.expiry is not None
        day = self.expiry_day(contract.root, contract.expiry)
        assert day is not None, f"{contract.symbol} is not listed"
        return day.close

    # ------------------------------------------------------------------ quotes

    def observe(self, completed: Mapping[str, Bar]) -> None:
        """A regular-hours minute completed: its bars feed the realized volatility."""
        for name, bar in completed.items():
            tracker = self._volatility.get(name)
            if tracker is not None:
                tracker.update(bar)

    def volatility(self, underlying: str) -> float:
        """The (trading-time) volatility contracts on `underlying` are priced at now."""
        if self.settings.volatility is not None:
            return self.settings.volatility
        tracker = self._volatility[underlying]
        measured = tracker.value
        if measured is None or tracker.returns < self.settings.min_returns:
            return self.settings.fallback_volatility
        return measured

    def pricing_point(
        self, contract: Instrument, spot: Decimal, now: datetime
    ) -> tuple[Decimal, datetime]:
        """The underlying price and moment a contract is priced at: now, or — once past its
        expiry close — that close and the day's last regular-hours price."""
        close = self.session_of(contract).close
        if now >= close:
            return self.settlement_price(contract), close
        return spot, now

    def quote(self, contract: Instrument, spot: Decimal, now: datetime) -> OptionQuote:
        """The modelled quote of `contract` with the underlying at `spot` (see `pricing_point`)."""
        at_spot, moment = self.pricing_point(contract, spot, now)
        vol = self.volatility(contract.root)
        return self.model.quote(contract, float(at_spot), moment, vol)

    def calendar_terms(self, contract: Instrument, quote: OptionQuote) -> CalendarTerms:
        """The quote's volatility and greeks on calendar time (see the module docstring)."""
        assert contract.right is not None and contract.strike is not None
        assert quote.underlying is not None and quote.iv is not None
        trading_years = self.model.years(contract, quote.time)
        seconds = (self.session_of(contract).close - quote.time).total_seconds()
        calendar_years = max(seconds, 0.0) / CALENDAR_YEAR
        if trading_years == 0 or calendar_years == 0:
            vol = 0.0
        else:
            vol = quote.iv * math.sqrt(trading_years / calendar_years)
        valued = value(
            contract.right,
            quote.underlying,
            float(contract.strike),
            calendar_years,
            vol,
            rate=self.settings.rate,
            dividend=self.settings.dividend,
        )
        greeks = valued.greeks
        per_calendar_day = TRADING_DAYS_PER_YEAR / 365.0  # `value` reports theta per 1/252 year
        return CalendarTerms(
            implied_volatility=vol if calendar_years > 0 else None,
            greeks=Greeks(
                delta=greeks.delta,
                gamma=greeks.gamma,
                theta=greeks.theta * per_calendar_day,
                vega=greeks.vega,
                rho=greeks.rho,
            ),
        )
