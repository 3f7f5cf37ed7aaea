"""Hypothesis properties of the engine's ledger: P&L is exactly what the fills say.

For random partial fills (entry, then some of the target, then a time exit for the rest),
re-sent duplicate executions and prices on a cent grid, the engine's closed-trade P&L equals
the cash the fills moved, the trade closes at the fill that makes it flat and not before, and a
duplicate execution changes nothing.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader.core.events import Tick, TradeUpdated
from ict_trader.core.orders import Leg
from tests.engine_script import FILL_TIME, Script, minutes, submitted

ENTRY_QTY = 30  # the conservative profile's entry in the scripted signal (short)


def splits(total: int) -> st.SearchStrategy[list[int]]:
    """Ways to fill `total` shares in 1..5 executions."""
    return st.lists(st.integers(1, total), min_size=0, max_size=4).map(
        lambda cuts: _parts(total, sorted(set(c for c in cuts if c < total)))
    )


def _parts(total: int, cuts: list[int]) -> list[int]:
    points = [0, *cuts, total]
    return [b - a for a, b in itertools.pairwise(points)]


prices = st.integers(9000, 11000).map(lambda cents: Decimal(cents) / 100)


@settings(max_examples=150, deadline=None)
@given(
    entry_parts=splits(ENTRY_QTY),
    target_filled=st.integers(0, ENTRY_QTY - 1),
    data=st.data(),
    duplicate=st.booleans(),
)
def test_pnl_is_the_cash_the_fills_moved(
    entry_parts: list[int], target_filled: int, data: st.DataObject, duplicate: bool
) -> None:
    script = Script()
    script.equity()
    entry = submitted(script.to_signal())[0]
    assert entry.qty == ENTRY_QTY and entry.profile == "conservative"
    cash = Decimal(0)
    done = 0
    for part in entry_parts:
        price = data.draw(prices)
        done += part
        script.fill(entry, part, str(price), cumulative=done, complete=done == ENTRY_QTY)
        cash += price * part  # a short entry sells
    target = next(o for o in submitted(script.commands) if o.leg is Leg.TARGET)
    assert target.qty == ENTRY_QTY
    if target_filled:
        price = data.draw(prices)
        script.fill(
            target,
            target_filled,
            str(price),
            cumulative=target_filled,
            complete=False,
            execution_id="target-1",
        )
        cash -= price * target_filled
        if duplicate:
            again = script.fill(
                target,
                target_filled,
                str(price),
                cumulative=target_filled,
                complete=False,
                execution_id="target-1",
            )
            assert again == []
    script.send(Tick(FILL_TIME + minutes(60)))
    exit_order = submitted(
        script.cancel_confirmed(target.client_order_id, FILL_TIME + minutes(60))
    )[0]
    remaining = ENTRY_QTY - target_filled
    assert exit_order.qty == remaining
    done = 0
    parts = data.draw(splits(remaining))
    for index, part in enumerate(parts):
        price = data.draw(prices)
        done += part
        commands = script.fill(
            exit_order,
            part,
            str(price),
            FILL_TIME + minutes(61),
            cumulative=done,
            complete=done == remaining,
        )
        cash -= price * part
        status = [c.trade.status for c in commands if isinstance(c, TradeUpdated)][-1]
        assert status == ("closed" if index == len(parts) - 1 else "exiting")
    trade = [
        c.trade
        for c in script.commands
        if isinstance(c, TradeUpdated) and c.trade.profile == "conservative"
    ][-1]
    assert trade.status == "closed"
    assert trade.pnl == cash
    assert trade.qty == ENTRY_QTY
    assert "conservative" not in [t.profile for t in script.engine.open_trades]
