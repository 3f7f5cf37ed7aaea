"""The emulator serving several symbols at once, as Alpaca does, driven by the unmodified alpaca-py.

Real IWM and DIA bars of two sessions (2025-08-25 and 08-26) replayed on one clock: DIA has four
minutes in which nothing traded, so it has no bar then — none on the stream, none in history —
while IWM's bar of the same minute is there. Positions, orders, held shares, wash-trade checks,
OCO legs and fills are per symbol; the account sums them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.live import StockDataStream
from alpaca.data.models import BarSet
from alpaca.data.requests import StockBarsRequest, StockLatestBarRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import (
    Asset,
    FailedClosePositionDetails,
    Order,
    Position,
    TradeAccount,
)
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from ict_trader.adapters.alpaca.emulator.assets import asset
from ict_trader.adapters.alpaca.emulator.feed import DataOptions, MarketFeed
from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions, PaperAccount
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    TWO_SYMBOLS,
    data_client,
    every_minute,
    load_symbols,
    running_emulator,
    served,
    trading_client,
)

AUTH = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
WHOLE = EmulatorOptions(partial_fill_rate=0.0)  # realistic, but no random partial fills
START = 60  # clock minutes completed before a test: 2025-08-25 10:30 New York
# DIA's minutes without a trade in the files (IWM has a bar in each)
DIA_MISSING = [
    datetime(2025, 8, 25, 16, 27, tzinfo=UTC),
    datetime(2025, 8, 25, 18, 17, tzinfo=UTC),
    datetime(2025, 8, 26, 16, 39, tzinfo=UTC),
    datetime(2025, 8, 26, 17, 32, tzinfo=UTC),
]
GAP = 177  # the clock's index of DIA's first missing minute, 2025-08-25 16:27Z


@pytest.fixture(scope="module")
def two() -> dict[str, BarFile]:
    return load_symbols(TWO_SYMBOLS)


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def price(value: float) -> Decimal:
    return Decimal(repr(value))


def market(symbol: str, cid: str, side: OrderSide, qty: int) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def limit(symbol: str, cid: str, side: OrderSide, qty: int, at: float) -> LimitOrderRequest:
    return LimitOrderRequest(
        symbol=symbol,
        qty=qty,
        side=side,
        time_in_force=TimeInForce.DAY,
        limit_price=at,
        client_order_id=cid,
    )


def settle(server: EmulatorServer) -> None:
    server.call(server.settle())


def refused(call: Any, status: int) -> APIError:
    with pytest.raises(APIError) as error:
        call()
    assert error.value.status_code == status
    return error.value


# ------------------------------------------------------------------------------ clock and data


def test_one_clock_of_every_minute_some_symbol_traded(two: dict[str, BarFile]) -> None:
    assert [len(f.bars) for f in two.values()] == [780, 776]
    bars, calendar = served(two)
    account = PaperAccount(bars, calendar, options=WHOLE)
    assert (account.symbols, account.symbol) == (("IWM", "DIA"), "IWM")
    assert len(account.times) == 780  # IWM traded every minute of both sessions
    assert account.times[GAP] == DIA_MISSING[0]
    assert account.bar_at(GAP, "DIA") is None
    assert account.bar_at(GAP, "IWM") == two["IWM"].bars[GAP]
    for _ in range(GAP):
        account.complete_minute()
    assert set(account.complete_minute()) == {"IWM"}  # DIA had no trade that minute
    # no bar, no trade: DIA's price is still its last trade
    assert account.mark("DIA") == price(two["DIA"].bars[GAP].open)
    assert set(account.complete_minute()) == {"IWM", "DIA"}


def test_one_symbol_as_before_and_bars_that_name_their_symbols(
    two: dict[str, BarFile], sample: BarFile
) -> None:
    alone = PaperAccount(sample.bars, sample.calendar)
    assert (alone.symbols, alone.position, alone.times) == (
        ("QQQ",),
        0,
        [b.time for b in sample.bars],
    )
    assert alone.complete_bar() == sample.bars[0]
    renamed = PaperAccount(sample.bars, sample.calendar, symbol="spy")
    assert renamed.symbols == ("SPY",)
    bars, calendar = served(two)
    first = PaperAccount(bars, calendar, symbol="DIA")
    assert first.symbols == ("DIA", "IWM")  # the default symbol comes first
    with pytest.raises(ValueError, match="not in time order"):
        PaperAccount({"IWM": list(reversed(two["IWM"].bars))}, calendar)
    with pytest.raises(ValueError, match="no bars for DIA"):
        PaperAccount({"IWM": two["IWM"].bars, "DIA": []}, calendar)


def test_each_symbols_iex_gaps_are_its_own_and_reproducible(
    two: dict[str, BarFile], sample: BarFile
) -> None:
    """IEX modelling applies to each symbol on its own: seeded by the seed and the symbol, so
    two symbols' gaps differ, a symbol's draws do not depend on which others are served, and
    QQQ — the emulator's one symbol before — draws exactly as it did alone."""
    bars, _ = served(two)
    options = DataOptions()
    feed = MarketFeed(bars, options)
    again = MarketFeed(bars, options)
    iwm, dia = feed.feeds["IWM"], feed.feeds["DIA"]
    assert iwm.missing_on_iex and dia.missing_on_iex
    assert iwm.missing_on_iex != dia.missing_on_iex
    assert iwm.missing_on_iex == again.feeds["IWM"].missing_on_iex
    alone = MarketFeed({"IWM": two["IWM"].bars}, options).feeds["IWM"]
    assert (alone.missing_on_iex, alone.late_trades) == (iwm.missing_on_iex, iwm.late_trades)
    assert [alone.bar(i, "iex") for i in range(50)] == [iwm.bar(i, "iex") for i in range(50)]
    qqq = MarketFeed(sample.bars, options).feeds["QQQ"]
    mixed = MarketFeed({"IWM": two["IWM"].bars, "QQQ": sample.bars}, options).feeds["QQQ"]
    assert (qqq.missing_on_iex, qqq.late_trades) == (mixed.missing_on_iex, mixed.late_trades)
    # a minute without a trade has no bar on either feed; the other symbol's bar is there
    for minute in DIA_MISSING:
        assert feed.streamed(minute, "sip") == ["IWM"]
        assert not feed.has(minute, "sip", "DIA") and feed.has(minute, "sip")
    assert feed.streamed(two["DIA"].bars[0].time, "sip") == ["IWM", "DIA"]


# ------------------------------------------------------------------------------ the stream


@pytest.fixture
def streams() -> Iterator[list[StockDataStream]]:
    started: list[StockDataStream] = []
    yield started
    for stream in started:
        stream.stop()


def wait_until(condition: Any, what: str, timeout: float = 20) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        pause.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _data_clients(server: EmulatorServer) -> int:
    return len(server._data_sockets)


def connected(server: EmulatorServer, streams: int) -> Callable[[], bool]:
    """Whether `streams` data connections have subscribed."""
    return lambda: bool(server.call(_data_clients(server)) >= streams)


def test_two_symbols_stream_in_the_same_minute_and_a_minute_without_trades_sends_none(
    two: dict[str, BarFile], streams: list[StockDataStream]
) -> None:
    """A bar frame per subscribed symbol per minute ("S" names it); DIA's minute without a
    trade sends IWM's bar only. Subscriptions are per symbol, and `*` is every symbol."""
    data = every_minute(connection_limit=3)  # IEX bars = the files' bars, no modelled gaps
    with running_emulator(two, start_bar=GAP - 2, data=data) as server:
        url = f"ws://127.0.0.1:{server.port}/v2/iex"
        received: dict[str, queue.Queue[Any]] = {}
        for name, symbols in (("both", ("IWM", "DIA")), ("dia", ("DIA",)), ("all", ("*",))):
            stream = StockDataStream(KEY, SECRET, feed=DataFeed.IEX, url_override=url)
            bars: queue.Queue[Any] = queue.Queue()

            async def on_bar(bar: Any, into: queue.Queue[Any] = bars) -> None:
                into.put(bar)

            stream.subscribe_bars(on_bar, *symbols)
            threading.Thread(target=stream.run, daemon=True).start()
            streams.append(stream)
            received[name] = bars
            wait_until(connected(server, len(streams)), name)
        server.call(server.advance(4))  # 16:25, 16:26, 16:27 (DIA: no trade), 16:28

        def got(name: str, count: int) -> list[tuple[str, datetime, float]]:
            bars = [received[name].get(timeout=10) for _ in range(count)]
            assert received[name].empty()
            return [(b.symbol, b.timestamp, b.close) for b in bars]

        def expected(*symbols: str) -> list[tuple[str, datetime, float]]:
            return [
                (s, bar.time, bar.close)
                for i in range(GAP - 2, GAP + 2)
                for s in symbols
                if (bar := server.account.bar_at(i, s)) is not None
            ]

        assert got("both", 7) == expected("IWM", "DIA")
        assert got("all", 7) == expected("IWM", "DIA")
        assert got("dia", 3) == expected("DIA")
        assert DIA_MISSING[0] not in [t for s, t, _ in expected("DIA")]
        assert server.feed.streamed(DIA_MISSING[0], "iex") == ["IWM"]


# ------------------------------------------------------------------------------ trading


def test_positions_in_two_symbols_at_once(two: dict[str, BarFile]) -> None:
    with running_emulator(two, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("IWM", "long-iwm", OrderSide.BUY, 10))
        client.submit_order(market("DIA", "short-dia", OrderSide.SELL, 5))
        settle(server)
        iwm_open, dia_open = two["IWM"].bars[START].open, two["DIA"].bars[START].open
        cent = Decimal("0.01")  # half the default spread: buys at the ask, sells at the bid
        iwm_fill, dia_fill = price(iwm_open) + cent, price(dia_open) - cent
        for cid, fill in (("long-iwm", iwm_fill), ("short-dia", dia_fill)):
            order = client.get_order_by_client_id(cid)
            assert isinstance(order, Order) and order.status is OrderStatus.FILLED
            assert Decimal(str(order.filled_avg_price)) == fill  # at its own symbol's price
        positions = client.get_all_positions()
        assert isinstance(positions, list)
        assert [(p.symbol, p.qty, p.side.value) for p in positions if isinstance(p, Position)] == [
            ("DIA", "-5", "short"),
            ("IWM", "10", "long"),
        ]
        dia = client.get_open_position("DIA")
        assert isinstance(dia, Position)
        assert (dia.exchange.value, Decimal(dia.avg_entry_price)) == ("ARCA", dia_fill)
        by_id = client.get_open_position(asset("IWM").id)  # a position by its asset id
        assert isinstance(by_id, Position) and by_id.symbol == "IWM"
        account = client.get_account()
        assert isinstance(account, TradeAccount)
        long_value, short_value = 10 * price(iwm_open), -5 * price(dia_open)
        cash = 100_000 - 10 * iwm_fill + 5 * dia_fill
        assert Decimal(str(account.cash)) == cash
        assert Decimal(str(account.long_market_value)) == long_value
        assert Decimal(str(account.short_market_value)) == short_value
        assert Decimal(str(account.equity)) == cash + long_value + short_value
        fills = requests.get(
            server.base_url + "/v2/account/activities/FILL", headers=AUTH, timeout=10
        ).json()
        assert sorted((f["symbol"], f["side"], f["qty"], Decimal(f["price"])) for f in fills) == [
            ("DIA", "sell", "5", dia_fill),
            ("IWM", "buy", "10", iwm_fill),
        ]


def test_held_shares_and_wash_trades_are_per_symbol(two: dict[str, BarFile]) -> None:
    with running_emulator(two, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("IWM", "long-iwm", OrderSide.BUY, 10))
        client.submit_order(market("DIA", "short-dia", OrderSide.SELL, 5))
        settle(server)
        client.submit_order(limit("IWM", "iwm-target", OrderSide.SELL, 10, 300.0))
        held = refused(lambda: client.submit_order(market("IWM", "more", OrderSide.SELL, 1)), 403)
        assert "insufficient qty available for order (requested: 1, available: 0)" in str(held)
        wash = refused(lambda: client.submit_order(market("IWM", "buy", OrderSide.BUY, 1)), 403)
        assert "potential wash trade detected" in str(wash)
        # IWM's open sell neither holds DIA's shares nor makes a DIA buy a wash trade
        cover = client.submit_order(market("DIA", "cover-dia", OrderSide.BUY, 5))
        assert isinstance(cover, Order) and cover.status is OrderStatus.PENDING_NEW
        settle(server)
        assert server.account.positions == {"IWM": 10, "DIA": 0}
        updates = [u for u in server.account.fill_activities() if u["symbol"] == "DIA"]
        assert [u["side"] for u in updates] == ["sell", "buy"]


def test_oco_and_bracket_legs_work_on_their_own_symbols_prices(two: dict[str, BarFile]) -> None:
    with running_emulator(two, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("IWM", "long-iwm", OrderSide.BUY, 10))
        client.submit_order(market("DIA", "long-dia", OrderSide.BUY, 10))
        settle(server)

        def oco(symbol: str, cid: str, take: float, stop: float) -> Any:
            return client.submit_order(
                LimitOrderRequest(
                    symbol=symbol,
                    qty=10,
                    side=OrderSide.SELL,
                    time_in_force=TimeInForce.DAY,
                    order_class=OrderClass.OCO,
                    take_profit=TakeProfitRequest(limit_price=take),
                    stop_loss=StopLossRequest(stop_price=stop),
                    client_order_id=cid,
                )
            )

        # IWM trades near 234: a stop at 300 is above it (DIA's 454 does not count)
        threshold = refused(lambda: oco("IWM", "bad-oco", 310.0, 300.0), 422)
        assert "stop_loss.stop_price must be <= base_price - 0.01" in str(threshold)
        iwm_oco = oco("IWM", "iwm-oco", 240.0, 230.0)
        dia_oco = oco("DIA", "dia-oco", 460.0, 454.70)  # DIA's low reaches it at 10:31
        assert isinstance(iwm_oco, Order) and isinstance(dia_oco, Order)
        assert [leg.symbol for leg in iwm_oco.legs or []] == ["IWM"]
        assert [leg.symbol for leg in dia_oco.legs or []] == ["DIA"]
        server.call(server.advance(2))
        dia_stop = client.get_order_by_id(str((dia_oco.legs or [])[0].id))
        assert isinstance(dia_stop, Order) and dia_stop.status is OrderStatus.FILLED
        assert Decimal(str(dia_stop.filled_avg_price)) == Decimal("454.69")  # bid at the stop
        after = {cid: client.get_order_by_client_id(cid) for cid in ("iwm-oco", "dia-oco")}
        assert {c: o.status for c, o in after.items() if isinstance(o, Order)} == {
            "iwm-oco": OrderStatus.NEW,  # IWM never traded near its stop
            "dia-oco": OrderStatus.REPLACED,  # the take-profit after a stop-out [PY #198]
        }
        assert server.account.positions == {"IWM": 10, "DIA": 0}
        # IWM's open sell pair is no wash trade for a DIA bracket entry
        bracket = client.submit_order(
            MarketOrderRequest(
                symbol="DIA",
                qty=5,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                order_class=OrderClass.BRACKET,
                take_profit=TakeProfitRequest(limit_price=470.0),
                stop_loss=StopLossRequest(stop_price=440.0),
                client_order_id="dia-bracket",
            )
        )
        assert isinstance(bracket, Order)
        assert [leg.symbol for leg in bracket.legs or []] == ["DIA", "DIA"]
        settle(server)
        assert server.account.positions == {"IWM": 10, "DIA": 5}


def test_orders_for_a_symbol_the_emulator_does_not_serve_are_refused(
    two: dict[str, BarFile],
) -> None:
    """Alpaca refuses an order for an asset it does not know with 422 42210000 `asset "X" not
    found` (alpaca_api.md §3.2); the emulator's assets are the symbols it serves."""
    with running_emulator(two, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        error = refused(lambda: client.submit_order(market("SPY", "spy", OrderSide.BUY, 1)), 422)
        assert (error.code, error.message) == (42210000, 'asset "SPY" not found')
        assert server.account.orders == {}
        refused(lambda: client.get_asset("SPY"), 404)
        refused(lambda: client.get_open_position("SPY"), 404)
        refused(lambda: client.close_position("SPY"), 404)
        listed = {s: client.get_asset(s) for s in ("IWM", "DIA")}
        assert all(isinstance(a, Asset) and a.tradable for a in listed.values())
        assert {s: (a.symbol, a.exchange.value) for s, a in listed.items()} == {  # type: ignore[union-attr]
            "IWM": ("IWM", "ARCA"),
            "DIA": ("DIA", "ARCA"),
        }
        by_id = client.get_asset(asset("DIA").id)
        assert isinstance(by_id, Asset) and by_id.symbol == "DIA"


def test_close_all_positions_answers_each_symbol(two: dict[str, BarFile]) -> None:
    """DELETE /v2/positions: one answer per position, 207; a close the held shares refuse is a
    403 in its item; `cancel_orders` cancels every open order first."""
    with running_emulator(two, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("IWM", "long-iwm", OrderSide.BUY, 10))
        client.submit_order(market("DIA", "short-dia", OrderSide.SELL, 5))
        settle(server)
        target = client.submit_order(limit("IWM", "iwm-target", OrderSide.SELL, 10, 300.0))
        assert isinstance(target, Order)
        first = client.close_all_positions()
        assert isinstance(first, list)
        assert [(r.symbol, r.status) for r in first] == [("DIA", 200), ("IWM", 403)]
        closing, refusal = first[0].body, first[1].body
        assert isinstance(closing, Order) and isinstance(refusal, FailedClosePositionDetails)
        assert (closing.symbol, closing.side, closing.qty) == ("DIA", OrderSide.BUY, "5")
        assert (refusal.code, refusal.held_for_orders, refusal.symbol) == (40310000, 10, "IWM")
        settle(server)
        assert server.account.positions == {"IWM": 10, "DIA": 0}
        second = client.close_all_positions(cancel_orders=True)
        assert isinstance(second, list)
        assert [(r.symbol, r.status) for r in second] == [("IWM", 200)]
        canceled = client.get_order_by_id(target.id)
        assert isinstance(canceled, Order) and canceled.status is OrderStatus.CANCELED
        settle(server)
        assert client.get_all_positions() == []
        account = client.get_account()
        assert isinstance(account, TradeAccount)
        assert (account.long_market_value, account.short_market_value) == ("0", "0")


# ------------------------------------------------------------------------------ history


def test_bars_page_across_symbols_sorted_by_symbol_then_time(two: dict[str, BarFile]) -> None:
    """The spec: results sorted by symbol, then time; `limit` counts bars across symbols, so a
    page may hold one symbol only, and the next page token leads on to the others."""
    minutes = 300  # IWM: 300 bars; DIA: 298 (no trade at 16:27Z and 18:17Z)
    with running_emulator(two, start_bar=minutes, max_page_size=100, data=every_minute()) as server:
        answer = data_client(server).get_stock_bars(
            StockBarsRequest(
                symbol_or_symbols=["IWM", "DIA"],
                timeframe=TimeFrame.Minute,
                start=two["IWM"].bars[0].time,
                feed=DataFeed.IEX,
            )
        )
        assert isinstance(answer, BarSet)
        for symbol, count in (("IWM", 300), ("DIA", 298)):
            expected = [b for b in two[symbol].bars if b.time < two["IWM"].bars[minutes].time]
            assert len(expected) == count
            got = answer.data[symbol]
            assert [(b.timestamp, b.close) for b in got] == [(b.time, b.close) for b in expected]
        assert [m for m, p in server.requests if p == "/v2/stocks/bars"] == ["GET"] * 6
        raw = requests.Session()
        raw.headers.update(AUTH)
        query = {"symbols": "IWM,DIA,SPY", "timeframe": "1Min", "limit": "100", "feed": "iex"}
        pages = []
        token: str | None = ""
        while token is not None:
            page = raw.get(
                server.base_url + "/v2/stocks/bars",
                params={**query, **({"page_token": token} if token else {})},
                timeout=10,
            ).json()
            pages.append({s: len(b) for s, b in page["bars"].items()})
            token = page["next_page_token"]
        assert pages == [
            {"DIA": 100},
            {"DIA": 100},
            {"DIA": 98, "IWM": 2},
            {"IWM": 100},
            {"IWM": 100},
            {"IWM": 98},
        ]
        one = raw.get(
            server.base_url + "/v2/stocks/DIA/bars",
            params={"timeframe": "1Min", "feed": "iex"},  # 1000, a page is at most 100 here
            timeout=10,
        ).json()
        assert (one["symbol"], len(one["bars"]), one["next_page_token"]) == ("DIA", 100, "100")


def test_latest_bars_of_several_symbols(two: dict[str, BarFile]) -> None:
    with running_emulator(two, start_bar=GAP + 1, data=every_minute()) as server:
        latest = data_client(server).get_stock_latest_bar(
            StockLatestBarRequest(symbol_or_symbols=["IWM", "DIA", "SPY"], feed=DataFeed.IEX)
        )
        assert isinstance(latest, dict)
        assert {s: b.timestamp for s, b in latest.items()} == {
            "IWM": DIA_MISSING[0],
            "DIA": two["DIA"].bars[GAP - 1].time,  # DIA's last trade was a minute earlier
        }


def test_the_clock_and_state_name_every_symbol(two: dict[str, BarFile]) -> None:
    with running_emulator(two, start_bar=START, options=WHOLE) as server:
        client = trading_client(server)
        client.submit_order(market("DIA", "short-dia", OrderSide.SELL, 5))
        settle(server)
        state = requests.get(server.base_url + "/_emulator/state", timeout=10).json()
        assert (state["symbols"], state["positions"], state["bars"]) == (
            ["IWM", "DIA"],
            {"IWM": 0, "DIA": -5},
            780,
        )
        minutes = server.call(server.advance_minutes(2))
        assert minutes == [{s: two[s].bars[i] for s in ("IWM", "DIA")} for i in (START, START + 1)]
        assert server.call(server.advance(1)) == [two["IWM"].bars[START + 2]]
