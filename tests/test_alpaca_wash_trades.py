"""Alpaca's wash-trade rule against the bot (unmodified alpaca-py, emulator).

Alpaca refuses an order opposite to an open order on the same symbol (403 "potential wash trade
detected. use complex orders"). Both profiles enter on the same signal, so the first entry's
fill sends its target while the second entry may still be open — under load a real race: the
target used to be rejected, and with OCO stops the engine then closed the trade at market at
once (a "stop" exit at the entry price). An exit refused so is deferred until our opposite order
is done, then sent; a refusal caused by somebody else's order stands.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from ict_trader.barfile import BarFile, load_bars
from ict_trader.brokers.alpaca import AlpacaBroker
from ict_trader.emulator.server import EmulatorServer
from ict_trader.events import Event, OrderAccepted, OrderCanceled, OrderFilled, OrderRejected
from ict_trader.orders import Leg, OrderType, Side
from tests.alpaca_emulator import KEY, SECRET, backtest_like, running_emulator
from tests.test_alpaca_behaviours import broker_for, order
from tests.test_live import SESSION_START

# routing and fills only when the next bar completes: the second entry stays open meanwhile
SLOW_ROUTING = backtest_like(settle_delay_ms=None)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def complete_a_bar(server: EmulatorServer, broker: AlpacaBroker) -> list[Event]:
    """One more bar at the emulator; the adapter reads its orders' news (the stream's job)."""
    server.call(server.advance(1))
    broker.poll_working()
    events = broker.events()
    broker.retry_deferred()
    return events + broker.events()


def first_entry_filled_second_open(
    server: EmulatorServer, broker: AlpacaBroker
) -> tuple[list[Event], Decimal]:
    """The conservative entry filled, the aggressive one sent and still open."""
    broker.submit(order("ict-a-entry", Side.SELL, 6, OrderType.MARKET, Leg.ENTRY))
    events = complete_a_bar(server, broker)
    assert any(isinstance(e, OrderFilled) and e.client_order_id == "ict-a-entry" for e in events)
    broker.submit(order("ict-b-entry", Side.SELL, 8, OrderType.MARKET, Leg.ENTRY))
    price = Decimal(str(server.account.mark()))
    return events + broker.events(), price


def test_a_target_refused_as_a_wash_trade_goes_out_once_the_other_entry_fills(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=SESSION_START + 92, options=SLOW_ROUTING) as server:
        broker = broker_for(server)
        _, price = first_entry_filled_second_open(server, broker)
        target = order(
            "ict-a-target", Side.BUY, 6, OrderType.LIMIT, Leg.TARGET, limit_price=price - 2
        )
        broker.submit(target)
        refused = broker.events()
        assert server.requests.count(("POST", "/v2/orders")) == 3  # the target was refused
        assert "ict-a-target" not in server.account.by_client_id
        assert "ict-a-target" in broker.working()  # deferred, still ours to manage
        later = complete_a_bar(server, broker)  # the second entry fills; the target goes out
        at_alpaca = server.account.by_client_id.get("ict-a-target")
        routed = complete_a_bar(server, broker)  # Alpaca routes it (slow routing: a bar later)
    assert not [e for e in refused + later + routed if isinstance(e, OrderRejected)]
    assert any(isinstance(e, OrderFilled) and e.client_order_id == "ict-b-entry" for e in later)
    assert at_alpaca is not None and at_alpaca.open and at_alpaca.qty == 6
    assert any(isinstance(e, OrderAccepted) and e.client_order_id == "ict-a-target" for e in routed)


def test_an_oco_refused_as_a_wash_trade_is_deferred_whole(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=SESSION_START + 92, options=SLOW_ROUTING) as server:
        broker = broker_for(server)
        _, price = first_entry_filled_second_open(server, broker)
        broker.submit(
            order(
                "ict-a-target",
                Side.BUY,
                6,
                OrderType.LIMIT,
                Leg.TARGET,
                limit_price=price - 2,
                oco_group="a",
            )
        )
        broker.submit(
            order(
                "ict-a-stop",
                Side.BUY,
                6,
                OrderType.STOP,
                Leg.STOP,
                stop_price=price + 2,
                oco_group="a",
            )
        )
        refused = broker.events()
        assert {"ict-a-target", "ict-a-stop"} <= set(broker.working())
        later = complete_a_bar(server, broker)
        parent = server.account.by_client_id.get("ict-a-target")
        later += complete_a_bar(server, broker)
    assert not [e for e in refused + later if isinstance(e, OrderRejected)]
    assert parent is not None and parent.order_class == "oco"
    assert len(parent.legs) == 1 and parent.legs[0].stop_price == price + 2
    accepted = {e.client_order_id for e in later if isinstance(e, OrderAccepted)}
    assert {"ict-a-target", "ict-a-stop"} <= accepted


def test_a_deferred_exit_canceled_before_it_went_out_is_reported_canceled(
    sample: BarFile,
) -> None:
    with running_emulator(sample, start_bar=SESSION_START + 92, options=SLOW_ROUTING) as server:
        broker = broker_for(server)
        _, price = first_entry_filled_second_open(server, broker)
        broker.submit(
            order("ict-a-target", Side.BUY, 6, OrderType.LIMIT, Leg.TARGET, limit_price=price - 2)
        )
        broker.cancel("ict-a-target")  # e.g. the time exit came first
        events = broker.events()
        later = complete_a_bar(server, broker)
        posts = server.requests.count(("POST", "/v2/orders"))
    canceled = [e for e in events if isinstance(e, OrderCanceled)]
    assert [e.client_order_id for e in canceled] == ["ict-a-target"]
    assert "ict-a-target" not in broker.working()
    assert "ict-a-target" not in {e.client_order_id for e in later if isinstance(e, OrderAccepted)}
    assert posts == 3  # two entries and the one refused attempt: never sent again


def test_a_wash_trade_against_somebody_elses_order_is_a_rejection(sample: BarFile) -> None:
    """Only our own opposite order will go away by itself; an order placed by hand is for a
    person to see, so the refusal is reported as Alpaca gave it."""
    with running_emulator(sample, start_bar=SESSION_START + 92, options=SLOW_ROUTING) as server:
        by_hand = TradingClient(KEY, SECRET, url_override=server.base_url)
        by_hand.submit_order(
            MarketOrderRequest(
                symbol="QQQ", qty=3, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
        broker = broker_for(server)
        price = Decimal(str(server.account.mark()))
        broker.submit(
            order("ict-a-target", Side.BUY, 6, OrderType.LIMIT, Leg.TARGET, limit_price=price - 2)
        )
        events = broker.events()
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.client_order_id for e in rejected] == ["ict-a-target"]
    assert "wash trade" in rejected[0].reason
    assert broker.working() == []


def test_an_entry_refused_as_a_wash_trade_is_a_rejection(sample: BarFile) -> None:
    """Deferred, an entry would go out long after its signal: it is rejected, as Alpaca said."""
    with running_emulator(sample, start_bar=SESSION_START + 92, options=SLOW_ROUTING) as server:
        broker = broker_for(server)
        broker.submit(order("ict-a-entry", Side.SELL, 6, OrderType.MARKET, Leg.ENTRY))
        broker.submit(order("ict-b-entry", Side.BUY, 8, OrderType.MARKET, Leg.ENTRY))
        events = broker.events()
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.client_order_id for e in rejected] == ["ict-b-entry"]
    assert broker.working() == ["ict-a-entry"]
