"""The option pricing model: Black-Scholes-Merton prices and greeks checked against QuantLib (an
independent, well-known implementation), implied volatility, the trading-time clock, expiry,
and the modelled bid/ask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import QuantLib as ql  # type: ignore[import-untyped]  # noqa: N813
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.instruments import OptionRight, equity, option
from ict_trader.options.pricing import (
    MINUTES_PER_YEAR,
    Greeks,
    OptionModel,
    OptionQuote,
    QuoteSource,
    Spread,
    Valuation,
    implied_volatility,
    price_bounds,
    value,
    years_to_expiry,
)

TOLERANCE = 1e-6  # absolute, or relative to values larger than 1 (gamma and theta near expiry)

spots = st.floats(10.0, 1000.0)
moneyness = st.floats(-0.3, 0.3)  # ln(K / S)
# from half a minute to expiry up to two months of sessions, in trading minutes
minutes = st.one_of(st.floats(0.5, 390.0), st.floats(390.0, 42 * 390.0))


@dataclass(frozen=True)
class Case:
    right: OptionRight
    spot: float
    strike: float
    years: float
    vol: float
    r: float
    q: float

    def value(self, vol: float | None = None, right: OptionRight | None = None) -> Valuation:
        return value(
            right or self.right,
            self.spot,
            self.strike,
            self.years,
            self.vol if vol is None else vol,
            rate=self.r,
            dividend=self.q,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    spot = draw(spots)
    return Case(
        right=draw(st.sampled_from(OptionRight)),
        spot=spot,
        strike=spot * math.exp(draw(moneyness)),
        years=draw(minutes) / MINUTES_PER_YEAR,
        vol=draw(st.floats(0.01, 3.0)),
        r=draw(st.floats(-0.01, 0.10)),
        q=draw(st.floats(0.0, 0.05)),
    )


def _close(ours: float, reference: float, tolerance: float = TOLERANCE) -> bool:
    return abs(ours - reference) <= tolerance * max(1.0, abs(reference))


def _quantlib(case: Case) -> dict[str, float]:
    """QuantLib's Black formula for the same contract, in our units: theta per 1/252 of a
    year, vega and rho per point (QuantLib gives them per year and per 1.0)."""
    kind = ql.Option.Call if case.right is OptionRight.CALL else ql.Option.Put
    forward = case.spot * math.exp((case.r - case.q) * case.years)
    calculator = ql.BlackCalculator(
        ql.PlainVanillaPayoff(kind, case.strike),
        forward,
        case.vol * math.sqrt(case.years),
        math.exp(-case.r * case.years),
    )
    return {
        "price": float(calculator.value()),
        "delta": float(calculator.delta(case.spot)),
        "gamma": float(calculator.gamma(case.spot)),
        "theta": float(calculator.theta(case.spot, case.years)) / 252,
        "vega": float(calculator.vega(case.years)) / 100,
        "rho": float(calculator.rho(case.years)) / 100,
    }


@settings(max_examples=2000, deadline=None)
@given(cases())
def test_prices_and_greeks_agree_with_quantlib(case: Case) -> None:
    ours = case.value()
    reference = _quantlib(case)
    greeks = ours.greeks
    mine = {
        "price": ours.price,
        "delta": greeks.delta,
        "gamma": greeks.gamma,
        "theta": greeks.theta,
        "vega": greeks.vega,
        "rho": greeks.rho,
    }
    wrong = {k: (mine[k], reference[k]) for k in mine if not _close(mine[k], reference[k])}
    assert wrong == {}


def test_the_units_match_quantlib_s_own_engine() -> None:
    """One year (365 days on Actual/365) through QuantLib's analytic engine and its named
    units: thetaPerDay is per 1/365 of a year, ours per 1/252; vega and rho per 1.0."""
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    counter = ql.Actual365Fixed()
    spot, strike, vol, r, q = 480.0, 500.0, 0.22, 0.05, 0.006
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, counter)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, counter)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, counter)),
    )
    for right, kind in ((OptionRight.CALL, ql.Option.Call), (OptionRight.PUT, ql.Option.Put)):
        contract = ql.VanillaOption(
            ql.PlainVanillaPayoff(kind, strike), ql.EuropeanExercise(today + 365)
        )
        contract.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        ours = value(right, spot, strike, 1.0, vol, rate=r, dividend=q)
        assert ours.price == pytest.approx(contract.NPV(), abs=1e-9)
        assert ours.greeks.delta == pytest.approx(contract.delta(), abs=1e-9)
        assert ours.greeks.gamma == pytest.approx(contract.gamma(), abs=1e-9)
        assert ours.greeks.theta * 252 == pytest.approx(contract.thetaPerDay() * 365, abs=1e-7)
        assert ours.greeks.vega * 100 == pytest.approx(contract.vega(), abs=1e-7)
        assert ours.greeks.rho * 100 == pytest.approx(contract.rho(), abs=1e-7)


@settings(max_examples=500, deadline=None)
@given(cases())
def test_put_call_parity(case: Case) -> None:
    call = case.value(right=OptionRight.CALL)
    put = case.value(right=OptionRight.PUT)
    forward_value = case.spot * math.exp(-case.q * case.years) - case.strike * math.exp(
        -case.r * case.years
    )
    assert call.price - put.price == pytest.approx(forward_value, abs=1e-9 * case.spot)
    assert call.greeks.delta - put.greeks.delta == pytest.approx(
        math.exp(-case.q * case.years), abs=1e-12
    )
    assert call.greeks.gamma == pytest.approx(put.greeks.gamma, rel=1e-9, abs=1e-12)
    assert call.greeks.vega == pytest.approx(put.greeks.vega, rel=1e-9, abs=1e-12)


@settings(max_examples=1000, deadline=None)
@given(cases())
def test_implied_volatility_gives_back_the_volatility(case: Case) -> None:
    right, spot, strike, years, r, q = (
        case.right,
        case.spot,
        case.strike,
        case.years,
        case.r,
        case.q,
    )
    valued = case.value()
    floor, _ = price_bounds(right, spot, strike, years, rate=r, dividend=q)
    # A price with (next to) no time value pins no volatility down in double precision.
    assume(valued.price - floor > 1e-9 * spot)
    found = implied_volatility(valued.price, right, spot, strike, years, rate=r, dividend=q)
    assert found is not None
    assert case.value(vol=found).price == pytest.approx(valued.price, abs=1e-9 * spot)
    if valued.greeks.vega * 100 > 1e-3 * spot:  # the price moves enough with the volatility
        assert found == pytest.approx(case.vol, abs=1e-6)


def test_implied_volatility_agrees_with_quantlib() -> None:
    spot, strike, years, r, q = 480.0, 482.0, 45 / MINUTES_PER_YEAR, 0.05, 0.006
    for right, kind, premium in (
        (OptionRight.CALL, ql.Option.Call, 0.85),
        (OptionRight.PUT, ql.Option.Put, 2.85),  # in the money by 2
    ):
        found = implied_volatility(premium, right, spot, strike, years, rate=r, dividend=q)
        assert found is not None
        std = ql.blackFormulaImpliedStdDev(
            kind,
            strike,
            spot * math.exp((r - q) * years),
            premium,
            math.exp(-r * years),
        )
        assert found == pytest.approx(std / math.sqrt(years), abs=1e-6)


def test_no_implied_volatility_outside_the_no_arbitrage_range() -> None:
    years = 30 / MINUTES_PER_YEAR
    call, put = OptionRight.CALL, OptionRight.PUT
    assert implied_volatility(4.99, call, 505, 500, years) is None  # below intrinsic
    assert implied_volatility(5.0, call, 505, 500, years) is None  # no time value
    assert implied_volatility(505.0, call, 505, 500, years) is None  # worth the share
    assert implied_volatility(500.0, put, 505, 500, years) is None  # worth the strike
    assert implied_volatility(0.0, put, 505, 500, years) is None  # worthless
    assert implied_volatility(1.0, call, 500, 500, 0.0) is None  # expired
    with pytest.raises(ValueError, match="option price"):
        implied_volatility(-0.01, call, 500, 500, years)
    with pytest.raises(ValueError, match="option price"):
        implied_volatility(math.nan, call, 500, 500, years)
    with pytest.raises(ValueError, match="spot"):
        implied_volatility(1.0, call, 0, 500, years)


def test_bad_inputs_are_refused() -> None:
    call = OptionRight.CALL
    for args in ((0, 500, 0.1, 0.2), (500, -1, 0.1, 0.2), (500, 500, -0.1, 0.2)):
        with pytest.raises(ValueError):
            value(call, *args)
    with pytest.raises(ValueError, match="volatility"):
        value(call, 500, 500, 0.1, -0.2)
    with pytest.raises(ValueError, match="rate"):
        value(call, 500, 500, 0.1, 0.2, rate=math.inf)


# ---------------------------------------------------------------------------- expiry


@pytest.mark.parametrize(
    ("right", "spot", "intrinsic", "delta"),
    [
        (OptionRight.CALL, 505.0, 5.0, 1.0),
        (OptionRight.CALL, 495.0, 0.0, 0.0),
        (OptionRight.CALL, 500.0, 0.0, 0.5),
        (OptionRight.PUT, 495.0, 5.0, -1.0),
        (OptionRight.PUT, 505.0, 0.0, 0.0),
        (OptionRight.PUT, 500.0, 0.0, -0.5),
    ],
)
def test_at_expiry_an_option_is_worth_its_intrinsic_value(
    right: OptionRight, spot: float, intrinsic: float, delta: float
) -> None:
    expired = value(right, spot, 500.0, 0.0, 0.25, rate=0.05, dividend=0.01)
    assert expired.price == intrinsic
    assert expired.greeks == Greeks(delta=delta, gamma=0.0, theta=0.0, vega=0.0, rho=0.0)
    # and the model tends to it (1e-9 years: 6 ms of trading before the close)
    almost = value(right, spot, 500.0, 1e-9, 0.25, rate=0.05, dividend=0.01)
    assert almost.price == pytest.approx(intrinsic, abs=0.002)
    assert almost.greeks.delta == pytest.approx(delta, abs=0.001)


def test_zero_volatility_is_the_discounted_forward() -> None:
    years, r, q = 0.5, 0.05, 0.01
    deep = value(OptionRight.CALL, 600.0, 500.0, years, 0.0, rate=r, dividend=q)
    assert deep.price == pytest.approx(600 * math.exp(-q * years) - 500 * math.exp(-r * years))
    assert deep.greeks.delta == pytest.approx(math.exp(-q * years))
    assert (deep.greeks.gamma, deep.greeks.vega) == (0.0, 0.0)
    # the limit of the model's greeks as volatility vanishes
    tiny = value(OptionRight.CALL, 600.0, 500.0, years, 1e-6, rate=r, dividend=q)
    assert deep.greeks.theta == pytest.approx(tiny.greeks.theta, rel=1e-9)
    assert deep.greeks.rho == pytest.approx(tiny.greeks.rho, rel=1e-9)
    worthless = value(OptionRight.PUT, 600.0, 500.0, years, 0.0, rate=r, dividend=q)
    assert worthless.price == 0.0
    assert worthless.greeks == Greeks(0.0, 0.0, 0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------- the clock


def _ny(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NEW_YORK)


MONDAY = date(2024, 7, 29)


def test_the_clock_counts_the_session_minutes_left() -> None:
    assert years_to_expiry(_ny(MONDAY, 15, 30), MONDAY) * MINUTES_PER_YEAR == pytest.approx(30)
    assert years_to_expiry(_ny(MONDAY, 15, 59, 30), MONDAY) * MINUTES_PER_YEAR == pytest.approx(0.5)
    # before the open the whole session is ahead; from the close none of it
    assert years_to_expiry(_ny(MONDAY, 8, 0), MONDAY) * MINUTES_PER_YEAR == pytest.approx(390)
    assert years_to_expiry(_ny(MONDAY, 16, 0), MONDAY) == 0.0
    assert years_to_expiry(_ny(MONDAY, 18, 0), MONDAY) == 0.0
    assert years_to_expiry(_ny(MONDAY + timedelta(days=1), 10, 0), MONDAY) == 0.0
    # any zone, same moment
    utc = _ny(MONDAY, 15, 30).astimezone(UTC)
    assert years_to_expiry(utc, MONDAY) == years_to_expiry(_ny(MONDAY, 15, 30), MONDAY)
    # nights and weekends take no time: Friday 15:00 to Monday's close
    friday = MONDAY - timedelta(days=3)
    assert years_to_expiry(_ny(friday, 15, 0), MONDAY) * MINUTES_PER_YEAR == pytest.approx(450)
    with pytest.raises(ValueError, match="time zone"):
        years_to_expiry(datetime(2024, 7, 29, 15, 30), MONDAY)


def test_with_a_calendar_holidays_and_early_closes_count() -> None:
    calendar = NyseCalendar(date(2024, 11, 1), date(2024, 12, 31))
    black_friday = date(2024, 11, 29)  # closes at 13:00
    noon = _ny(black_friday, 12, 0)
    assert years_to_expiry(noon, black_friday, calendar) * MINUTES_PER_YEAR == pytest.approx(60)
    assert years_to_expiry(noon, black_friday) * MINUTES_PER_YEAR == pytest.approx(240)
    # Wednesday 15:00 to Friday: Thanksgiving is closed
    wednesday = _ny(date(2024, 11, 27), 15, 0)
    assert years_to_expiry(wednesday, black_friday, calendar) * MINUTES_PER_YEAR == (
        pytest.approx(60 + 210)
    )


# ---------------------------------------------------------------------------- modelled quotes


@settings(max_examples=1000, deadline=None)
@given(
    st.floats(0.0, 200.0),
    st.decimals(0, 1, places=2),
    st.decimals(0, Decimal("0.2"), places=3),
)
def test_the_modelled_market_brackets_the_model_price_on_cent_ticks(
    model_price: float, absolute: Decimal, relative: Decimal
) -> None:
    spread = Spread(absolute=absolute, relative=relative)
    bid, ask = spread.bid_ask(model_price)
    tick = Decimal("0.01")
    assert bid >= 0
    assert ask - bid >= tick
    assert bid <= Decimal(model_price).quantize(Decimal("1e-9")) <= ask
    assert bid % tick == 0 and ask % tick == 0
    assert -bid.as_tuple().exponent <= 2 and -ask.as_tuple().exponent <= 2  # type: ignore[operator]
    assert ask - bid <= spread.width(Decimal(model_price)) + 2 * tick


def test_modelled_quotes_examples() -> None:
    spread = Spread(absolute=Decimal("0.02"), relative=Decimal("0.01"))
    assert spread.bid_ask(1.234) == (Decimal("1.22"), Decimal("1.25"))  # 2 cents wide
    assert spread.bid_ask(10.0) == (Decimal("9.95"), Decimal("10.05"))  # 1 % of 10
    assert spread.bid_ask(1.03) == (Decimal("1.02"), Decimal("1.04"))
    assert spread.bid_ask(0.0) == (Decimal(0), Decimal("0.01"))  # worthless: 0 bid, 1 cent ask
    assert Spread(Decimal(0), Decimal(0)).bid_ask(2.0) == (Decimal("1.99"), Decimal("2.01"))
    with pytest.raises(ValueError):
        Spread(Decimal("-0.01"))
    with pytest.raises(ValueError):
        spread.bid_ask(-1.0)


def test_the_model_quotes_a_contract_and_says_so() -> None:
    contract = option("QQQ", MONDAY, OptionRight.CALL, Decimal(465))
    model = OptionModel(rate=0.05, dividend=0.006)
    moment = _ny(MONDAY, 15, 0)
    quote = model.quote(contract, 465.20, moment, vol=0.15)
    assert isinstance(quote, OptionQuote)
    assert (quote.source, quote.modelled, quote.symbol, quote.time) == (
        QuoteSource.MODEL,
        True,
        contract.symbol,
        moment,
    )
    years = 60 / MINUTES_PER_YEAR
    fair = value(OptionRight.CALL, 465.20, 465.0, years, 0.15, rate=0.05, dividend=0.006)
    assert quote.greeks == fair.greeks
    assert (quote.iv, quote.underlying) == (0.15, 465.20)
    assert quote.bid <= Decimal(fair.price) <= quote.ask
    assert quote.mid == (quote.bid + quote.ask) / 2
    # a price from elsewhere (a file quote's mid) gives its volatility back
    implied = model.implied(contract, 465.20, moment, fair.price)
    assert implied is not None
    assert implied.volatility == pytest.approx(0.15, abs=1e-9)
    assert model.implied(contract, 465.20, moment, 0.0) is None
    with pytest.raises(ValueError, match="not an option"):
        model.quote(equity("QQQ"), 465.20, moment, vol=0.15)
