"""Black-Scholes-Merton prices, greeks and implied volatility of European calls and puts, on a
trading-time clock; and the modelled bid/ask an option quote is given when no real one exists.

The clock: trading time
-----------------------
Time to expiry is counted in **regular-session minutes** left until the close of the expiry day
(16:00 New York; the session's own close on an early-close day when a calendar is given), and
a year is 252 sessions of 390 minutes: `years = minutes / 98,280` (`MINUTES_PER_YEAR`). Nights,
weekends and holidays take no time; before the open a day's whole 390 minutes are still ahead,
after the expiry day's close none is.

Why trading time rather than calendar seconds / 365 days: ict-trader trades same-day (0DTE)
contracts and its volatility comes from the underlying's 1-minute bars. A minute's return has
the same variance at 10:00 and at 15:59, so the variance left to expiry is proportional to the
minutes of trading left, not to the wall-clock time (at 09:00 a 0DTE option has 390 minutes of
risk ahead, not 7 hours plus a night). With realized volatility annualised on the same clock
(`volatility.py`: per-minute variance x 98,280), `vol**2 x years` is exactly per-minute variance x
minutes left: the volatility a user sets, the one measured from bars and the one implied from
a quote all mean the same thing. The price of this choice: implied volatilities are on a
trading-time scale, not comparable to a calendar-time IV such as Alpaca's snapshot
`impliedVolatility` (during a session a trading-time IV is ~0.43 times the calendar-time IV of
the same price: sqrt(98,280 / 525,600)); deltas are comparable (they depend on
`vol x sqrt(years)` only, up to the rate terms). The rate and the dividend yield run on the same
clock, within a session about 5 times faster than on the calendar, so they overstate the carry
of a same-day contract: leave them at 0 (the default) for 0DTE — the carry left out is worth
less than a cent on an at-the-money QQQ contract over a whole session — and with them at 0 a
European price is also the American one.

Units
-----
Prices in dollars per share of the underlying (one contract is 100 of them). `delta` per $1 of
the underlying; `gamma` per $1 per $1; `theta` per **trading day** (1/252 of a year: the value
that 390 trading minutes take away; `theta_per_minute` is 1/390 of it), negative for a long
option as time passes; `vega` per 1 volatility point (0.01); `rho` per 1 percentage point of the
rate (0.01).

At expiry (no time left) or with zero volatility the value is the discounted forward's intrinsic
value (at expiry: max(S - K, 0) for a call, max(K - S, 0) for a put); delta is 0 or +/-1 (+/-1/2
exactly at the money); gamma, vega, theta and rho are 0 there (theta and rho of a deep
in-the-money contract with zero volatility but time left are those of its deterministic value).
No division by zero happens on any input the functions accept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.instruments import CENT, Instrument, OptionRight

TRADING_DAYS_PER_YEAR = 252
MINUTES_PER_SESSION = 390  # 09:30-16:00 New York
MINUTES_PER_YEAR = TRADING_DAYS_PER_YEAR * MINUTES_PER_SESSION  # 98,280
OPEN = time(9, 30)
CLOSE = time(16, 0)
# The implied-volatility search covers 0 .. 1000 % a (trading-time) year; beyond it a price says
# more about a bad quote than about volatility.
MAX_VOLATILITY = 10.0
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


# ---------------------------------------------------------------------------- the clock


def years_to_expiry(moment: datetime, expiry: date, calendar: NyseCalendar | None = None) -> float:
    """Trading time from `moment` (timezone-aware) to the close of `expiry`'s session, in years
    of 98,280 minutes (see the module's docstring). 0 from the expiry day's close on.

    Without a calendar every weekday is a 09:30-16:00 session; with one, holidays take no time
    and an early-close day ends at its close (13:00), as the options expiring on it do.
    """
    if moment.tzinfo is None:
        raise ValueError(f"moment {moment} has no time zone")
    minutes = 0.0
    day = moment.astimezone(NEW_YORK).date()
    first = True
    while day <= expiry:
        hours = _session_hours(day, calendar)
        if hours is not None:
            open_, close = hours
            start = max(moment, open_) if first else open_
            if start < close:
                minutes += (close - start).total_seconds() / 60.0
        first = False
        day += timedelta(days=1)
    return minutes / MINUTES_PER_YEAR


def _session_hours(day: date, calendar: NyseCalendar | None) -> tuple[datetime, datetime] | None:
    if calendar is not None:
        session = calendar.session_on(day)
        return None if session is None else (session.open, session.close)
    if day.weekday() >= 5:
        return None
    return (
        datetime.combine(day, OPEN, NEW_YORK).astimezone(UTC),
        datetime.combine(day, CLOSE, NEW_YORK).astimezone(UTC),
    )


# ---------------------------------------------------------------------------- Black-Scholes-Merton


@dataclass(frozen=True, slots=True)
class Greeks:
    """Sensitivities of one option's price (per share), in the units of the module docstring."""

    delta: float
    gamma: float
    theta: float  # per trading day (390 trading minutes)
    vega: float  # per volatility point (0.01)
    rho: float  # per rate point (0.01)

    @property
    def theta_per_minute(self) -> float:
        return self.theta / MINUTES_PER_SESSION


@dataclass(frozen=True, slots=True)
class Valuation:
    """A model price with the volatility and time it was computed at, and its greeks."""

    price: float
    volatility: float
    years: float
    greeks: Greeks


def norm_cdf(x: float) -> float:
    """The standard normal distribution function, accurate in both tails (erfc, not 1 - erf)."""
    return 0.5 * math.erfc(-x / _SQRT_2)


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / _SQRT_2PI


def _check(
    spot: float, strike: float, years: float, vol: float, *, rate: float, dividend: float
) -> None:
    for name, value in (("spot", spot), ("strike", strike)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} {value} is not a positive number")
    for name, value in (("years", years), ("volatility", vol)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} {value} is not a number >= 0")
    for name, value in (("rate", rate), ("dividend yield", dividend)):
        if not math.isfinite(value):
            raise ValueError(f"{name} {value} is not a finite number")


def value(
    right: OptionRight,
    spot: float,
    strike: float,
    years: float,
    vol: float,
    *,
    rate: float = 0.0,
    dividend: float = 0.0,
) -> Valuation:
    """The Black-Scholes-Merton price and greeks of a European option.

    `years` on the trading-time clock (`years_to_expiry`), `vol` annualised on the same clock,
    `rate` and `dividend` continuously compounded per year. ValueError on a non-positive spot or
    strike, a negative time or volatility, or a non-finite input.
    """
    _check(spot, strike, years, vol, rate=rate, dividend=dividend)
    call = right is OptionRight.CALL
    carry = math.exp(-dividend * years)  # e^-qt
    discount = math.exp(-rate * years)  # e^-rt
    std = vol * math.sqrt(years)
    if std == 0.0:
        return _deterministic(
            call,
            spot,
            strike,
            years,
            vol,
            rate=rate,
            dividend=dividend,
            carry=carry,
            discount=discount,
        )
    d1 = (math.log(spot / strike) + (rate - dividend) * years) / std + 0.5 * std
    d2 = d1 - std
    density = norm_pdf(d1)
    sign = 1.0 if call else -1.0
    n1 = norm_cdf(sign * d1)
    n2 = norm_cdf(sign * d2)
    price = sign * (spot * carry * n1 - strike * discount * n2)
    delta = sign * carry * n1
    gamma = carry * density / (spot * std)
    vega = spot * carry * density * math.sqrt(years)
    decay = -spot * carry * density * vol / (2.0 * math.sqrt(years))
    theta = decay + sign * (dividend * spot * carry * n1 - rate * strike * discount * n2)
    rho = sign * strike * years * discount * n2
    return Valuation(
        price=max(price, 0.0),  # cancellation can leave -1e-17 on a worthless option
        volatility=vol,
        years=years,
        greeks=Greeks(
            delta=delta,
            gamma=gamma,
            theta=theta / TRADING_DAYS_PER_YEAR,
            vega=vega / 100.0,
            rho=rho / 100.0,
        ),
    )


def _deterministic(
    call: bool,
    spot: float,
    strike: float,
    years: float,
    vol: float,
    *,
    rate: float,
    dividend: float,
    carry: float,
    discount: float,
) -> Valuation:
    """No variance left (expired, or zero volatility): the discounted forward's intrinsic
    value; an in-the-money contract moves one for one (times e^-qt) with the underlying."""
    sign = 1.0 if call else -1.0
    moneyness = sign * (spot * carry - strike * discount)
    if moneyness > 0:
        weight = 1.0
    elif moneyness < 0:
        weight = 0.0
    else:
        weight = 0.5
    theta = 0.0
    rho = 0.0
    if years > 0 and weight:
        # d/dt of sign * (S e^-q(T-t) - K e^-r(T-t)) with t the passing time
        theta = weight * sign * (dividend * spot * carry - rate * strike * discount)
        rho = weight * sign * strike * years * discount
    return Valuation(
        price=max(moneyness, 0.0),
        volatility=vol,
        years=years,
        greeks=Greeks(
            delta=weight * sign * carry,
            gamma=0.0,
            theta=theta / TRADING_DAYS_PER_YEAR,
            vega=0.0,
            rho=rho / 100.0,
        ),
    )


def price(
    right: OptionRight,
    spot: float,
    strike: float,
    years: float,
    vol: float,
    *,
    rate: float = 0.0,
    dividend: float = 0.0,
) -> float:
    """The Black-Scholes-Merton price alone (see `value`)."""
    return value(right, spot, strike, years, vol, rate=rate, dividend=dividend).price


def price_bounds(
    right: OptionRight, spot: float, strike: float, years: float, *, rate: float, dividend: float
) -> tuple[float, float]:
    """(value at zero volatility, the limit as volatility grows): no European price lies
    outside. A call tends to S e^-qt, a put to K e^-rt."""
    carry = math.exp(-dividend * years)
    discount = math.exp(-rate * years)
    if right is OptionRight.CALL:
        return max(spot * carry - strike * discount, 0.0), spot * carry
    return max(strike * discount - spot * carry, 0.0), strike * discount


def implied_volatility(
    option_price: float,
    right: OptionRight,
    spot: float,
    strike: float,
    years: float,
    *,
    rate: float = 0.0,
    dividend: float = 0.0,
    tolerance: float = 1e-12,
) -> float | None:
    """The volatility (trading-time, annualised) at which the model gives `option_price`.

    None when no volatility in 0..`MAX_VOLATILITY` does: at expiry, at or below the zero-
    volatility value (no time value), or at or above the value at the top of the range (a call
    worth the share, a put worth the strike). ValueError on a negative or non-finite price or
    on inputs `value` refuses. The root is bracketed and found by Brent's method, so it
    converges on every input (to `tolerance` in volatility).
    """
    if not (math.isfinite(option_price) and option_price >= 0):
        raise ValueError(f"option price {option_price} is not a number >= 0")
    _check(spot, strike, years, 0.0, rate=rate, dividend=dividend)
    if years == 0:
        return None
    floor, _ = price_bounds(right, spot, strike, years, rate=rate, dividend=dividend)
    if option_price <= floor:
        return None

    def excess(vol: float) -> float:
        return price(right, spot, strike, years, vol, rate=rate, dividend=dividend) - option_price

    if excess(MAX_VOLATILITY) <= 0:
        return None

    return _brent(excess, 0.0, MAX_VOLATILITY, floor - option_price, tolerance)


def _brent(f: Callable[[float], float], a: float, b: float, fa: float, tolerance: float) -> float:
    """A root of f in [a, b], where f(a) < 0 < f(b) (Brent 1973: inverse quadratic
    interpolation and secant steps, bisection whenever they would not shrink the bracket)."""
    fb = f(b)
    c, fc = a, fa
    d = e = b - a
    for _ in range(200):
        if (fb > 0) == (fc > 0):
            c, fc = a, fa
            d = e = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol = 2.0 * 2.2e-16 * abs(b) + 0.5 * tolerance
        half = 0.5 * (c - b)
        if abs(half) <= tol or fb == 0.0:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:
                p = 2.0 * half * s
                q = 1.0 - s
            else:
                q, r = fa / fc, fb / fc
                p = s * (2.0 * half * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0:
                q = -q
            p = abs(p)
            if 2.0 * p < min(3.0 * half * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = half
        else:
            d = e = half
        a, fa = b, fb
        b += d if abs(d) > tol else math.copysign(tol, half)
        fb = f(b)
    return b


# ---------------------------------------------------------------------------- quotes


class QuoteSource(StrEnum):
    """Where a quote's prices come from: the pricing model (every figure derived from it must
    be labelled "modelled") or a user's quote file (real prices)."""

    MODEL = "model"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """A contract's bid and ask at a moment, and where they come from.

    `iv` and `greeks` are the model's (the volatility it was priced at, or the one implied by
    the quote) when they were computed; `underlying` is the spot they were computed at.
    """

    symbol: str
    time: datetime
    bid: Decimal
    ask: Decimal
    source: QuoteSource
    iv: float | None = None
    greeks: Greeks | None = None
    underlying: float | None = None

    @property
    def modelled(self) -> bool:
        return self.source is QuoteSource.MODEL

    @property
    def mid(self) -> Decimal:
        """(bid + ask) / 2, exact (half a cent when the spread is an odd number of cents)."""
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class Spread:
    """How wide the modelled market is around the model's price.

    The full bid-ask width is the largest of `absolute` dollars, `relative` x the model price
    and one `tick`; half of it goes each side, then the bid is rounded down and the ask up to
    the tick ($0.01, the finest price Alpaca takes for an option), the bid never below 0 and
    the ask never below one tick. Set `absolute` or `relative` to 0 to use the other alone.
    """

    absolute: Decimal = Decimal("0.02")
    relative: Decimal = Decimal("0.01")
    tick: Decimal = CENT

    def __post_init__(self) -> None:
        if self.absolute < 0 or self.relative < 0:
            raise ValueError(f"spread {self.absolute} / {self.relative} is negative")
        if self.tick <= 0:
            raise ValueError(f"tick {self.tick} is not positive")

    def width(self, mid: Decimal) -> Decimal:
        return max(self.absolute, self.relative * mid, self.tick)

    def bid_ask(self, model_price: float) -> tuple[Decimal, Decimal]:
        """The modelled (bid, ask) around `model_price` (>= 0)."""
        if not (math.isfinite(model_price) and model_price >= 0):
            raise ValueError(f"model price {model_price} is not a number >= 0")
        # Nine decimals first: a float such as 1.0299999999 must round as the 1.03 it means.
        mid = Decimal(model_price).quantize(Decimal("1e-9"))
        half = self.width(mid) / 2
        bid = max(_to_tick(mid - half, self.tick, ROUND_FLOOR), Decimal(0))
        ask = max(_to_tick(mid + half, self.tick, ROUND_CEILING), bid + self.tick)
        return bid, ask


def _to_tick(amount: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (amount / tick).to_integral_value(rounding=rounding) * tick


@dataclass(frozen=True)
class OptionModel:
    """The model with its settings, for a contract at a moment: what the emulator serves as
    Alpaca's snapshot and what a model-priced backtest fills at.

    `rate` and `dividend` are continuously compounded yearly rates; `calendar` (optional) gives
    holidays and early closes to the clock.
    """

    rate: float = 0.0
    dividend: float = 0.0
    spread: Spread = field(default_factory=Spread)
    calendar: NyseCalendar | None = None

    def years(self, contract: Instrument, moment: datetime) -> float:
        if contract.expiry is None:
            raise ValueError(f"{contract.symbol} is not an option")
        return years_to_expiry(moment, contract.expiry, self.calendar)

    def value(self, contract: Instrument, spot: float, moment: datetime, vol: float) -> Valuation:
        right, strike = _terms(contract)
        years = self.years(contract, moment)
        return value(right, spot, strike, years, vol, rate=self.rate, dividend=self.dividend)

    def quote(self, contract: Instrument, spot: float, moment: datetime, vol: float) -> OptionQuote:
        """The modelled quote: the model price widened by the spread, with its IV and greeks."""
        valued = self.value(contract, spot, moment, vol)
        bid, ask = self.spread.bid_ask(valued.price)
        return OptionQuote(
            contract.symbol, moment, bid, ask, QuoteSource.MODEL, vol, valued.greeks, spot
        )

    def implied(
        self, contract: Instrument, spot: float, moment: datetime, option_price: float
    ) -> Valuation | None:
        """The volatility a price implies and the greeks at it (e.g. from a file quote's mid),
        or None where no volatility gives that price (see `implied_volatility`)."""
        right, strike = _terms(contract)
        years = self.years(contract, moment)
        vol = implied_volatility(
            option_price, right, spot, strike, years, rate=self.rate, dividend=self.dividend
        )
        if vol is None:
            return None
        return value(right, spot, strike, years, vol, rate=self.rate, dividend=self.dividend)


def _terms(contract: Instrument) -> tuple[OptionRight, float]:
    if contract.right is None or contract.strike is None:
        raise ValueError(f"{contract.symbol} is not an option")
    return contract.right, float(contract.strike)
