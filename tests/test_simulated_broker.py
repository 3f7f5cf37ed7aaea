"""The simulated broker's fill model and accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ict_trader.adapters.simulated import SimulatedBroker, SimulatedBrokerConfig
from ict_trader.core.bars import Bar
from ict_trader.core.events import Event, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side

T0 = datetime(2024, 7, 29, 14, 0, tzinfo=UTC)


def bar(minute: int, o: float, h: float, lo: float, c: float, *, day_offset: int = 0) -> Bar:
    return Bar(T0 + timedelta(days=day_offset, minutes=minute), o, h, lo, c, 100.0)


def order(
    cid: str,
    side: Side,
    qty: int,
    kind: OrderType = OrderType.MARKET,
    *,
    limit: str | None = None,
    stop: str | None = None,
    oco: str | None = None,
    at: datetime = T0,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol="QQQ",
        side=side,
        qty=qty,
        type=kind,
        trade_id="t",
        profile="p",
        leg=Leg.ENTRY if kind is OrderType.MARKET else Leg.TARGET,
        limit_price=Decimal(limit) if limit else None,
        stop_price=Decimal(stop) if stop else None,
        oco_group=oco,
        created_at=at,
    )


def run_bar(broker: SimulatedBroker, b: Bar) -> list[Event]:
    broker.open_bar(b, "QQQ")
    broker.close_bar(b, "QQQ")
    return broker.events()


def fills(events: list[Event]) -> list[tuple[str, int, Decimal]]:
    return [(e.client_order_id, e.qty, e.price) for e in events if isinstance(e, OrderFilled)]


def test_market_orders_fill_at_the_next_open_with_slippage() -> None:
    broker = SimulatedBroker(SimulatedBrokerConfig(slippage_bps=Decimal(10)))
    broker.submit(order("buy", Side.BUY, 5))
    broker.submit(order("sell", Side.SELL, 3))
    assert [type(e) for e in broker.events()] == [OrderAccepted, OrderAccepted]
    events = run_bar(broker, bar(1, 100.0, 101.0, 99.0, 100.5))
    assert fills(events) == [("buy", 5, Decimal("100.1000")), ("sell", 3, Decimal("99.9000"))]
    assert broker.position("QQQ") == 2


def test_limit_touch_is_inclusive_and_gaps_fill_at_the_open() -> None:
    broker = SimulatedBroker()
    broker.submit(order("sell-limit", Side.SELL, 1, OrderType.LIMIT, limit="101"))
    broker.submit(order("buy-limit", Side.BUY, 1, OrderType.LIMIT, limit="95"))
    broker.events()
    assert fills(run_bar(broker, bar(1, 100, 100.99, 99, 100))) == []
    assert fills(run_bar(broker, bar(2, 100, 101.0, 99, 100))) == [
        ("sell-limit", 1, Decimal("101"))
    ]
    # The buy limit at 95: the next bar opens at 94 (gap through) -> filled at the open.
    assert fills(run_bar(broker, bar(3, 94, 96, 93, 95))) == [("buy-limit", 1, Decimal("94"))]


def test_stop_and_target_in_one_bar_the_stop_wins() -> None:
    broker = SimulatedBroker(SimulatedBrokerConfig(slippage_bps=Decimal(0)))
    broker.submit(order("target", Side.SELL, 2, OrderType.LIMIT, limit="105", oco="g"))
    broker.submit(order("stop", Side.SELL, 2, OrderType.STOP, stop="95", oco="g"))
    broker.events()
    events = run_bar(broker, bar(1, 100, 106, 94, 100))
    assert fills(events) == [("stop", 2, Decimal("95"))]
    canceled = [e for e in events if isinstance(e, OrderCanceled)]
    assert [(e.client_order_id, e.reason) for e in canceled] == [
        ("target", "canceled: OCO sibling filled")
    ]


def test_day_orders_expire_at_the_next_session() -> None:
    broker = SimulatedBroker()
    broker.submit(order("target", Side.SELL, 1, OrderType.LIMIT, limit="200"))
    broker.events()
    assert run_bar(broker, bar(1, 100, 101, 99, 100)) == []
    events = run_bar(broker, bar(0, 100, 101, 99, 100, day_offset=1))
    assert [(e.client_order_id, e.reason) for e in events if isinstance(e, OrderCanceled)] == [
        ("target", "expired at the session close")
    ]
    assert len(events) == 1
    assert broker.order("target") is not None
    assert broker.open_orders() == []


def test_a_client_order_id_is_never_accepted_twice() -> None:
    broker = SimulatedBroker()
    broker.submit(order("same", Side.BUY, 1))
    broker.cancel("same")
    broker.submit(order("same", Side.BUY, 1))
    events = broker.events()
    assert isinstance(events[-1], OrderRejected)
    assert events[-1].reason == "client_order_id must be unique"


def test_cash_equity_and_position_for_long_and_short() -> None:
    broker = SimulatedBroker(SimulatedBrokerConfig(starting_equity=Decimal(10_000)))
    broker.submit(order("short", Side.SELL, 10))
    run_bar(broker, bar(1, 100, 100, 99, 99))  # sold 10 at 100, marked at 99
    account = broker.account(T0)
    assert broker.position("QQQ") == -10
    assert account.cash == Decimal(11_000)
    assert account.equity == Decimal(10_010)
    broker.submit(order("cover", Side.BUY, 10))
    run_bar(broker, bar(2, 98, 98, 97, 97))
    assert broker.position("QQQ") == 0
    assert broker.account(T0).equity == Decimal(10_020)
    assert broker.idle


def test_cancel_of_a_finished_order_is_a_no_op() -> None:
    broker = SimulatedBroker()
    broker.submit(order("m", Side.BUY, 1))
    run_bar(broker, bar(1, 100, 100, 100, 100))
    broker.cancel("m")
    broker.cancel("never-sent")
    assert broker.events() == []


def test_invalid_orders_are_rejected() -> None:
    broker = SimulatedBroker()
    broker.submit(order("zero", Side.BUY, 0))
    broker.submit(order("no-price", Side.SELL, 1, OrderType.LIMIT))
    reasons = [e.reason for e in broker.events() if isinstance(e, OrderRejected)]
    assert reasons == ["qty must be positive, got 0", "limit orders need a positive limit_price"]
