"""The expiry day of a 0DTE contract in the emulator, as Alpaca runs it (issue #12).

Alpaca ("How To Trade 0DTE Options on Alpaca"): on expiration day new orders are rejected from
15:30 ET for broad-based ETFs such as QQQ (15:15 otherwise), and expiring positions are
liquidated from 15:45 (15:30 otherwise); what is still held at the close is exercised when in
the money by $0.01 or more and expires otherwise, as OPEXC / OPEXP account activities. The
unmodified alpaca-py clients drive the emulator on 127.0.0.1 over the QQQ sample's first day,
2024-07-29 (QQQ closes at 463.84); raw answers are judged against Alpaca's spec.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderSide,
    OrderStatus,
    PositionIntent,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest

from ict_trader.adapters.alpaca.emulator.paper import PaperAccount
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import (
    advance,
    checked_get,
    dec,
    running_emulator,
    settle,
    take_until,
    trade_updates,
    trading_client,
)
from tests.alpaca_emulator import (
    buy_to_open as buy,
)
from tests.alpaca_emulator import (
    whole_options as whole,
)

AT_1500 = 330  # bars completed: 15:00 New York on 2024-07-29
CLOSE = 390  # the first session's minutes
ITM_CALL = "QQQ240729C00460000"
OTM_PUT = "QQQ240729P00455000"
ITM_PUT = "QQQ240729P00470000"
FAR_CALL = "QQQ240729C00488000"  # worthless from 15:00 on: nobody bids for it


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def holding(server: EmulatorServer, client: TradingClient, symbol: str, qty: int = 1) -> Order:
    answer = client.submit_order(buy(symbol, qty))
    settle(server)
    assert isinstance(answer, Order)
    filled = client.get_order_by_id(answer.id)
    assert isinstance(filled, Order) and filled.status is OrderStatus.FILLED
    return filled


def cash(client: TradingClient) -> Decimal:
    account = client.get_account()
    assert isinstance(account, TradeAccount)
    return dec(account.cash)


def option_activities(server: EmulatorServer, **query: str) -> list[dict[str, Any]]:
    answer = checked_get(server, "/v2/account/activities", **query)
    assert answer.status_code == 200
    found: list[dict[str, Any]] = answer.json()
    return found


# ---------------------------------------------------------------------------- the cut-off


@pytest.mark.parametrize(("underlying", "cutoff"), [("QQQ", 360), ("XYZ", 345)])
def test_new_orders_on_an_expiring_contract_are_rejected_from_the_cut_off(
    sample: BarFile, underlying: str, cutoff: int
) -> None:
    """15:30 for a broad-based ETF (QQQ), 15:15 for any other underlying (served here from the
    same bars under another name)."""
    call = f"{underlying}240729C00460000"
    with running_emulator({underlying: sample}, start_bar=cutoff - 1, options=whole()) as server:
        client = trading_client(server)
        holding(server, client, call, 2)  # a minute before the cut-off: accepted and filled
        advance(server, 1)
        for request in (
            buy(call),
            MarketOrderRequest(
                symbol=call,
                qty=1,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                position_intent=PositionIntent.SELL_TO_CLOSE,
            ),
        ):
            with pytest.raises(APIError) as refused:
                client.submit_order(request)
            assert refused.value.status_code == 422
            assert refused.value.message == (
                f"options orders for {call} are not accepted after the expiration day's cut-off"
            )
        with pytest.raises(APIError):
            client.close_position(call)  # a close is a new order too
        shares = client.submit_order(
            MarketOrderRequest(
                symbol=underlying, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
        assert isinstance(shares, Order) and shares.status is OrderStatus.PENDING_NEW


def test_an_expired_contract_takes_no_orders(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=CLOSE - 1, options=whole()) as server:
        advance(server, 1)  # the close
        with pytest.raises(APIError) as refused:
            trading_client(server).submit_order(buy(ITM_CALL))
        assert (refused.value.status_code, refused.value.message) == (
            422,
            f"asset {ITM_CALL} is not active",
        )


# ---------------------------------------------------------------------------- liquidation


def test_from_1545_alpaca_liquidates_expiring_positions_at_the_bid(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=AT_1500, options=whole()) as server:
        client = trading_client(server)
        bought = holding(server, client, ITM_CALL, 2)
        resting = client.submit_order(
            LimitOrderRequest(
                symbol=ITM_CALL,
                qty=2,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                limit_price=20.0,
                position_intent=PositionIntent.SELL_TO_CLOSE,
                client_order_id="our-target",
            )
        )
        assert isinstance(resting, Order)
        settle(server)
        before = cash(client)
        with trade_updates(server) as updates:
            advance(server, 44)  # 15:44: nothing happens yet
            held = client.get_open_position(ITM_CALL)
            assert isinstance(held, Position) and held.qty == "2"
            advance(server, 1)  # 15:45
            bid = server.account.option_quote(ITM_CALL).bid
            events = take_until(updates, lambda u: u.event == "fill")
        assert [(e.event, e.order.client_order_id == "our-target") for e in events] == [
            ("canceled", True),
            ("pending_new", False),
            ("new", False),
            ("fill", False),
        ]
        sale = events[-1]
        assert (dec(sale.price), sale.qty, sale.position_qty) == (bid, 2, 0)
        assert sale.order.position_intent is PositionIntent.SELL_TO_CLOSE
        assert sale.order.side.value == "sell" and sale.order.type.value == "market"
        assert client.get_all_positions() == []
        assert cash(client) == before + bid * 2 * 100
        closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
        assert isinstance(closed, list)
        assert {o.id for o in closed if isinstance(o, Order)} == {
            bought.id,
            resting.id,
            sale.order.id,
        }
        advance(server, 15)  # the close: nothing left to settle
        assert option_activities(server, activity_types="OPEXP,OPEXC") == []


def test_a_position_nobody_bids_for_is_not_liquidated_and_expires(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=AT_1500, options=whole()) as server:
        client = trading_client(server)
        holding(server, client, FAR_CALL, 3)
        after_premium = cash(client)
        advance(server, 45)  # 15:45: liquidation begins, but the bid is 0
        sales = [
            o for o in server.account.orders.values() if o.side == "sell" and o.symbol == FAR_CALL
        ]
        assert [(s.status, s.qty) for s in sales] == [("new", 3)]
        advance(server, 15)  # the close
        assert sales[0].status == "expired"  # a DAY order
        assert client.get_all_positions() == []
        assert cash(client) == after_premium  # the premium paid is all that was lost
        (expired,) = option_activities(server, activity_types="OPEXP,OPEXC")
        assert expired["id"].startswith("20240729160000000::")
        assert {k: expired[k] for k in expired if k not in {"id", "created_at"}} == {
            "activity_type": "OPEXP",
            "date": "2024-07-29",
            "status": "executed",
            "currency": "USD",
            "net_amount": "0",
            "description": "Option Expiry",
            "symbol": FAR_CALL,
            "qty": "-3",
        }
        assert expired["created_at"] == "2024-07-29T20:00:00.000000Z"
        fills = option_activities(server, category="trade_activity")
        assert [a["activity_type"] for a in fills] == ["FILL"]  # the purchase
        assert option_activities(server, category="non_trade_activity") == [expired]
        by_type = checked_get(server, "/v2/account/activities/OPEXP").json()
        assert by_type == [expired]


# ---------------------------------------------------------------------------- the close


def test_at_the_close_in_the_money_calls_are_exercised_and_the_rest_expires(
    sample: BarFile,
) -> None:
    """With Alpaca's liquidation off, what is held at the close settles: the 460 call (QQQ
    closes at 463.84) is exercised into 200 shares at 460, the 455 put expires."""
    with running_emulator(sample, start_bar=AT_1500, options=whole(liquidate=False)) as server:
        client = trading_client(server)
        holding(server, client, ITM_CALL, 2)
        holding(server, client, OTM_PUT, 1)
        before = cash(client)
        advance(server, CLOSE - AT_1500)
        assert sample.bars[CLOSE - 1].close == 463.84
        assert cash(client) == before - 460 * 200
        shares = client.get_open_position("QQQ")
        assert isinstance(shares, Position)
        assert (shares.qty, dec(shares.avg_entry_price)) == ("200", Decimal(460))
        assert [p.symbol for p in client.get_all_positions() if isinstance(p, Position)] == ["QQQ"]
        settled = option_activities(server, activity_types="OPEXP,OPEXC,OPTRD", direction="asc")
        assert [(a["activity_type"], a["symbol"], a["qty"]) for a in settled] == [
            ("OPEXC", ITM_CALL, "-2"),
            ("OPTRD", "QQQ", "200"),
            ("OPEXP", OTM_PUT, "-1"),
        ]
        exercise, trade, _ = settled
        assert (exercise["description"], exercise["net_amount"]) == ("Option Exercise", "0")
        assert (trade["price"], trade["net_amount"]) == ("460", "-92000")
        newest_first = option_activities(server, activity_types="OPEXP,OPEXC")
        assert [a["activity_type"] for a in newest_first] == ["OPEXP", "OPEXC"]


@pytest.mark.parametrize(("shares", "exercised"), [(100, True), (0, False)])
def test_an_in_the_money_put_is_exercised_only_with_shares_to_deliver(
    sample: BarFile, shares: int, exercised: bool
) -> None:
    with running_emulator(sample, start_bar=AT_1500, options=whole(liquidate=False)) as server:
        client = trading_client(server)
        if shares:
            client.submit_order(
                MarketOrderRequest(
                    symbol="QQQ", qty=shares, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
                )
            )
            settle(server)
        holding(server, client, ITM_PUT, 1)
        before = cash(client)
        advance(server, CLOSE - AT_1500)
        (settled,) = option_activities(server, activity_types="OPEXP,OPEXC")
        assert settled["symbol"] == ITM_PUT
        if exercised:
            assert settled["activity_type"] == "OPEXC"
            assert cash(client) == before + 470 * 100  # the shares sold at the strike
            assert client.get_all_positions() == []
        else:  # no shares to deliver: Alpaca places a do-not-exercise, the put expires
            assert settled["activity_type"] == "OPEXP"
            assert cash(client) == before
            assert client.get_all_positions() == []


def test_a_replay_ending_before_the_close_settles_nothing(sample: BarFile) -> None:
    first_day = {"QQQ": sample.bars[: CLOSE - 30]}  # the replay stops at 15:30
    account = PaperAccount(first_day, sample.calendar, options=whole(liquidate=False))
    for _ in range(AT_1500):
        account.complete_bar()
    account.submit(
        {"symbol": ITM_CALL, "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"}
    )
    account.settle()
    while not account.finished:
        account.complete_bar()
    assert account.position_of(ITM_CALL) == 1  # the close never came
    assert account.account_activities()[-1]["activity_type"] == "FILL"
