"""Orders on option contracts: the emulator takes and refuses them, fills them and keeps the
positions as Alpaca paper does (issue #12).

The unmodified alpaca-py TradingClient and TradingStream drive the loopback emulator on 127.0.0.1
over the bundled QQQ sample; the fills are checked against the contract's modelled quote at the
fill's minute (`PaperAccount.option_quote`), which is what Alpaca's paper engine fills against
(the NBBO; on the free plan a modelled one too). The rules and their sources are in
src/ict_trader/adapters/alpaca/emulator/option_orders.py and docs/options.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetClass,
    AssetExchange,
    OrderClass,
    OrderSide,
    OrderStatus,
    PositionIntent,
    TimeInForce,
)
from alpaca.trading.models import Order, Position, TradeAccount
from alpaca.trading.requests import (
    ClosePositionRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    advance,
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

NOW = datetime(2024, 7, 29, 15, 10, tzinfo=UTC)
START = 100  # bars completed: 2024-07-29 11:10 New York
CALL = "QQQ240729C00460000"  # in the money at the start (QQQ 463.58)
PUT = "QQQ240729P00465000"


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def submitted(client: TradingClient, request: OrderRequest) -> Order:
    answer = client.submit_order(request)
    assert isinstance(answer, Order)
    return answer


def order(client: TradingClient, order_id: object) -> Order:
    found = client.get_order_by_id(str(order_id))
    assert isinstance(found, Order)
    return found


def account(client: TradingClient) -> TradeAccount:
    found = client.get_account()
    assert isinstance(found, TradeAccount)
    return found


def position(client: TradingClient, symbol: str) -> Position:
    found = client.get_open_position(symbol)
    assert isinstance(found, Position)
    return found


# ---------------------------------------------------------------------------- fills


def test_a_market_buy_fills_at_the_ask_the_stream_reports_it_and_cash_pays_100_a_contract(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        quote = server.account.option_quote(CALL)
        cash = dec(account(client).cash)
        with trade_updates(server) as updates:
            answer = submitted(client, buy(CALL, 3, client_order_id="call-1"))
            events = take_until(updates, lambda u: u.event == "fill")
        assert answer.status is OrderStatus.PENDING_NEW
        assert (answer.asset_class, answer.position_intent) == (
            AssetClass.US_OPTION,
            PositionIntent.BUY_TO_OPEN,
        )
        assert [e.event for e in events] == ["pending_new", "new", "fill"]
        fill = events[-1]
        assert (dec(fill.price), fill.qty, fill.position_qty) == (quote.ask, 3, 3)
        assert fill.order.asset_class is AssetClass.US_OPTION
        assert fill.order.position_intent is PositionIntent.BUY_TO_OPEN
        assert fill.order.symbol == CALL and fill.order.client_order_id == "call-1"
        filled = order(client, answer.id)
        assert (filled.status, dec(filled.filled_avg_price)) == (OrderStatus.FILLED, quote.ask)
        after = account(client)
        assert dec(after.cash) == cash - quote.ask * 3 * 100
        held = position(client, CALL)
        mid = (quote.bid + quote.ask) / 2
        assert (held.asset_class, held.exchange, held.side.value) == (
            AssetClass.US_OPTION,
            AssetExchange.EMPTY,
            "long",
        )
        assert (held.qty, held.qty_available) == ("3", "3")
        assert dec(held.avg_entry_price) == quote.ask
        assert dec(held.cost_basis) == quote.ask * 300
        assert dec(held.market_value) == mid * 300
        assert dec(held.current_price) == mid
        assert dec(held.unrealized_pl) == (mid - quote.ask) * 300
        assert dec(after.equity) == dec(after.cash) + mid * 300
        assert dec(after.options_buying_power) == dec(after.cash)
        by_id = client.get_open_position(str(held.asset_id))  # the contract's id
        assert isinstance(by_id, Position) and by_id.symbol == CALL


def test_closing_sells_at_the_bid_and_the_position_is_gone(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        cash = dec(account(client).cash)
        opened = submitted(client, buy(PUT, 2))
        settle(server)
        paid = dec(order(client, opened.id).filled_avg_price)
        advance(server, 30)
        quote = server.account.option_quote(PUT)
        half = client.close_position(PUT, ClosePositionRequest(qty="1"))
        assert isinstance(half, Order) and half.position_intent is PositionIntent.SELL_TO_CLOSE
        settle(server)
        assert dec(order(client, half.id).filled_avg_price) == quote.bid
        assert position(client, PUT).qty == "1"
        rest = submitted(
            client,
            MarketOrderRequest(
                symbol=PUT,
                qty=1,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                position_intent=PositionIntent.SELL_TO_CLOSE,
            ),
        )
        settle(server)
        assert dec(order(client, rest.id).filled_avg_price) == quote.bid
        assert client.get_all_positions() == []
        assert dec(account(client).cash) == cash + (quote.bid - paid) * 2 * 100


def test_limit_orders_fill_once_marketable_checked_each_minute(sample: BarFile) -> None:
    """A buy limit rests while the ask is above it and fills at the ask once it is not; a sell
    limit likewise against the bid. The quote is checked every emulated minute."""
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        limit = Decimal("4.00")
        assert server.account.option_quote(CALL).ask > limit
        entry = submitted(
            client,
            LimitOrderRequest(
                symbol=CALL,
                qty=2,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=float(limit),
            ),
        )
        settle(server)
        assert order(client, entry.id).status is OrderStatus.NEW
        waited = _until_filled(server, client, entry.id, lambda q: q.ask <= limit)
        filled = order(client, entry.id)
        assert dec(filled.filled_avg_price) == waited.ask <= limit

        target = Decimal("5.00")
        assert server.account.option_quote(CALL).bid < target
        exit_ = submitted(
            client,
            LimitOrderRequest(
                symbol=CALL,
                qty=2,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                limit_price=float(target),
                position_intent=PositionIntent.SELL_TO_CLOSE,
            ),
        )
        settle(server)
        assert position(client, CALL).qty_available == "0"  # the exit holds the contracts
        reached = _until_filled(server, client, exit_.id, lambda q: q.bid >= target)
        assert dec(order(client, exit_.id).filled_avg_price) == reached.bid >= target


def _until_filled(
    server: EmulatorServer, client: TradingClient, order_id: object, marketable: Any
) -> Any:
    """Advance minute by minute until the order fills: at every minute before, the quote was
    not marketable; the minute it filled, it was. Answers that minute's quote."""
    for _ in range(300):
        advance(server, 1)
        quote = server.account.option_quote(CALL)
        if order(client, order_id).status is OrderStatus.FILLED:
            assert marketable(quote)
            return quote
        assert not marketable(quote), quote
    raise AssertionError("the limit never became marketable")


def test_a_market_sell_waits_while_nobody_bids(sample: BarFile) -> None:
    far = "QQQ240729C00488000"  # 24 strikes out of the money: no bid at all
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        quote = server.account.option_quote(far)
        assert quote.bid == 0 and Decimal(0) < quote.ask <= Decimal("0.02")
        opened = submitted(client, buy(far, 1))
        settle(server)
        assert dec(order(client, opened.id).filled_avg_price) == quote.ask
        closing = client.close_position(far)
        settle(server)
        advance(server, 3)
        assert isinstance(closing, Order)
        assert order(client, closing.id).status is OrderStatus.NEW
        assert position(client, far).qty == "1"


def test_buying_power_for_options_is_cash_and_counts_open_option_buys(sample: BarFile) -> None:
    options = EmulatorOptions(partial_fill_rate=0.0, starting_cash=Decimal(1000))
    with running_emulator(sample, start_bar=START, options=options) as server:
        client = trading_client(server)
        resting = submitted(
            client,
            LimitOrderRequest(
                symbol=CALL,
                qty=2,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=3.00,
            ),
        )
        settle(server)
        assert order(client, resting.id).status is OrderStatus.NEW
        assert dec(account(client).options_buying_power) == Decimal(400)  # 1000 - 2 x 300
        with pytest.raises(APIError) as refused:
            client.submit_order(buy(CALL, 1))  # 100 x the ask (4.45) > 400
        assert refused.value.status_code == 403
        assert refused.value.message == "insufficient options buying power"
        # the bot's broker reads it, so its engine sizes option buys to it
        seen = AlpacaBroker(KEY, SECRET, url_override=server.base_url).account(NOW)
        assert seen.options_buying_power == Decimal(400)
        assert seen.buying_power != seen.options_buying_power


# ---------------------------------------------------------------------------- refusals

REFUSED: list[tuple[str, Callable[[], OrderRequest], int, str]] = [
    (
        "bracket",
        lambda: buy(
            CALL,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=9),
            stop_loss=StopLossRequest(stop_price=1),
        ),
        422,
        "order_class bracket provided not supported for options trading",
    ),
    (
        "oco",
        lambda: LimitOrderRequest(
            symbol=CALL,
            qty=1,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=9),
            stop_loss=StopLossRequest(stop_price=1),
        ),
        422,
        "order_class oco provided not supported for options trading",
    ),
    (
        "oto",
        lambda: buy(CALL, order_class=OrderClass.OTO, stop_loss=StopLossRequest(stop_price=1)),
        422,
        "order_class oto provided not supported for options trading",
    ),
    (
        "stop",
        lambda: StopOrderRequest(
            symbol=CALL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, stop_price=5
        ),
        422,
        "order_type stop provided not supported for options trading",
    ),
    (
        "stop_limit",
        lambda: StopLimitOrderRequest(
            symbol=CALL,
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            stop_price=5,
            limit_price=5.1,
        ),
        422,
        "order_type stop_limit provided not supported for options trading",
    ),
    (
        "trailing_stop",
        lambda: TrailingStopOrderRequest(
            symbol=CALL, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, trail_price=1
        ),
        422,
        "order_type trailing_stop provided not supported for options trading",
    ),
    (
        "gtc",
        lambda: buy(CALL, time_in_force=TimeInForce.GTC),
        422,
        "order_time_in_force provided not supported for options trading",
    ),
    (
        "ioc",
        lambda: buy(CALL, time_in_force=TimeInForce.IOC),
        422,
        "order_time_in_force provided not supported for options trading",
    ),
    (
        "fractional",
        lambda: buy(CALL, 1.5),
        422,
        "fractional orders are not supported for options trading",
    ),
    (
        "notional",
        lambda: MarketOrderRequest(
            symbol=CALL, notional=500, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        ),
        422,
        "notional orders are not supported for options trading",
    ),
    (
        "three decimals",
        lambda: LimitOrderRequest(
            symbol=CALL,
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=4.125,
        ),
        422,
        "limit price must be limited to 2 decimal places",
    ),
    (
        "extended hours",
        lambda: LimitOrderRequest(
            symbol=CALL,
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=4.1,
            extended_hours=True,
        ),
        422,
        "extended hours orders are not supported for options trading",
    ),
    (
        "naked call",
        lambda: MarketOrderRequest(
            symbol=CALL,
            qty=2,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            position_intent=PositionIntent.SELL_TO_OPEN,
        ),
        403,
        "insufficient underlying qty available for covered call (required: 200, available: 0)",
    ),
    (
        "naked put",
        lambda: MarketOrderRequest(
            symbol=PUT, qty=3, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
        ),  # no position: a sell opens; 3 x 46,500 of strike is more than the cash
        403,
        "insufficient options buying power for cash-secured put "
        "(required: 139500, available: 100000)",
    ),
    (
        "cash-secured put",
        lambda: MarketOrderRequest(
            symbol=PUT,
            qty=1,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            position_intent=PositionIntent.SELL_TO_OPEN,
        ),
        422,
        "selling options to open (covered calls, cash-secured puts) is not emulated",
    ),
    (
        "closing nothing",
        lambda: MarketOrderRequest(
            symbol=CALL,
            qty=1,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            position_intent=PositionIntent.SELL_TO_CLOSE,
        ),
        403,
        "insufficient qty available for order (requested: 1, available: 0)",
    ),
    (
        "intent against side",
        lambda: buy(CALL, position_intent=PositionIntent.SELL_TO_CLOSE),
        422,
        "position_intent sell_to_close does not match side buy",
    ),
    (
        "unlisted strike",
        lambda: buy("QQQ240729C00999000"),
        422,
        'asset "QQQ240729C00999000" not found',
    ),
    (
        "tomorrow's contract",
        lambda: buy("QQQ240730C00460000"),
        422,
        'asset "QQQ240730C00460000" not found',
    ),
]


@pytest.mark.parametrize(
    ("make", "status", "message"),
    [pytest.param(make, status, message, id=name) for name, make, status, message in REFUSED],
)
def test_orders_alpaca_refuses_for_options_are_refused_with_its_answer(
    sample: BarFile, make: Callable[[], OrderRequest], status: int, message: str
) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        with pytest.raises(APIError) as refused:
            client.submit_order(make())
        assert (refused.value.status_code, refused.value.message) == (status, message)
        assert refused.value.code == (42210000 if status == 422 else 40310000) or (
            status == 422 and refused.value.code == 40010001
        )
        assert server.account.orders == {}


def test_a_call_is_covered_only_by_shares_on_hand(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        shares = MarketOrderRequest(
            symbol="QQQ", qty=150, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
        submitted(client, shares)
        settle(server)
        sell_two = MarketOrderRequest(
            symbol=CALL,
            qty=2,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            position_intent=PositionIntent.SELL_TO_OPEN,
        )
        with pytest.raises(APIError) as short_of_shares:
            client.submit_order(sell_two)
        assert short_of_shares.value.message.endswith("(required: 200, available: 150)")
        sell_one = sell_two.model_copy(update={"qty": 1})
        with pytest.raises(APIError) as covered:
            client.submit_order(sell_one)
        assert covered.value.status_code == 422 and "not emulated" in covered.value.message


@pytest.mark.parametrize(("level", "buys"), [(0, False), (1, False), (2, True), (3, True)])
def test_buying_options_needs_trading_level_2(sample: BarFile, level: int, buys: bool) -> None:
    with running_emulator(sample, start_bar=START, options=whole(trading_level=level)) as server:
        client = trading_client(server)
        seen = account(client)
        assert (seen.options_trading_level, seen.options_approved_level) == (level, level)
        if buys:
            assert submitted(client, buy(CALL)).status is OrderStatus.PENDING_NEW
            return
        with pytest.raises(APIError) as refused:
            client.submit_order(buy(CALL))
        assert refused.value.status_code == 403
        assert refused.value.message == (
            f"options trading level {level} does not permit buying options (level 2 required)"
        )


def test_an_intent_left_out_is_inferred_and_echoed(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START, options=whole()) as server:
        client = trading_client(server)
        opened = submitted(
            client,
            MarketOrderRequest(symbol=CALL, qty=1, side=OrderSide.BUY, time_in_force="day"),
        )
        settle(server)
        closed = submitted(
            client,
            MarketOrderRequest(symbol=CALL, qty=1, side=OrderSide.SELL, time_in_force="day"),
        )
        settle(server)
        assert [order(client, o.id).position_intent for o in (opened, closed)] == [
            PositionIntent.BUY_TO_OPEN,
            PositionIntent.SELL_TO_CLOSE,
        ]
        shares = submitted(
            client,
            MarketOrderRequest(symbol="QQQ", qty=1, side=OrderSide.BUY, time_in_force="day"),
        )
        assert shares.position_intent is None and shares.asset_class is AssetClass.US_EQUITY
