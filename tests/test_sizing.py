"""Sizing on its own: the equity allocation, its rounding, and the caps it is cut to."""

from __future__ import annotations

from decimal import Decimal

from ict_trader.core.risk import Exposure, RiskLimits
from ict_trader.core.sizing import EquityAllocation, Size, allocated_shares
from ict_trader.core.strategy import StrategyProfile

NO_CAPS = RiskLimits(max_equity_pct_per_trade=Decimal(0), max_total_equity_pct=Decimal(0))
PROFILE = StrategyProfile("conservative", Decimal("0.03"))
NONE = Exposure()
FORTY_AT_100 = Exposure(40, Decimal(4000))  # open trades of 30 and 10 shares at $100


def test_allocated_shares_round_down_never_past_the_allocation() -> None:
    assert allocated_shares(Decimal(100_000), Decimal("0.03"), Decimal("97.60")) == 30  # 30.7
    assert allocated_shares(Decimal(100_000), Decimal("0.04"), Decimal("97.60")) == 40  # 40.98
    assert allocated_shares(Decimal(100_000), Decimal("0.03"), Decimal(100)) == 30  # exact
    assert allocated_shares(Decimal(100_000), Decimal("0.03"), Decimal(0)) == 0
    assert allocated_shares(Decimal(100_000), Decimal("0.03"), Decimal(-1)) == 0


def test_an_uncapped_entry_gets_its_allocation() -> None:
    size = EquityAllocation(NO_CAPS).size(
        PROFILE,
        Decimal("97.60"),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=NONE,
        open_in_symbol=NONE,
    )
    assert size == Size(wanted=30, qty=30)


def test_less_than_one_share_is_refused_and_says_so() -> None:
    size = EquityAllocation(NO_CAPS).size(
        PROFILE,
        Decimal("500"),
        equity=Decimal(10_000),
        buying_power=None,
        open_total=NONE,
        open_in_symbol=NONE,
    )
    assert size.qty == 0
    assert size.refused == "0 shares: equity 10000.00 x 0.03 is less than one share at 500"


def test_caps_cut_the_entry_and_say_why() -> None:
    limits = RiskLimits(max_shares_per_trade=20, max_total_equity_pct=Decimal(0))
    size = EquityAllocation(limits).size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=NONE,
        open_in_symbol=NONE,
    )
    assert (size.wanted, size.qty, size.refused) == (30, 20, None)
    assert size.cuts == ("max 20 shares",)


def test_open_trades_count_against_the_total_caps_at_this_price() -> None:
    limits = RiskLimits(max_total_shares=50, max_total_equity_pct=Decimal(0))
    size = EquityAllocation(limits).size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=FORTY_AT_100,
        open_in_symbol=NONE,
    )
    assert (size.wanted, size.qty) == (30, 10)
    assert size.cuts == ("max 50 shares in total",)
    limits = RiskLimits(max_total_notional=Decimal(5000), max_total_equity_pct=Decimal(0))
    size = EquityAllocation(limits).size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=FORTY_AT_100,
        open_in_symbol=NONE,
    )
    assert (size.qty, size.cuts) == (10, ("max $5000 in total",))  # (5000 - 40 x 100) / 100


def test_buying_power_cuts_and_nothing_left_is_refused() -> None:
    sizing = EquityAllocation(NO_CAPS)
    size = sizing.size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=Decimal("1550.50"),
        open_total=NONE,
        open_in_symbol=NONE,
    )
    assert (size.qty, size.cuts, size.refused) == (15, ("buying power $1550.50",), None)
    size = sizing.size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=Decimal(50),
        open_total=NONE,
        open_in_symbol=NONE,
    )
    assert size.qty == 0
    assert size.refused == "size limits leave 0 of 30 shares: buying power $50.00"


def test_the_symbol_caps_count_only_the_entrys_own_symbol() -> None:
    limits = RiskLimits(
        max_symbol_shares=35, max_symbol_equity_pct=Decimal(5), max_total_equity_pct=Decimal(0)
    )
    # Another symbol's 40 open shares do not count against this symbol's caps.
    free = EquityAllocation(limits).size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=FORTY_AT_100,
        open_in_symbol=NONE,
    )
    assert (free.qty, free.cuts) == (30, ())
    # The symbol's own 10 open shares ($1,000) do: 35 - 10 = 25 shares, 5% = $5,000 - $1,000.
    held = EquityAllocation(limits).size(
        PROFILE,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=FORTY_AT_100,
        open_in_symbol=Exposure(10, Decimal(1000)),
    )
    assert (held.qty, held.cuts) == (25, ("max 35 shares in the symbol",))
    capped = EquityAllocation(limits).size(
        PROFILE,
        Decimal(200),
        equity=Decimal(100_000),
        buying_power=None,
        open_total=FORTY_AT_100,
        open_in_symbol=Exposure(10, Decimal(3000)),
    )
    assert (capped.wanted, capped.qty) == (15, 10)  # ($5,000 - $3,000) / $200
    assert capped.cuts == ("max 5% of equity in the symbol",)


def test_a_multiplier_sizes_in_contracts() -> None:
    # An option at $2.50 premium costs $250 a contract: 3% of $100,000 buys 12 contracts.
    size = EquityAllocation(NO_CAPS).size(
        PROFILE,
        Decimal("2.50"),
        equity=Decimal(100_000),
        buying_power=Decimal(2000),
        open_total=NONE,
        open_in_symbol=NONE,
        multiplier=100,
    )
    assert (size.wanted, size.qty, size.cuts) == (12, 8, ("buying power $2000.00",))
