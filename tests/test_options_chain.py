"""Which contract and how many: the strike grid, the strike rules (atm, otm = N, delta = D) and
sizing by premium, as examples and as properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader.core.instruments import OptionRight
from ict_trader.core.sizing import Size
from ict_trader.errors import ConfigError
from ict_trader.options.chain import (
    Atm,
    DeltaTarget,
    Otm,
    choose_strike,
    contracts_for_premium,
    parse_strike_rule,
    strike_grid,
)
from ict_trader.options.pricing import MINUTES_PER_YEAR, value

CALL, PUT = OptionRight.CALL, OptionRight.PUT
spots = st.decimals(Decimal("20"), Decimal("900"), places=2)
steps = st.sampled_from([Decimal("0.5"), Decimal(1), Decimal("2.5"), Decimal(5)])
rights = st.sampled_from(OptionRight)


def test_the_grid_around_the_underlying() -> None:
    assert strike_grid(Decimal("500.40"), count=3) == [Decimal(n) for n in range(498, 504)]
    assert strike_grid(500.0, count=2) == [Decimal(n) for n in (499, 500, 501, 502)]
    assert strike_grid(Decimal("2.3"), count=5) == [Decimal(n) for n in range(1, 8)]
    half = strike_grid(Decimal("100.2"), step=Decimal("0.5"), count=2)
    assert half == [Decimal("99.5"), Decimal(100), Decimal("100.5"), Decimal(101)]
    with pytest.raises(ValueError):
        strike_grid(Decimal(500), count=0)
    with pytest.raises(ValueError):
        strike_grid(Decimal(0))


@given(spots, steps, st.integers(1, 15))
def test_the_grid_holds_count_strikes_each_side(spot: Decimal, step: Decimal, count: int) -> None:
    grid = strike_grid(spot, step=step, count=count)
    assert grid == sorted(set(grid))
    assert all(strike > 0 and strike % step == 0 for strike in grid)
    above = [k for k in grid if k > spot]
    below = [k for k in grid if k <= spot]
    assert len(above) == count
    assert len(below) == count or below[0] == step  # cut at the lowest positive strike
    assert above[0] - spot <= step and (not below or spot - below[-1] < step)


# ---------------------------------------------------------------------------- strike rules

LISTED = [Decimal(n) for n in range(495, 506)]


def test_atm_is_the_nearest_strike_and_a_tie_goes_in_the_money() -> None:
    assert choose_strike(Atm(), CALL, Decimal("500.30"), LISTED) == 500
    assert choose_strike(Atm(), PUT, Decimal("500.70"), LISTED) == 501
    # halfway: the lower strike for a call, the higher for a put (both in the money)
    assert choose_strike(Atm(), CALL, Decimal("500.50"), LISTED) == 500
    assert choose_strike(Atm(), PUT, Decimal("500.50"), LISTED) == 501
    assert choose_strike(Atm(), CALL, 500.5, LISTED) == 500  # a bar's float close
    assert choose_strike(Atm(), CALL, Decimal(500), []) is None


def test_otm_counts_listed_strikes_beyond_the_underlying() -> None:
    assert choose_strike(Otm(1), CALL, Decimal(500), LISTED) == 501  # 500 is at the money
    assert choose_strike(Otm(1), PUT, Decimal(500), LISTED) == 499
    assert choose_strike(Otm(2), CALL, Decimal("500.30"), LISTED) == 502
    assert choose_strike(Otm(2), PUT, Decimal("500.30"), LISTED) == 499
    assert choose_strike(Otm(5), CALL, Decimal("500.30"), LISTED) == 505
    assert choose_strike(Otm(6), CALL, Decimal("500.30"), LISTED) is None  # not listed
    gaps = [Decimal(n) for n in (490, 495, 500, 510)]
    assert choose_strike(Otm(2), CALL, Decimal(496), gaps) == 510  # listed strikes, not dollars


def test_delta_picks_the_nearest_delta() -> None:
    deltas = {Decimal(499): 0.71, Decimal(500): 0.55, Decimal(501): 0.42, Decimal(502): 0.30}
    assert choose_strike(DeltaTarget(0.40), CALL, Decimal("500.2"), deltas, deltas) == 501
    assert choose_strike(DeltaTarget(0.60), CALL, Decimal("500.2"), deltas, deltas) == 500
    put_deltas = {k: -v for k, v in deltas.items()}  # either sign
    assert choose_strike(DeltaTarget(0.30), PUT, Decimal("500.2"), put_deltas, put_deltas) == 502
    # a strike without greeks (Alpaca leaves them out of thin contracts) is passed over
    gaps: dict[Decimal, float | None] = {Decimal(500): 0.55, Decimal(501): None}
    assert choose_strike(DeltaTarget(0.42), CALL, Decimal(500), LISTED, gaps) == 500
    assert choose_strike(DeltaTarget(0.42), CALL, Decimal(500), LISTED, {}) is None
    # a tie goes to the strike nearer the underlying
    tied = {Decimal(499): 0.5, Decimal(503): 0.3}
    assert choose_strike(DeltaTarget(0.4), CALL, Decimal(500), tied, tied) == 499
    with pytest.raises(ValueError, match="deltas"):
        choose_strike(DeltaTarget(0.4), CALL, Decimal(500), LISTED)


def _model_deltas(
    right: OptionRight, spot: Decimal, strikes: list[Decimal], vol: float
) -> dict[Decimal, float | None]:
    years = 60 / MINUTES_PER_YEAR
    return {k: value(right, float(spot), float(k), years, vol).greeks.delta for k in strikes}


@settings(max_examples=300, deadline=None)
@given(rights, spots, steps, st.integers(1, 12))
def test_atm_and_otm_properties(right: OptionRight, spot: Decimal, step: Decimal, n: int) -> None:
    listed = strike_grid(spot, step=step, count=12)
    atm = choose_strike(Atm(), right, spot, listed)
    assert atm is not None
    assert abs(atm - spot) == min(abs(k - spot) for k in listed)
    otm = choose_strike(Otm(n), right, spot, listed)
    beyond = [k for k in listed if (k > spot if right is CALL else k < spot)]
    if len(beyond) < n:  # near zero a put has few strikes below
        assert otm is None
        return
    assert otm is not None
    if right is CALL:
        assert otm > spot
        assert len([k for k in listed if spot < k < otm]) == n - 1
    else:
        assert otm < spot
        assert len([k for k in listed if otm < k < spot]) == n - 1


@settings(max_examples=200, deadline=None)
@given(
    rights,
    spots,
    st.floats(0.05, 1.0),
    st.lists(st.floats(0.01, 0.99), min_size=2, max_size=6),
)
def test_a_higher_delta_target_never_picks_a_contract_further_out_of_the_money(
    right: OptionRight, spot: Decimal, vol: float, targets: list[float]
) -> None:
    listed = strike_grid(spot, count=15)
    deltas = _model_deltas(right, spot, listed, vol)
    chosen = [choose_strike(DeltaTarget(t), right, spot, listed, deltas) for t in sorted(targets)]
    assert None not in chosen
    # a call's delta falls as the strike rises, a put's |delta| rises with it
    strikes = [k for k in chosen if k is not None]
    assert strikes == (sorted(strikes, reverse=True) if right is CALL else sorted(strikes))
    for target, strike in zip(sorted(targets), strikes, strict=True):
        best = min(abs(abs(d) - target) for d in deltas.values() if d is not None)
        assert abs(abs(deltas[strike] or 0.0) - target) == best


def test_rules_as_a_profile_writes_them() -> None:
    assert parse_strike_rule("atm") == Atm()
    assert parse_strike_rule("ATM") == Atm()
    assert parse_strike_rule("otm = 2") == Otm(2)
    assert parse_strike_rule("otm=1") == Otm(1)
    assert parse_strike_rule("delta = 0.40") == DeltaTarget(0.40)
    assert str(parse_strike_rule("delta=0.4")) == "delta = 0.4"
    assert str(Otm(3)) == "otm = 3"
    for bad in ("", "atm = 1", "otm", "otm = 0", "otm = -1", "otm = 1.5", "delta = 1.2",
                "delta = 0", "delta = x", "itm = 2", "delta 0.4"):  # fmt: skip
        with pytest.raises(ConfigError, match=r"^options\.strike: "):
            parse_strike_rule(bad, key="options.strike")


# ---------------------------------------------------------------------------- sizing


def test_contracts_by_premium() -> None:
    # $2,000 buys floor(2000 / 145) = 13 contracts at $1.45
    assert contracts_for_premium(Decimal(2000), Decimal("1.45")) == Size(13, 13)
    assert contracts_for_premium(Decimal(2000), Decimal("1.45"), max_contracts=10) == Size(
        13, 10, ("max_contracts 10",)
    )
    assert contracts_for_premium(Decimal(2000), Decimal("1.45"), max_premium=Decimal(1000)) == (
        Size(13, 6, ("max_premium 1000.00",))
    )
    assert contracts_for_premium(Decimal(2000), Decimal("0.50")) == Size(40, 40)
    exact = contracts_for_premium(Decimal(290), Decimal("1.45"))
    assert exact == Size(2, 2)  # exactly the budget
    short = contracts_for_premium(Decimal(100), Decimal("1.45"))
    assert (short.qty, short.refused) == (
        0,
        "0 contracts: budget 100.00 is less than one contract at 1.45",
    )
    capped = contracts_for_premium(Decimal(2000), Decimal("1.45"), max_premium=Decimal(100))
    assert (capped.qty, capped.refused) == (0, "0 contracts after max_premium 100.00")
    assert contracts_for_premium(Decimal(2000), Decimal(0)).refused == (
        "0 contracts: no ask to buy at (0)"
    )


@settings(max_examples=1000, deadline=None)
@given(
    st.decimals(0, 1_000_000, places=2),
    st.decimals(Decimal("0.01"), 500, places=2),
    st.none() | st.integers(0, 500),
    st.none() | st.decimals(0, 100_000, places=2),
)
def test_sizing_never_spends_past_the_budget_or_a_cap(
    budget: Decimal, ask: Decimal, max_contracts: int | None, max_premium: Decimal | None
) -> None:
    size = contracts_for_premium(budget, ask, max_contracts=max_contracts, max_premium=max_premium)
    paid = size.qty * ask * 100
    assert 0 <= size.qty <= size.wanted
    assert paid <= budget
    assert max_contracts is None or size.qty <= max_contracts
    assert max_premium is None or paid <= max_premium
    # and it is the most that fits: one more breaks a limit
    more = (size.qty + 1) * ask * 100
    assert (
        more > budget
        or (max_contracts is not None and size.qty + 1 > max_contracts)
        or (max_premium is not None and more > max_premium)
    )
    assert (size.qty == 0) == (size.refused is not None)
    assert size.cuts == () or size.qty < size.wanted
