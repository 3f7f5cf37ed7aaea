"""Option orders and positions through the Alpaca broker with the real alpaca-py: what goes
over the wire (position_intent, day, whole contracts, cent limits, no OCO) and how Alpaca's
`us_option` positions are read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.core.events import OrderAccepted, OrderRejected
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side
from tests.canned_alpaca import KEY, SECRET, Canned, canned_alpaca, option_position_json

CALL = "QQQ240729C00466000"
NOW = datetime(2024, 7, 29, 17, 31, tzinfo=UTC)


def order(leg: Leg, side: Side, kind: OrderType, **fields: object) -> OrderRequest:
    values: dict[str, object] = {
        "client_order_id": f"ict-QQQ-202407291730l-calls-{leg.value}",
        "symbol": CALL,
        "side": side,
        "qty": 3,
        "type": kind,
        "trade_id": "ict-QQQ-202407291730l-calls",
        "profile": "calls",
        "leg": leg,
        "created_at": NOW,
        "position_intent": "buy_to_open" if leg is Leg.ENTRY else "sell_to_close",
        **fields,
    }
    return OrderRequest(**values)  # type: ignore[arg-type]


def posted(canned: Canned) -> list[dict[str, object]]:
    return [s.body for s in canned.calls("/v2/orders") if s.method == "POST" and s.body]


def test_an_option_entry_is_a_day_limit_with_its_intent_in_whole_contracts_at_cents() -> None:
    canned = Canned()
    with canned_alpaca(canned) as url:
        broker = AlpacaBroker(KEY, SECRET, url_override=url, sleep=lambda s: None)
        entry = order(
            Leg.ENTRY,
            Side.BUY,
            OrderType.LIMIT,
            limit_price=Decimal("1.2345"),
            time_in_force="gtc",
        )
        broker.submit(entry)
        events = broker.events()
    [body] = posted(canned)
    assert body["symbol"] == CALL
    assert (body["side"], body["type"], body["position_intent"]) == ("buy", "limit", "buy_to_open")
    assert body["time_in_force"] == "day"  # the only one Alpaca takes on an option
    assert float(str(body["qty"])) == 3
    assert Decimal(str(body["limit_price"])) == Decimal("1.24")  # up: a buy stays marketable
    assert "order_class" not in body or body["order_class"] == "simple"
    assert [type(e) for e in events] == [OrderAccepted]


def test_an_option_exit_sells_to_close_and_a_limit_sell_rounds_down() -> None:
    canned = Canned()
    with canned_alpaca(canned) as url:
        broker = AlpacaBroker(KEY, SECRET, url_override=url, sleep=lambda s: None)
        broker.submit(order(Leg.EXIT, Side.SELL, OrderType.MARKET))
        # a resting premium target, even one the engine put in an OCO group, goes alone and now
        target = order(
            Leg.TARGET,
            Side.SELL,
            OrderType.LIMIT,
            limit_price=Decimal("2.479"),
            oco_group="g",
        )
        broker.submit(target)
    market, limit = posted(canned)
    assert (market["type"], market["side"], market["position_intent"]) == (
        "market",
        "sell",
        "sell_to_close",
    )
    assert (limit["type"], limit["position_intent"]) == ("limit", "sell_to_close")
    assert Decimal(str(limit["limit_price"])) == Decimal("2.47")
    assert "take_profit" not in limit and "stop_loss" not in limit


def test_a_stop_on_an_option_is_refused_here_and_never_sent() -> None:
    canned = Canned()
    with canned_alpaca(canned) as url:
        broker = AlpacaBroker(KEY, SECRET, url_override=url, sleep=lambda s: None)
        broker.submit(order(Leg.STOP, Side.SELL, OrderType.STOP, stop_price=Decimal("0.50")))
        events = broker.events()
    assert posted(canned) == []
    [rejected] = events
    assert isinstance(rejected, OrderRejected)
    assert rejected.reason == "not sent: Alpaca takes no stop orders on options"


def test_share_orders_carry_no_position_intent() -> None:
    canned = Canned()
    with canned_alpaca(canned) as url:
        broker = AlpacaBroker(KEY, SECRET, url_override=url, sleep=lambda s: None)
        shares = order(Leg.ENTRY, Side.BUY, OrderType.MARKET, symbol="QQQ", position_intent=None)
        broker.submit(shares)
    [body] = posted(canned)
    assert body["symbol"] == "QQQ" and "position_intent" not in body


def test_option_positions_are_read_in_contracts_by_occ_symbol() -> None:
    canned = Canned(positions=[option_position_json(CALL, 3, "1.24")])
    with canned_alpaca(canned) as url:
        broker = AlpacaBroker(KEY, SECRET, url_override=url, sleep=lambda s: None)
        assert broker.positions() == {CALL: 3}
