"""Instruments: a symbol names the whole instrument (a ticker, or an option's OCC symbol), and
P&L of an option contract is its premium times 100."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ict_trader.core.engine import Engine
from ict_trader.core.events import ExitReason, TradeUpdated, TradeView
from ict_trader.core.instruments import (
    Instrument,
    InstrumentKind,
    OptionRight,
    equity,
    instrument_of,
    option,
)
from ict_trader.core.strategy import EngineConfig
from ict_trader.errors import ConfigError
from ict_trader.reporting.book import Book, TradeFigures
from ict_trader.signals import IctDetector, Signal
from tests.engine_script import FILL_TIME, Script, minutes, submitted
from tests.test_signal_rules import CALENDAR, PARAMS

roots = st.from_regex(r"[A-Z]{1,5}", fullmatch=True)
strikes = st.integers(min_value=1, max_value=99_999_999).map(lambda n: Decimal(n) / 1000)


@given(roots, st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.sampled_from(OptionRight), strikes)
def test_an_occ_symbol_gives_back_the_whole_contract(
    root: str, expiry: date, right: OptionRight, strike: Decimal
) -> None:
    contract = option(root, expiry, right, strike)
    assert len(contract.symbol) == len(root) + 15
    assert instrument_of(contract.symbol) == contract
    assert (contract.kind, contract.multiplier, contract.root) == (
        InstrumentKind.OPTION,
        100,
        root,
    )
    assert contract.strike == strike


def test_the_occ_format_as_alpaca_writes_it() -> None:
    contract = option("QQQ", date(2024, 11, 15), OptionRight.CALL, Decimal("500"))
    assert contract.symbol == "QQQ241115C00500000"
    put = instrument_of("SPY250620P00432500")
    assert (put.underlying, put.expiry, put.right, put.strike) == (
        "SPY",
        date(2025, 6, 20),
        OptionRight.PUT,
        Decimal("432.5"),
    )


def test_tickers_are_shares_and_bad_ones_are_refused() -> None:
    for symbol in ("QQQ", "IWM", "BRK.B"):
        assert equity(symbol) == instrument_of(symbol) == Instrument(symbol)
        assert (instrument_of(symbol).multiplier, instrument_of(symbol).root) == (1, symbol)
    for bad in ("", "qqq", "1ABC", "TOOLONGTICKER", "QQ Q", "Q/Q"):
        with pytest.raises(ConfigError, match="is not a ticker"):
            equity(bad)
    with pytest.raises(ValueError, match="cannot be written"):
        option("QQQ", date(2024, 11, 15), OptionRight.CALL, Decimal("0.0005"))


def _trade(symbol: str, status: str, qty: int, pnl: Decimal | None) -> TradeView:
    moment = datetime(2024, 11, 15, 15, 0, tzinfo=UTC)
    return TradeView(
        trade_id=f"ict-QQQ-202411151500l-options-{symbol[-4:]}",
        signal_id="QQQ-20241115T1500Z-long",
        profile="options",
        symbol=symbol,
        direction="long",
        status=status,
        planned_qty=qty,
        qty=qty,
        entry_order_id="e",
        entry_price=Decimal("2.10"),
        entry_time=moment,
        target_price=None,
        stop_price=None,
        exit_price=None,
        exit_time=None,
        exit_reason=None if status != "closed" else ExitReason.TIME,
        pnl=pnl,
        commission=Decimal(0),
    )


def test_option_p_and_l_uses_the_multiplier() -> None:
    contract = "QQQ241115C00500000"
    moment = datetime(2024, 11, 15, 15, 30, tzinfo=UTC)
    partly = TradeFigures(
        _trade(contract, "open", 5, None), ((moment, 2, Decimal("2.60"), Decimal(0)),)
    )
    # 2 contracts sold at 2.60 after buying at 2.10: 2 x 0.50 x 100 = $100 realized;
    # 3 still held, marked at 2.30: 3 x 0.20 x 100 = $60 unrealized.
    assert partly.realized() == Decimal("100.00")
    assert partly.unrealized({contract: Decimal("2.30")}) == Decimal("60.00")
    shares = TradeFigures(
        _trade("QQQ", "open", 5, None), ((moment, 2, Decimal("2.60"), Decimal(0)),)
    )
    assert shares.realized() == Decimal("1.00")  # the same prices in shares: no multiplier
    book = Book((partly, shares))
    assert book.position(contract) == 3 and book.position("QQQ") == 3
    assert book.unrealized({contract: Decimal("2.30"), "QQQ": Decimal("2.30")}) == Decimal("60.60")


class CallsOnly:
    """A selection that trades one call contract instead of the shares, whatever the signal."""

    contract = option("QQQ", date(2024, 7, 29), OptionRight.CALL, Decimal("98"))

    def instrument(self, signal: Signal) -> Instrument:
        return self.contract


def test_the_engine_trades_what_the_selection_chose_and_books_p_and_l_times_100() -> None:
    script = Script()
    script.engine = Engine(EngineConfig(), IctDetector(CALENDAR, PARAMS), selection=CallsOnly())
    script.equity(10_000_000)
    entries = submitted(script.to_signal())
    assert {o.symbol for o in entries} == {CallsOnly.contract.symbol}
    conservative = next(o for o in entries if o.profile == "conservative")
    # sized on the instrument's multiplier: floor(10,000,000 x 3% / (97.50 x 100)) = 30
    assert conservative.qty == 30
    (target,) = submitted(script.fill(conservative, 30, "2.10"))
    script.fill(target, 30, "2.60", FILL_TIME + minutes(5))
    closed = [
        o.trade
        for o in script.commands
        if isinstance(o, TradeUpdated) and o.trade.status == "closed"
    ]
    # The scripted signal is short, so the engine sold the 30 calls at 2.10 and bought them back
    # at 2.60: -0.50 x 30 contracts x 100 = -$1,500.
    assert [(t.symbol, t.pnl) for t in closed] == [(CallsOnly.contract.symbol, Decimal(-1500))]
    assert script.engine.open_positions() == {CallsOnly.contract.symbol: 0}  # aggressive: pending
