"""The emulator's order side behaves as the real Alpaca paper API does, by default.

Every test drives the unmodified alpaca-py TradingClient (and TradingStream for trade updates)
against the loopback emulator on 127.0.0.1. Sources for each behaviour are in
docs/alpaca-fidelity.md and the header of src/ict_trader/adapters/alpaca/emulator/paper.py.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AccountStatus,
    OrderClass,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import (
    CancelOrderResponse,
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from hypothesis import given
from hypothesis import strategies as st

from ict_trader.adapters.alpaca.emulator import fills
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import (
    running_emulator,
    take,
    take_until,
    trade_updates,
    trading_client,
)

START = 100  # bars completed when a test starts: 2024-07-29 11:10 New York
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def whole(**changes: Any) -> EmulatorOptions:
    """Realistic defaults but no random partial fills, for tests that count executions."""
    return EmulatorOptions(partial_fill_rate=0.0, **changes)


def price_of(value: float) -> Decimal:
    return Decimal(repr(value))


def dec(value: object) -> Decimal:
    return Decimal(str(value))


def market(cid: str, side: OrderSide, qty: int) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="QQQ", qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def limit(
    cid: str, side: OrderSide, qty: int, price: Decimal, tif: TimeInForce = TimeInForce.DAY
) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol="QQQ",
        qty=qty,
        side=side,
        time_in_force=tif,
        limit_price=float(price),
        client_order_id=cid,
    )


def oco(cid: str, side: OrderSide, qty: int, take: Decimal, stop: Decimal) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol="QQQ",
        qty=qty,
        side=side,
        time_in_force=TimeInForce.DAY,
        client_order_id=cid,
        order_class=OrderClass.OCO,
        take_profit=TakeProfitRequest(limit_price=float(take)),
        stop_loss=StopLossRequest(stop_price=float(stop)),
    )


def order(client: TradingClient, order_id: object, nested: bool = False) -> Order:
    found = client.get_order_by_id(
        str(order_id), GetOrderByIdRequest(nested=True) if nested else None
    )
    assert isinstance(found, Order)
    return found


def orders(client: TradingClient, **query: Any) -> list[Order]:
    found = client.get_orders(GetOrdersRequest(**query))
    assert isinstance(found, list)
    return [o for o in found if isinstance(o, Order)]


def settle(server: EmulatorServer) -> None:
    server.call(server.settle())


def advance(server: EmulatorServer, bars: int) -> None:
    server.call(server.advance(bars))


def holding(server: EmulatorServer, client: TradingClient, qty: int) -> None:
    """Open a position of `qty` shares (negative: short) and wait until it is filled."""
    side = OrderSide.BUY if qty > 0 else OrderSide.SELL
    client.submit_order(market(f"open-{qty}", side, abs(qty)))
    settle(server)
    position = client.get_open_position("QQQ")
    assert isinstance(position, Position) and position.qty == str(qty)


def control(server: EmulatorServer, body: dict[str, Any] | list[str]) -> requests.Response:
    return requests.post(f"{server.base_url}/_emulator/account", json=body, timeout=10)


# ---------------------------------------------------------------------------- acceptance


def test_post_answers_pending_new_and_new_then_fill_follow_on_the_stream(sample: BarFile) -> None:
    ask = price_of(sample.bars[START].open) + CENT  # spread 0.02: one cent above the price
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        with trade_updates(server) as updates:
            answer = client.submit_order(market("m-1", OrderSide.BUY, 5))
            assert isinstance(answer, Order)
            assert (answer.status, answer.filled_qty, answer.filled_at) == (
                OrderStatus.PENDING_NEW,
                "0",
                None,
            )
            # nobody calls settle or advances: the emulator routes and fills by itself
            events = take(updates, 3)
        assert [(e.event, e.order.id) for e in events] == [
            ("pending_new", answer.id),
            ("new", answer.id),
            ("fill", answer.id),
        ]
        assert events[0].execution_id is None and events[2].execution_id is not None
        assert (dec(events[2].price), events[2].qty, events[2].position_qty) == (ask, 5, 5)
        filled = order(client, answer.id)
        assert (filled.status, dec(filled.filled_avg_price)) == (OrderStatus.FILLED, ask)


@pytest.mark.parametrize(("spread", "offset"), [("0.02", "-0.01"), ("0", "0")])
def test_a_market_sell_fills_at_the_bid(sample: BarFile, spread: str, offset: str) -> None:
    """The bid is the price less half the spread; spread 0 gives the traded price (old)."""
    expected = price_of(sample.bars[START].open) + Decimal(offset)
    options = whole(spread=Decimal(spread))
    with running_emulator(sample, start_bar=START, options=options) as server:
        client = trading_client(server)
        answer = client.submit_order(market("short", OrderSide.SELL, 4))
        assert isinstance(answer, Order) and answer.status is OrderStatus.PENDING_NEW
        settle(server)
        assert dec(order(client, answer.id).filled_avg_price) == expected


def test_a_late_rejection_arrives_on_the_stream(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole(reject_rate=1.0)) as server:
        client = trading_client(server)
        with trade_updates(server) as updates:
            answer = client.submit_order(market("doomed", OrderSide.BUY, 1))
            assert isinstance(answer, Order) and answer.status is OrderStatus.PENDING_NEW
            events = take(updates, 2)
        assert [e.event for e in events] == ["pending_new", "rejected"]
        assert order(client, answer.id).status is OrderStatus.REJECTED
        assert client.get_all_positions() == []


def test_orders_are_accepted_and_wait_while_the_market_is_closed(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=len(sample.bars), options=whole()) as server:
        client = trading_client(server)
        clock = client.get_clock()
        assert not clock.is_open  # type: ignore[union-attr]
        answer = client.submit_order(market("after-hours", OrderSide.BUY, 1))
        assert isinstance(answer, Order) and answer.status is OrderStatus.ACCEPTED
        settle(server)
        assert order(client, answer.id).status is OrderStatus.ACCEPTED
        assert client.get_all_positions() == []


def test_old_behaviour_fills_inside_the_post_when_asked(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole(fill_in_post=True)) as server:
        answer = trading_client(server).submit_order(market("at-once", OrderSide.BUY, 2))
        assert isinstance(answer, Order) and answer.status is OrderStatus.FILLED


# ---------------------------------------------------------------------------- OCO and legs


def test_an_oco_stop_leg_is_held_with_its_own_event_and_listed_only_when_nested(
    sample: BarFile,
) -> None:
    price = price_of(sample.bars[START].open)
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        holding(server, client, 10)
        with trade_updates(server) as updates:
            pair = client.submit_order(oco("exits", OrderSide.SELL, 10, price + 5, price - 5))
            assert isinstance(pair, Order) and pair.legs is not None
            (leg,) = pair.legs  # the POST answer carries the legs, as the spec's example
            assert (pair.status, leg.status) == (OrderStatus.PENDING_NEW, OrderStatus.HELD)
            events = take(updates, 3)
        assert [(e.event, e.order.id) for e in events] == [
            ("pending_new", pair.id),
            ("new", pair.id),
            ("held", leg.id),
        ]
        assert all(e.order.legs is None for e in events)
        assert [o.id for o in orders(client)] == [pair.id]  # the held leg is not "open"
        everything = orders(client, status=QueryOrderStatus.ALL)
        assert {o.id for o in everything} >= {pair.id, leg.id}
        assert all(o.legs is None for o in everything)  # each leg an independent order
        nested = orders(client, status=QueryOrderStatus.ALL, nested=True)
        assert leg.id not in {o.id for o in nested}
        (parent,) = [o for o in nested if o.id == pair.id]
        assert [x.id for x in parent.legs or []] == [leg.id]
        assert order(client, pair.id).legs is None
        assert [x.id for x in order(client, pair.id, nested=True).legs or []] == [leg.id]
        position = client.get_open_position("QQQ")
        assert isinstance(position, Position) and position.qty_available == "0"


def test_old_behaviour_puts_legs_in_every_body_when_asked(sample: BarFile) -> None:
    price = price_of(sample.bars[START].open)
    with running_emulator(sample, start_bar=START, options=whole(legs_always=True)) as server:
        client = trading_client(server)
        holding(server, client, 10)
        with trade_updates(server) as updates:
            pair = client.submit_order(oco("exits", OrderSide.SELL, 10, price + 5, price - 5))
            (first,) = take(updates, 1)
        assert isinstance(pair, Order) and pair.legs is not None
        assert (first.event, [x.id for x in first.order.legs or []]) == (
            "pending_new",
            [pair.legs[0].id],
        )
        assert [x.id for x in order(client, pair.id).legs or []] == [pair.legs[0].id]


@pytest.mark.parametrize(("qty", "side"), [(10, OrderSide.SELL), (-10, OrderSide.BUY)])
def test_an_oco_stop_must_be_a_cent_beyond_the_current_price(
    sample: BarFile, qty: int, side: OrderSide
) -> None:
    price = price_of(sample.bars[START].open)
    away = Decimal(1) if side is OrderSide.SELL else Decimal(-1)  # the take-profit's direction
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        holding(server, client, qty)
        before = len(server.account.orders)
        with pytest.raises(APIError) as refused:
            client.submit_order(oco("too-close", side, 10, price + 5 * away, price))
        assert refused.value.status_code == 422
        assert refused.value.code == 42210000
        sign = "<=" if side is OrderSide.SELL else ">="
        assert f"stop_loss.stop_price must be {sign} base_price" in str(refused.value)
        assert len(server.account.orders) == before  # nothing created
        accepted = client.submit_order(
            oco("one-cent", side, 10, price + 5 * away, price - away * CENT)
        )
        assert isinstance(accepted, Order) and accepted.status is OrderStatus.PENDING_NEW


@pytest.mark.parametrize(
    ("sibling_after_stop", "expected"),
    [("replaced", OrderStatus.REPLACED), ("canceled", OrderStatus.CANCELED)],
)
def test_a_stop_out_reports_the_take_profit_replaced(
    sample: BarFile, sibling_after_stop: str, expected: OrderStatus
) -> None:
    """alpaca-py #198: the take-profit is reported `replaced` after a stop-out (default); the
    docs' `canceled` is the switchable variant. The stop fills as a market order at the bid of
    the trade that elected it."""
    upcoming = sample.bars[START : START + 60]
    price = price_of(upcoming[0].open)
    stop = price - 1
    hit = next(i for i, b in enumerate(upcoming) if price_of(b.low) <= stop)
    assert price_of(upcoming[hit].open) > stop  # elected inside the bar, not at a gap
    options = whole(sibling_after_stop=sibling_after_stop)
    with running_emulator(sample, start_bar=START, options=options) as server:
        client = trading_client(server)
        holding(server, client, 10)
        pair = client.submit_order(oco("exits", OrderSide.SELL, 10, price + 50, stop))
        assert isinstance(pair, Order) and pair.legs is not None
        leg_id = pair.legs[0].id
        settle(server)  # routed (`new`) before the stream connects, as the other tests do
        with trade_updates(server) as updates:
            advance(server, hit + 1)
            events = take_until(updates, lambda e: e.order.id == pair.id)
        stop_fill = next(e for e in events if e.order.id == leg_id)
        assert (stop_fill.event, dec(stop_fill.price), stop_fill.qty) == ("fill", stop - CENT, 10)
        assert (events[-1].event, events[-1].order.status) == (expected.value, expected)
        assert order(client, pair.id).status is expected
        assert order(client, leg_id).status is OrderStatus.FILLED
        assert client.get_all_positions() == []


def test_a_partial_take_profit_shrinks_the_stop_to_the_rest(sample: BarFile) -> None:
    upcoming = sample.bars[START : START + 60]
    price = price_of(upcoming[0].open)
    take_price = (max(price_of(b.high) for b in upcoming[1:]) - CENT * 2).quantize(CENT)
    options = EmulatorOptions(partial_fill_rate=1.0, seed=5)
    with running_emulator(sample, start_bar=START, options=options) as server:
        client = trading_client(server)
        client.submit_order(market("entry", OrderSide.BUY, 10))
        settle(server)
        for _ in range(12):  # every fill is partial: the entry completes over a few bars
            if server.account.position == 10:
                break
            advance(server, 1)
        assert server.account.position == 10
        pair = client.submit_order(oco("exits", OrderSide.SELL, 10, take_price, price - 50))
        assert isinstance(pair, Order) and pair.legs is not None
        for _ in range(60):
            advance(server, 1)
            take_profit = order(client, pair.id)
            if take_profit.status is OrderStatus.PARTIALLY_FILLED:
                break
        assert take_profit.status is OrderStatus.PARTIALLY_FILLED
        rest = 10 - int(take_profit.filled_qty or 0)
        assert 0 < rest < 10
        assert order(client, pair.legs[0].id).qty == str(rest)


def test_held_bracket_legs_are_not_open_and_nested_lists_follow_the_parent(
    sample: BarFile,
) -> None:
    """alpaca-trade-api-python #322 and alpaca-trade-api-js #80/#87: once the entry has filled,
    only the take-profit is open; `nested=true` lists the legs under their parent only."""
    price = price_of(sample.bars[START].open)
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        entry = client.submit_order(
            MarketOrderRequest(
                symbol="QQQ",
                qty=5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=float(price + 50)),
                stop_loss=StopLossRequest(stop_price=float(price - 50)),
            )
        )
        assert isinstance(entry, Order) and entry.legs is not None
        assert [leg.status for leg in entry.legs] == [OrderStatus.HELD, OrderStatus.HELD]
        take_leg, stop_leg = entry.legs
        settle(server)
        assert [o.id for o in orders(client)] == [take_leg.id]
        assert {o.id for o in orders(client, status=QueryOrderStatus.CLOSED)} == {
            entry.id,
            stop_leg.id,
        }
        assert orders(client, nested=True) == []  # the parent is filled, so not open
        (parent,) = orders(client, status=QueryOrderStatus.ALL, nested=True)
        assert [leg.status for leg in parent.legs or []] == [OrderStatus.NEW, OrderStatus.HELD]


# ---------------------------------------------------------------------------- cancels, day end


def test_a_cancel_passes_through_pending_cancel_and_holds_the_shares_meanwhile(
    sample: BarFile,
) -> None:
    price = price_of(sample.bars[START].open)
    options = whole(settle_delay_ms=None)  # settles only at the next bar: every step visible
    with running_emulator(sample, start_bar=START, options=options) as server:
        client = trading_client(server)
        holding(server, client, 3)
        target = client.submit_order(limit("target", OrderSide.SELL, 3, price + 20))
        assert isinstance(target, Order)
        settle(server)
        with trade_updates(server) as updates:
            client.cancel_order_by_id(target.id)
            assert order(client, target.id).status is OrderStatus.PENDING_CANCEL
            with pytest.raises(APIError, match="insufficient qty available"):
                client.submit_order(market("too-early", OrderSide.SELL, 3))
            advance(server, 1)
            events = take(updates, 2)
        assert [(e.event, e.order.id) for e in events] == [
            ("pending_cancel", target.id),
            ("canceled", target.id),
        ]
        assert order(client, target.id).status is OrderStatus.CANCELED
        exit_order = client.submit_order(market("exit", OrderSide.SELL, 3))
        assert isinstance(exit_order, Order) and exit_order.status is OrderStatus.PENDING_NEW


def test_a_cancel_is_confirmed_shortly_after_by_default(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        bid = client.submit_order(limit("low-bid", OrderSide.BUY, 1, Decimal(1)))
        assert isinstance(bid, Order)
        settle(server)
        with trade_updates(server) as updates:
            client.cancel_order_by_id(bid.id)
            events = take(updates, 2)  # no bar completes: the emulator confirms by itself
        assert [e.event for e in events] == ["pending_cancel", "canceled"]


def test_cancel_all_answers_each_order_pending_cancel(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole(settle_delay_ms=None)) as server:
        client = trading_client(server)
        for n in (1, 2):
            client.submit_order(limit(f"bid-{n}", OrderSide.BUY, 1, Decimal(n)))
        settle(server)
        answers = client.cancel_orders()
        assert isinstance(answers, list) and len(answers) == 2
        assert all(isinstance(a, CancelOrderResponse) and a.status == 200 for a in answers)
        assert {a.body["status"] for a in answers if a.body} == {"pending_cancel"}
        settle(server)
        assert orders(client) == []


def test_day_orders_expire_and_gtc_orders_are_done_for_the_day(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        day = client.submit_order(limit("day", OrderSide.BUY, 1, Decimal(1)))
        gtc = client.submit_order(limit("gtc", OrderSide.BUY, 1, Decimal(2), TimeInForce.GTC))
        assert isinstance(day, Order) and isinstance(gtc, Order)
        settle(server)
        with trade_updates(server) as updates:
            # through the 16:00 close of 2024-07-29 (the clock then stays closed), and the next
            # session's first bar, at whose open the GTC order works again
            advance(server, 390 - START + 1)
            events = take(updates, 3)
        assert [(e.event, e.order.id) for e in events] == [
            ("expired", day.id),
            ("done_for_day", gtc.id),
            ("new", gtc.id),
        ]
        assert events[1].order.status is OrderStatus.DONE_FOR_DAY
        assert order(client, day.id).status is OrderStatus.EXPIRED
        assert order(client, gtc.id).status is OrderStatus.NEW
        assert [o.id for o in orders(client)] == [gtc.id]


# ---------------------------------------------------------------------------- paper fill rules


@pytest.mark.parametrize("spread", ["0.02", "0"])
def test_a_limit_fills_only_when_marketable_against_the_bid(sample: BarFile, spread: str) -> None:
    """A sell limit at the highest high of the next hour, rounded down to the cent: a trade
    touches it, but the bid (a cent lower) does not, up to and including the open that follows,
    so with the default spread it does not fill; with spread 0 (fills at traded prices, the old
    behaviour) it fills at the touching bar, at the limit."""
    window = sample.bars[START : START + 61]
    top = max(price_of(b.high) for b in window)
    level = top.quantize(CENT, rounding=ROUND_DOWN)
    touching = next(i for i, b in enumerate(window) if price_of(b.high) >= level)
    assert touching < len(window) - 1  # the open after it is in the window too
    with running_emulator(sample, start_bar=START, options=whole(spread=Decimal(spread))) as server:
        client = trading_client(server)
        holding(server, client, 3)
        target = client.submit_order(limit("target", OrderSide.SELL, 3, level))
        assert isinstance(target, Order)
        advance(server, touching + 1)
        now = order(client, target.id)
        if spread == "0":
            assert (now.status, dec(now.filled_avg_price)) == (OrderStatus.FILLED, level)
        else:
            assert (now.status, now.filled_qty) == (OrderStatus.NEW, "0")


def test_a_marketable_limit_fills_at_the_quote_not_at_its_limit(sample: BarFile) -> None:
    ask = price_of(sample.bars[START].open) + CENT
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        bid = client.submit_order(limit("generous", OrderSide.BUY, 2, ask + 3))
        assert isinstance(bid, Order)
        settle(server)
        assert dec(order(client, bid.id).filled_avg_price) == ask


def test_partial_fills_continue_at_later_bars(sample: BarFile) -> None:
    options = EmulatorOptions(partial_fill_rate=1.0, seed=3)
    with running_emulator(sample, start_bar=START, options=options) as server:
        client = trading_client(server)
        answer = client.submit_order(market("split", OrderSide.BUY, 10))
        assert isinstance(answer, Order)
        settle(server)
        settle(server)  # the rest waits for a later bar, not for the next request
        first = order(client, answer.id)
        assert first.status is OrderStatus.PARTIALLY_FILLED
        assert len(server.account.fill_activities()) == 1
        for _ in range(10):
            advance(server, 1)
            if order(client, answer.id).status is OrderStatus.FILLED:
                break
        activities = server.account.fill_activities()
        assert order(client, answer.id).status is OrderStatus.FILLED
        assert sum(int(a["qty"]) for a in activities) == 10
        assert [a["type"] for a in activities][-1] == "fill"
        times = [a["transaction_time"] for a in activities]
        assert times == sorted(set(times))  # one execution per bar, at later and later bars
        opens = {sample.bars[START + n].open for n in range(len(activities))}
        assert {float(dec(a["price"]) - CENT) for a in activities} <= opens


def doctored(sample: BarFile, changes: dict[int, tuple[float, float, float, float]]) -> BarFile:
    """The sample with some bars' open, high, low and close replaced (and a volume of 1)."""
    bars = list(sample.bars)
    for index, (o, h, low, c) in changes.items():
        bars[index] = bars[index]._replace(open=o, high=h, low=low, close=c, volume=1.0)
    return BarFile(path=sample.path, bars=bars, calendar=sample.calendar)


def test_a_buy_stop_rests_at_its_collar_when_the_price_gaps_above_it(sample: BarFile) -> None:
    """orders.md: a buy stop becomes a stop-limit at +2.5 % (stops of $50 or more). A gap far
    above that collar elects it but cannot fill it; it fills once the ask is back under."""
    price = price_of(sample.bars[START].open)
    stop = price + 1
    collar = fills.buy_stop_collar(stop)
    gap = float(collar + 10)
    back = float(price)
    bars = doctored(sample, {START + 1: (gap, gap, gap, gap), START + 2: (back,) * 4})
    with running_emulator(bars, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        holding(server, client, -300)  # size is never checked: the doctored bars trade 1 share
        cover = client.submit_order(
            StopOrderRequest(
                symbol="QQQ",
                qty=300,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                stop_price=float(stop),
                client_order_id="cover",
            )
        )
        assert isinstance(cover, Order)
        advance(server, 1)  # the gapped bar opens: the stop is elected, nothing fills
        assert (order(client, cover.id).status, server.account.position) == (OrderStatus.NEW, -300)
        assert server.account.get(str(cover.id)).elected
        advance(server, 1)  # the gapped bar completes, the price is back: it fills at the ask
        filled = order(client, cover.id)
        assert (filled.status, filled.filled_qty) == (OrderStatus.FILLED, "300")
        assert dec(filled.filled_avg_price) == price + CENT


def test_market_buys_reserve_a_price_allowance(sample: BarFile) -> None:
    """orders.md "Buying Power": a market buy is valued 2.5 % above the current price (QQQ is
    over $50), so an order the plain price would allow is refused, and an accepted one reserves
    the allowance until it fills."""
    price = price_of(sample.bars[START].open)
    power = Decimal(200_000)
    allowance = (price * Decimal("1.025")).quantize(CENT, rounding=ROUND_UP)
    too_many = int(power / (price * Decimal("1.01")))
    assert too_many * price < power < too_many * allowance
    affordable = int(power / allowance)
    with running_emulator(sample, start_bar=START, options=whole(settle_delay_ms=None)) as server:
        client = trading_client(server)
        with pytest.raises(APIError) as refused:
            client.submit_order(market("too-many", OrderSide.BUY, too_many))
        assert (refused.value.status_code, refused.value.code) == (403, 40310000)
        assert "insufficient buying power" in str(refused.value)
        client.submit_order(market("affordable", OrderSide.BUY, affordable))
        account = client.get_account()
        assert isinstance(account, TradeAccount)
        assert dec(account.buying_power) == power - affordable * allowance


# ---------------------------------------------------------------------------- account flags


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"trading_blocked": True}, "account is not authorized to trade"),
        ({"account_blocked": True}, "account is not authorized to trade"),
        ({"status": "ACCOUNT_UPDATED"}, "account is not authorized to trade"),
        ({"trade_suspended_by_user": True}, "new orders are rejected by user request"),
    ],
)
def test_a_blocked_account_refuses_new_orders(
    sample: BarFile, setting: dict[str, Any], message: str
) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        answer = control(server, setting)
        assert answer.status_code == 200
        account = client.get_account()
        assert isinstance(account, TradeAccount)
        (key, value) = next(iter(setting.items()))
        shown = account.status if key == "status" else getattr(account, key)
        assert shown == (AccountStatus(value) if key == "status" else value)
        with pytest.raises(APIError) as refused:
            client.submit_order(market("blocked", OrderSide.BUY, 1))
        assert (refused.value.status_code, refused.value.code) == (403, 40310000)
        assert message in str(refused.value)
        assert server.account.orders == {}
        restore = {key: "ACTIVE" if key == "status" else False}
        assert control(server, restore).status_code == 200
        allowed = client.submit_order(market("allowed", OrderSide.BUY, 1))
        assert isinstance(allowed, Order) and allowed.status is OrderStatus.PENDING_NEW


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"trading_blocked": True, "margin_blocked": True}, "'margin_blocked'"),
        ({"account_blocked": "yes"}, "account_blocked"),
        ({"status": "active"}, "'active'"),
        (["trading_blocked"], "JSON object"),
    ],
)
def test_the_account_control_route_refuses_bad_input(
    sample: BarFile, body: dict[str, Any] | list[str], named: str
) -> None:
    with running_emulator(sample, start_bar=START) as server:
        answer = control(server, body)
        assert answer.status_code == 422
        text = answer.json()["message"]
        assert text.startswith("POST /_emulator/account: ") and named in text
        assert "\n" not in text
        assert (server.account.status, set(server.account.flags.values())) == ("ACTIVE", {False})


# ---------------------------------------------------------------------------- faults


def test_duplicate_fills_keep_their_execution_id_in_the_new_lifecycle(sample: BarFile) -> None:
    with running_emulator(
        sample, start_bar=START, options=whole(duplicate_fill_rate=1.0)
    ) as server:
        client = trading_client(server)
        with trade_updates(server) as updates:
            client.submit_order(market("twice", OrderSide.BUY, 2))
            events = take(updates, 4)
        assert [e.event for e in events] == ["pending_new", "new", "fill", "fill"]
        assert events[2].execution_id == events[3].execution_id
        assert server.account.position == 2


# ---------------------------------------------------------------------------- the rules


prices = st.decimals(min_value=Decimal("1.00"), max_value=Decimal("2000"), places=2)
spreads = st.decimals(min_value=Decimal(0), max_value=Decimal("0.10"), places=2)
sides = st.sampled_from(["buy", "sell"])


@given(price=prices, level=prices, spread=spreads, side=sides)
def test_a_bar_of_one_price_reaches_a_limit_exactly_when_its_quote_is_marketable(
    price: Decimal, level: Decimal, spread: Decimal, side: str
) -> None:
    at = fills.quote(price, spread)
    assert at.bid <= price <= at.ask
    reached = fills.limit_reached_in_bar(side, level, price, price, spread)
    assert reached == fills.limit_marketable(side, level, at)


@given(stop=prices)
def test_the_buy_stop_collar_and_the_market_allowance_follow_orders_md(stop: Decimal) -> None:
    collar = fills.buy_stop_collar(stop)
    allowance = fills.market_buy_price_allowance(stop)
    rate = Decimal("0.04") if stop < 50 else Decimal("0.025")
    assert stop * (1 + rate) - CENT < collar <= stop * (1 + rate)
    assert stop * (1 + rate) <= allowance < stop * (1 + rate) + CENT
    assert collar.as_tuple().exponent == -2
