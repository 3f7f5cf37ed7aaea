"""The simulated broker trading option contracts: fills at the desk's quotes (ask, bid, limits
against the quote), cash and equity by 100 shares a contract, commission per contract,
settlement at expiry, and Alpaca's refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader.adapters.simulated import OptionFills, SimulatedBroker, SimulatedBrokerConfig
from ict_trader.core.bars import Bar
from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.events import (
    ContractQuoted,
    ContractUnavailable,
    Event,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    RequestContract,
)
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side

T0 = datetime(2024, 7, 29, 14, 0, tzinfo=UTC)
CALL = "QQQ240729C00460000"
PUT = "QQQ240729P00460000"
START = Decimal(100_000)


class Quotes:
    """A desk whose quotes the test sets: (bid, ask) per contract from a moment on."""

    def __init__(self) -> None:
        self.book: dict[str, list[tuple[datetime, Decimal, Decimal]]] = {}

    def set(self, symbol: str, at: datetime, bid: str, ask: str) -> None:
        self.book.setdefault(symbol, []).append((at, Decimal(bid), Decimal(ask)))

    def quote(self, symbol: str, at: datetime) -> ContractQuote | None:
        found = [row for row in self.book.get(symbol, []) if row[0] <= at]
        if not found:
            return None
        _, bid, ask = found[-1]
        return ContractQuote(symbol, at, bid, ask, PremiumSource.MODEL)

    def quote_contract(self, request: RequestContract) -> ContractQuoted | ContractUnavailable:
        return ContractUnavailable(request.time, request.request_id, "not used here")


def minute(n: int, price: float = 460.0, *, days: int = 0) -> Bar:
    return Bar(T0 + timedelta(days=days, minutes=n), price, price + 0.5, price - 0.5, price, 1e4)


def option_order(
    cid: str,
    side: Side,
    qty: int,
    kind: OrderType = OrderType.MARKET,
    *,
    symbol: str = CALL,
    limit: str | None = None,
    stop: str | None = None,
    at: datetime = T0,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        symbol=symbol,
        side=side,
        qty=qty,
        type=kind,
        trade_id="t",
        profile="p",
        leg=Leg.ENTRY if side is Side.BUY else Leg.EXIT,
        limit_price=Decimal(limit) if limit else None,
        stop_price=Decimal(stop) if stop else None,
        created_at=at,
        position_intent="buy_to_open" if side is Side.BUY else "sell_to_close",
    )


def broker_with(quotes: Quotes, fills: OptionFills | None = None) -> SimulatedBroker:
    broker = SimulatedBroker(SimulatedBrokerConfig(starting_equity=START), fills)
    broker.use_quotes(quotes)
    return broker


def step(broker: SimulatedBroker, bar: Bar) -> list[Event]:
    broker.open_bar(bar, "QQQ")
    broker.close_bar(bar, "QQQ")
    return broker.events()


def filled(events: list[Event]) -> list[tuple[str, int, Decimal, Decimal]]:
    return [
        (e.client_order_id, e.qty, e.price, e.commission)
        for e in events
        if isinstance(e, OrderFilled)
    ]


def test_market_orders_fill_at_the_ask_and_the_bid_with_slippage_and_100_a_contract() -> None:
    quotes = Quotes()
    quotes.set(CALL, T0, "1.20", "1.25")
    fills = OptionFills(slippage=Decimal("0.01"), commission_per_contract=Decimal("0.03"))
    broker = broker_with(quotes, fills)
    broker.submit(option_order("buy", Side.BUY, 4))
    broker.events()
    assert filled(step(broker, minute(0))) == [("buy", 4, Decimal("1.26"), Decimal("0.12"))]
    assert broker.position(CALL) == 4
    assert broker.contracts_held() == [CALL]
    # 4 contracts x 100 x $1.26 + 4 x $0.03
    assert broker.account(T0).cash == START - Decimal("504.12")
    quotes.set(CALL, T0 + timedelta(minutes=3), "1.50", "1.56")
    broker.submit(option_order("sell", Side.SELL, 4, at=T0 + timedelta(minutes=3)))
    broker.events()
    assert filled(step(broker, minute(2))) == []  # not placed before 14:03
    assert filled(step(broker, minute(3))) == [("sell", 4, Decimal("1.49"), Decimal("0.12"))]
    assert broker.position(CALL) == 0 and broker.contracts_held() == []
    # bought at 1.26, sold at 1.49: +0.23 x 400 = 92, less 0.24 commission
    assert broker.account(T0).cash == START + Decimal("92") - Decimal("0.24")
    assert broker.idle


def test_a_limit_buy_waits_for_the_ask_and_fills_at_it() -> None:
    quotes = Quotes()
    quotes.set(PUT, T0, "1.00", "1.10")
    broker = broker_with(quotes)
    broker.submit(option_order("buy", Side.BUY, 2, OrderType.LIMIT, symbol=PUT, limit="1.05"))
    broker.events()
    assert filled(step(broker, minute(0))) == []
    quotes.set(PUT, T0 + timedelta(minutes=1), "0.96", "1.02")
    assert filled(step(broker, minute(1))) == [("buy", 2, Decimal("1.02"), Decimal(0))]
    assert broker.account(T0).cash == START - Decimal("204")


def test_a_limit_sell_fills_at_its_limit_once_the_bid_reaches_it() -> None:
    quotes = Quotes()
    quotes.set(CALL, T0, "2.00", "2.04")
    broker = broker_with(quotes)
    broker.submit(option_order("buy", Side.BUY, 1))
    step(broker, minute(0))
    target = option_order(
        "target", Side.SELL, 1, OrderType.LIMIT, limit="2.50", at=T0 + timedelta(minutes=1)
    )
    broker.submit(target)
    broker.events()
    quotes.set(CALL, T0 + timedelta(minutes=1), "2.49", "2.55")  # ask above, bid below
    assert filled(step(broker, minute(1))) == []
    quotes.set(CALL, T0 + timedelta(minutes=2), "2.70", "2.76")  # gapped: still the limit
    assert filled(step(broker, minute(2))) == [("target", 1, Decimal("2.50"), Decimal(0))]
    assert broker.account(T0).cash == START + Decimal("46")  # (2.50 - 2.04) x 100


def test_without_a_quote_an_option_order_waits() -> None:
    quotes = Quotes()
    broker = broker_with(quotes)
    broker.submit(option_order("buy", Side.BUY, 1))
    broker.events()
    assert filled(step(broker, minute(0))) == []
    assert not broker.idle
    quotes.set(CALL, T0 + timedelta(minutes=1), "0.50", "0.55")
    assert filled(step(broker, minute(1))) == [("buy", 1, Decimal("0.55"), Decimal(0))]


def test_equity_marks_held_contracts_at_the_mid_of_the_closing_quote() -> None:
    quotes = Quotes()
    quotes.set(CALL, T0, "1.00", "1.04")
    broker = broker_with(quotes)
    # the close of the 14:00 bar is 14:01: the quote then moves the equity, not the cash
    quotes.set(CALL, T0 + timedelta(minutes=1), "1.50", "1.60")
    broker.submit(option_order("buy", Side.BUY, 3))
    broker.events()
    step(broker, minute(0))
    account = broker.account(T0 + timedelta(minutes=1))
    assert account.cash == START - Decimal("312")
    assert account.equity == START - Decimal("312") + Decimal("1.55") * 300


def test_a_contract_held_past_its_expiry_settles_at_intrinsic_value() -> None:
    quotes = Quotes()
    quotes.set(CALL, T0, "1.00", "1.04")
    quotes.set(PUT, T0, "3.00", "3.04")
    broker = broker_with(quotes)
    broker.submit(option_order("call", Side.BUY, 2))
    broker.submit(option_order("put", Side.BUY, 1, symbol=PUT))
    broker.events()
    step(broker, minute(0))
    step(broker, minute(1, 463.25))  # the underlying's last close on expiry day
    broker.open_bar(minute(0, 470.0, days=1), "QQQ")  # the next session
    assert broker.positions() == {}
    assert [(s.symbol, s.qty, s.price) for s in broker.settlements] == [
        (CALL, 2, Decimal("3.25")),
        (PUT, 1, Decimal(0)),
    ]
    assert broker.account(T0).cash == START - Decimal("208") - Decimal("304") + Decimal("650")
    assert broker.idle


def test_stops_and_three_decimal_prices_are_refused_and_day_orders_expire() -> None:
    quotes = Quotes()
    broker = broker_with(quotes)
    broker.submit(option_order("stop", Side.SELL, 1, OrderType.STOP, stop="1.00"))
    broker.submit(option_order("sub", Side.BUY, 1, OrderType.LIMIT, limit="1.005"))
    rejected = {
        e.client_order_id: e.reason for e in broker.events() if isinstance(e, OrderRejected)
    }
    assert "market or limit" in rejected["stop"]
    assert "2 decimals" in rejected["sub"]
    broker.submit(option_order("late", Side.BUY, 1, OrderType.LIMIT, limit="1.00"))
    broker.events()
    step(broker, minute(0))
    broker.open_bar(minute(0, days=1), "QQQ")
    [expired] = [e for e in broker.events() if isinstance(e, OrderCanceled)]
    assert expired.client_order_id == "late" and "expired" in expired.reason
    assert broker.idle


def test_a_share_order_beside_options_still_fills_at_the_bar() -> None:
    quotes = Quotes()
    quotes.set(CALL, T0, "1.00", "1.04")
    broker = broker_with(quotes)
    shares = OrderRequest(
        client_order_id="shares",
        symbol="QQQ",
        side=Side.BUY,
        qty=10,
        type=OrderType.MARKET,
        trade_id="s",
        profile="p",
        leg=Leg.ENTRY,
        created_at=T0,
    )
    broker.submit(shares)
    broker.submit(option_order("call", Side.BUY, 1))
    broker.events()
    got = {cid: price for cid, _, price, _ in filled(step(broker, minute(0, 461.0)))}
    assert got == {"shares": Decimal("461.0"), "call": Decimal("1.04")}
    assert broker.account(T0).cash == START - Decimal(4610) - Decimal(104)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([CALL, PUT]),
            st.booleans(),
            st.integers(1, 20),
            st.integers(0, 500),
            st.integers(1, 30),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_option_ledger_adds_up(
    trades: list[tuple[str, bool, int, int, int]],
) -> None:
    """Whatever is bought and sold, cash is the start less every fill's price x qty x 100 and
    commission, positions are the fills' sum, and equity is cash plus the positions at mid."""
    quotes = Quotes()
    commission = Decimal("0.02")
    broker = broker_with(quotes, OptionFills(commission_per_contract=commission))
    cash = START
    held = {CALL: 0, PUT: 0}
    for n, (symbol, buy, qty, bid_cents, width) in enumerate(trades):
        at = T0 + timedelta(minutes=n)
        bid, ask = Decimal(bid_cents) / 100, Decimal(bid_cents + width) / 100
        quotes.set(symbol, at, str(bid), str(ask))
        side = Side.BUY if buy or held[symbol] < qty else Side.SELL
        broker.submit(option_order(f"o{n}", side, qty, symbol=symbol, at=at))
        broker.events()
        [(_, got_qty, price, paid)] = filled(step(broker, minute(n)))
        sign = 1 if side is Side.BUY else -1
        assert price == (ask if side is Side.BUY else bid)
        assert paid == commission * qty
        cash -= sign * price * got_qty * 100 + paid
        held[symbol] += sign * got_qty
    account = broker.account(T0)
    assert account.cash == cash
    assert broker.positions() == {s: q for s, q in held.items() if q}
    marks = {s: quotes.quote(s, T0 + timedelta(minutes=len(trades))) for s in held if held[s]}
    expected = cash + sum(
        (held[s] * q.mid * 100 for s, q in marks.items() if q is not None), Decimal(0)
    )
    assert account.equity == expected
