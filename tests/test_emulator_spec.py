"""The emulator answers as Alpaca's own OpenAPI specification says (issue #9, item 1).

Alpaca's Trading and Market Data specs (from the `alpaca-mcp-server` package, see
tests/alpaca_spec.py) are the oracle. Two kinds of evidence:

1. A scripted session through the real alpaca-py clients — with a `requests` hook recording every
   raw answer — and raw HTTP for the routes and errors the SDK does not reach: every answer of
   every route the bot uses must have a status the spec lists and a body valid against its schema.
2. A bounded, deterministic fuzz of every emulated REST operation from the specs (schemathesis,
   positive and negative cases): no 5xx and no answer that does not follow the spec.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.requests import (
    OptionChainRequest,
    OptionSnapshotRequest,
    StockBarsRequest,
    StockLatestBarRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    PositionIntent,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOptionContractsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis import openapi as schemathesis_openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.marketdata.barfile import BarFile, load_bars
from tests import alpaca_spec
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    data_client,
    option_data_client,
    running_emulator,
    trading_client,
)
from tests.alpaca_spec import MARKET_DATA, TRADING, Exchange

START = 100  # bars completed before a test: 2024-07-29 11:10 New York, the market open
AUTH = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}

# Every REST operation the emulator serves, by spec: (method, spec path template).
EMULATED: dict[str, tuple[tuple[str, str], ...]] = {
    TRADING: (
        ("GET", "/v2/account"),
        ("GET", "/v2/clock"),
        ("GET", "/v2/calendar"),
        ("GET", "/v2/assets/{symbol_or_asset_id}"),
        ("POST", "/v2/orders"),
        ("GET", "/v2/orders"),
        ("DELETE", "/v2/orders"),
        ("GET", "/v2/orders/{order_id}"),
        ("DELETE", "/v2/orders/{order_id}"),
        ("GET", "/v2/orders:by_client_order_id"),
        ("GET", "/v2/positions"),
        ("GET", "/v2/positions/{symbol_or_asset_id}"),
        ("DELETE", "/v2/positions/{symbol_or_asset_id}"),
        ("DELETE", "/v2/positions"),
        ("GET", "/v2/account/activities"),
        ("GET", "/v2/account/activities/{activity_type}"),
        ("GET", "/v2/options/contracts"),
        ("GET", "/v2/options/contracts/{symbol_or_id}"),
    ),
    MARKET_DATA: (
        ("GET", "/v2/stocks/bars"),
        ("GET", "/v2/stocks/{symbol}/bars"),
        ("GET", "/v2/stocks/bars/latest"),
        ("GET", "/v1beta1/options/snapshots"),
        ("GET", "/v1beta1/options/snapshots/{underlying_symbol}"),
    ),
}


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


class Recorder:
    """Collects every raw answer a `requests` session receives (alpaca-py uses one)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlparse(response.request.url or "")
        self.exchanges.append(
            Exchange(
                method=str(response.request.method),
                path=url.path,
                query=url.query,
                status=response.status_code,
                content_type=response.headers.get("Content-Type", ""),
                body=response.content,
            )
        )
        return response

    def attach(self, client: Any) -> Any:
        """Record what `client` (an alpaca-py client or a plain `requests.Session`) receives."""
        session = client if isinstance(client, requests.Session) else client._session
        session.hooks["response"].append(self.hook)
        return client


# ---------------------------------------------------------------------------------------- oracle


def test_the_specs_come_from_alpacas_package_and_describe_every_emulated_route() -> None:
    assert alpaca_spec.package_version() == "2.4.0"
    for name, operations in EMULATED.items():
        spec = alpaca_spec.load(name)
        assert spec.document["openapi"].startswith("3.1")
        for method, template in operations:
            assert "responses" in spec.operation(method, template), (name, method, template)


def _order_body(**changes: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "ict-1",
        "created_at": "2024-08-05T14:31:00.512345678Z",
        "updated_at": "2024-08-05T14:31:00.515Z",
        "submitted_at": "2024-08-05T14:31:00.510Z",
        "symbol": "QQQ",
        "qty": "10",
        "notional": None,
        "filled_qty": "0",
        "type": "market",
        "side": "buy",
        "time_in_force": "day",
        "status": "pending_new",
        "extended_hours": False,
    }
    return json.dumps({**body, **changes}).encode()


def _exchange(body: bytes, *, status: int = 200, method: str = "GET", path: str = "") -> Exchange:
    return Exchange(method, path or "/v2/orders/x", status, "application/json", body)


def test_the_oracle_accepts_an_order_as_alpaca_writes_it() -> None:
    assert alpaca_spec.problems(_exchange(_order_body())) == []


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"position_intent": None}, "position_intent: None is not one of"),
        ({"status": "done"}, "status: 'done' is not one of"),
        ({"qty": 10}, "qty: 10 is not of type"),
        ({"created_at": "yesterday"}, "created_at: 'yesterday' is not a 'date-time'"),
        ({"id": "order-1"}, "id: 'order-1' is not a 'uuid'"),
        ({"time_in_force": None}, "time_in_force: None is not one of"),
        ({"filed_qty": "0"}, "key 'filed_qty' is not declared by Order"),
    ],
)
def test_the_oracle_names_what_breaks_the_order_schema(
    changes: dict[str, Any], complaint: str
) -> None:
    found = alpaca_spec.problems(_exchange(_order_body(**changes)))
    assert any(complaint in p for p in found), found
    (field,) = changes
    assert all(field in p for p in found), found  # nothing else is blamed


def test_the_oracle_checks_statuses_and_error_bodies() -> None:
    error = json.dumps({"code": 40410000, "message": "order not found"}).encode()
    assert alpaca_spec.problems(_exchange(error, status=404)) == []  # a path id: 404 is Alpaca's
    assert alpaca_spec.problems(_exchange(error, status=404, path="/v2/account")) == [
        "GET /v2/account -> 404: status 404 is not in the spec of /v2/account (lists 200)"
    ]
    served_500 = _exchange(b"oops", status=500, path="/v2/account")
    assert "status 500 is not in the spec" in alpaca_spec.problems(served_500)[0]
    bare = _exchange(b'{"error": "gone"}', status=404)
    assert "needs a string 'message'" in alpaca_spec.problems(bare)[0]
    cancel = _exchange(b"{}", status=204, method="DELETE")
    assert alpaca_spec.problems(cancel) == ["DELETE /v2/orders/x -> 204: a 204 carries no body"]
    data_error = _exchange(b'{"message": "invalid limit"}', status=400, path="/v2/stocks/bars")
    assert alpaca_spec.problems(data_error) == []  # the market-data spec lists 400


@given(
    value=st.none() | st.text(max_size=5) | st.integers() | st.booleans(),
    enum=st.booleans(),
)
def test_openapi_30_nullable_admits_null_and_nothing_else(value: object, enum: bool) -> None:
    """A 3.0 `nullable: true` field takes null or its own type; without `nullable`, null fails."""
    base: dict[str, Any] = {"type": "string", **({"enum": ["a", ""]} if enum else {})}
    nullable = alpaca_spec.nullable_as_null_type({**base, "nullable": True})
    as_ref = alpaca_spec.nullable_as_null_type({"allOf": [base], "nullable": True})
    fits = isinstance(value, str) and (not enum or value in {"a", ""})
    for schema in (nullable, as_ref):
        assert _valid(schema, value) is (value is None or fits)
    assert _valid(alpaca_spec.nullable_as_null_type(base), value) is fits


def _valid(schema: dict[str, Any], value: object) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


# ------------------------------------------------------------------- the bot's routes, scripted


def test_every_route_the_bot_uses_answers_as_the_spec_says(sample: BarFile) -> None:
    recorder = Recorder()
    whole = EmulatorOptions(partial_fill_rate=0.0)  # no random partials: positions are counted
    with running_emulator(sample, start_bar=START, options=whole) as server:
        trading = recorder.attach(trading_client(server))
        data = recorder.attach(data_client(server))
        raw = recorder.attach(requests.Session())
        raw.headers.update(AUTH)
        _bot_session(server, trading, data, raw)
        _option_session(server, trading, recorder.attach(option_data_client(server)))
    seen = Counter(
        (e.method, alpaca_spec.spec_for(e.path).template(e.path)) for e in recorder.exchanges
    )
    expected = {op for operations in EMULATED.values() for op in operations}
    assert set(seen) == expected, set(seen) ^ expected
    problems = [p for e in recorder.exchanges for p in alpaca_spec.problems(e)]
    assert problems == [], "\n".join(problems)
    statuses = {e.status for e in recorder.exchanges}
    assert {200, 204, 207, 400, 401, 403, 404, 422} <= statuses


def _bot_session(server: EmulatorServer, trading: Any, data: Any, raw: requests.Session) -> None:
    """What the bot does in a day, plus each error it must understand."""
    base = server.base_url
    trading.get_account()
    trading.get_clock()
    trading.get_calendar(GetCalendarRequest(start=date(2024, 7, 29), end=date(2024, 8, 2)))
    trading.get_asset("QQQ")
    _refused(lambda: trading.get_asset("ZZZZ"), 404)

    entry = trading.submit_order(_market("entry", OrderSide.BUY, 10))
    assert isinstance(entry, Order)
    _settle(server)  # orders are routed and filled asynchronously, as on Alpaca
    target = trading.submit_order(
        LimitOrderRequest(
            symbol="QQQ",
            qty=4,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            limit_price=999.0,
            client_order_id="target",
        )
    )
    _refused(lambda: trading.submit_order(_market("too-many", OrderSide.SELL, 7)), 403)
    _refused(lambda: trading.submit_order(_market("entry", OrderSide.BUY, 1)), 422)
    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
    trading.get_order_by_id(target.id)
    trading.get_order_by_client_id("target")
    trading.cancel_order_by_id(target.id)
    _settle(server)  # the cancel is confirmed: a second one is refused
    _refused(lambda: trading.cancel_order_by_id(target.id), 422)
    filled = trading.get_order_by_id(entry.id)
    assert isinstance(filled, Order)
    price = float(filled.filled_avg_price or 0)
    oco = trading.submit_order(
        LimitOrderRequest(
            symbol="QQQ",
            qty=5,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=round(price + 50, 2)),
            stop_loss=StopLossRequest(stop_price=round(price - 50, 2)),
            client_order_id="oco",
        )
    )
    assert oco.legs
    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, direction=Sort.ASC))
    trading.cancel_orders()
    trading.submit_order(
        StopOrderRequest(
            symbol="QQQ",
            qty=2,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=round(price - 40, 2),
            client_order_id="stop",
        )
    )
    trading.cancel_orders()
    trading.get_all_positions()
    trading.get_open_position("QQQ")
    assert server.account.position == 10
    trading.close_position("QQQ", ClosePositionRequest(qty="3"))
    _settle(server)
    assert server.account.position == 7
    trading.close_position("QQQ", ClosePositionRequest(percentage="50"))
    _settle(server)
    assert server.account.position == 4  # half of 7, rounded down to whole shares
    held = trading.submit_order(
        LimitOrderRequest(
            symbol="QQQ",
            qty=4,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.DAY,
            limit_price=999.0,
            client_order_id="holds-all",
        )
    )
    assert isinstance(held, Order)
    refused = trading.close_all_positions()  # the target holds every share: 403 in the item
    closing = trading.close_all_positions(cancel_orders=True)  # cancels the target first
    assert [(r.symbol, r.status) for r in refused] == [("QQQ", 403)]
    assert [(r.symbol, r.status) for r in closing] == [("QQQ", 200)]
    canceled = trading.get_order_by_id(held.id)
    assert isinstance(canceled, Order) and canceled.status is OrderStatus.CANCELED
    _settle(server)
    _refused(lambda: trading.get_open_position("QQQ"), 404)
    _refused(lambda: trading.close_position("QQQ"), 404)
    trading.get_all_positions()

    data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="QQQ", timeframe=TimeFrame.Minute, limit=50)
    )
    data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols="QQQ", feed=DataFeed.IEX))

    for path, query in (
        ("/v2/account/activities/FILL", {}),
        ("/v2/account/activities", {"activity_types": "FILL", "direction": "asc"}),
        ("/v2/account/activities", {"page_size": "2"}),
        ("/v2/stocks/QQQ/bars", {"timeframe": "1Min", "limit": "3"}),
        ("/v2/stocks/QQQ/bars", {"timeframe": "1Min", "limit": "3", "sort": "desc"}),
        ("/v2/stocks/bars", {"symbols": "SPY", "timeframe": "1Min"}),
    ):
        assert raw.get(base + path, params=query).status_code == 200, path
    for path, query, status in (
        ("/v2/orders", {"limit": "many"}, 422),
        ("/v2/orders", {"status": "pending"}, 422),
        ("/v2/orders/0b0e64a2-7c1f-4d5e-9a3b-2c4d5e6f7a8b", {}, 404),
        ("/v2/orders:by_client_order_id", {"client_order_id": "nobody"}, 404),
        ("/v2/orders:by_client_order_id", {}, 422),
        ("/v2/calendar", {"start": "monday"}, 400),
        ("/v2/account/activities/FILL", {"page_size": "0"}, 422),
        ("/v2/stocks/bars", {"symbols": "QQQ", "timeframe": "1Min", "limit": "x"}, 400),
        ("/v2/stocks/bars", {"timeframe": "1Min"}, 400),
        ("/v2/stocks/QQQ/bars", {"timeframe": "fortnightly"}, 400),
        ("/v2/stocks/QQQ/bars", {"timeframe": "1Min", "sort": "sideways"}, 400),
        ("/v2/stocks/bars/latest", {"symbols": "QQQ", "feed": "nyse"}, 400),
    ):
        assert raw.get(base + path, params=query).status_code == status, (path, query)
    assert raw.post(base + "/v2/orders", data=b"{not json").status_code == 400
    assert raw.post(base + "/v2/orders", json=["QQQ"]).status_code == 400
    assert raw.post(base + "/v2/orders", json={"symbol": "QQQ", "qty": "NaN"}).status_code == 422
    assert raw.delete(base + "/v2/positions/QQQ", params={"qty": "-1"}).status_code == 422
    assert raw.get(base + "/v2/account", headers={"APCA-API-KEY-ID": "x"}).status_code == 401


def _option_session(server: EmulatorServer, trading: Any, options: Any) -> None:
    """The bot's day with a 0DTE call (issue #12): the chain, the contract, the order, the
    position and its close, and the refusals it must understand."""
    call = "QQQ240729C00460000"
    trading.get_option_contracts(GetOptionContractsRequest(underlying_symbols=["QQQ"], limit=5))
    trading.get_option_contract(call)
    _refused(lambda: trading.get_option_contract("QQQ240730C00460000"), 404)
    options.get_option_chain(
        OptionChainRequest(underlying_symbol="QQQ", strike_price_gte=455, strike_price_lte=470)
    )
    options.get_option_snapshot(OptionSnapshotRequest(symbol_or_symbols=[call]))
    entry = trading.submit_order(
        MarketOrderRequest(
            symbol=call,
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            position_intent=PositionIntent.BUY_TO_OPEN,
            client_order_id="call-entry",
        )
    )
    assert isinstance(entry, Order)
    _settle(server)
    stop = StopOrderRequest(
        symbol=call, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY, stop_price=1.0
    )
    _refused(lambda: trading.submit_order(stop), 422)
    naked = MarketOrderRequest(
        symbol="QQQ240729C00470000",
        qty=1,
        side=OrderSide.SELL,
        time_in_force=TimeInForce.DAY,
        position_intent=PositionIntent.SELL_TO_OPEN,
    )
    _refused(lambda: trading.submit_order(naked), 403)
    trading.get_account()
    trading.get_all_positions()
    trading.get_open_position(call)
    trading.get_order_by_id(entry.id)
    trading.close_position(call, ClosePositionRequest(qty="1"))
    _settle(server)
    assert server.account.position_of(call) == 1


def test_activities_come_newest_first_page_by_page_as_the_spec_says(sample: BarFile) -> None:
    with running_emulator(sample, start_bar=START) as server:
        trading = trading_client(server)
        for n, side in enumerate((OrderSide.BUY, OrderSide.SELL, OrderSide.BUY)):
            trading.submit_order(_market(f"fill-{n}", side, 1))
            _settle(server)  # filled before the next order (else a potential wash trade)
        raw = requests.Session()
        raw.headers.update(AUTH)
        url = server.base_url + "/v2/account/activities"
        newest_first = raw.get(url, params={"activity_types": "FILL"}).json()
        oldest_first = raw.get(url + "/FILL", params={"direction": "asc"}).json()
        assert [a["side"] for a in oldest_first] == ["buy", "sell", "buy"]
        assert newest_first == oldest_first[::-1]
        first = raw.get(url + "/FILL", params={"page_size": "2"}).json()
        rest = raw.get(url + "/FILL", params={"page_size": "2", "page_token": first[-1]["id"]})
        assert first + rest.json() == newest_first
        assert raw.get(url, params={"activity_types": "DIV"}).json() == []


def _market(cid: str, side: OrderSide, qty: int) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="QQQ", qty=qty, side=side, time_in_force=TimeInForce.DAY, client_order_id=cid
    )


def _settle(server: EmulatorServer) -> None:
    server.call(server.settle())


def _refused(call: Callable[[], object], status: int) -> None:
    with pytest.raises(APIError) as refused:
        call()
    assert refused.value.status_code == status


# ---------------------------------------------------------------------------------------- fuzz

EXAMPLES = 20  # per operation and generation mode: bounded, so the file runs in well under a minute
FUZZED: Counter[tuple[str, str, str]] = Counter()  # (method, template, mode) -> requests sent
STATUSES: Counter[int] = Counter()  # status -> answers, over the whole fuzz


@pytest.fixture(scope="module")
def busy_emulator(sample: BarFile) -> Iterator[EmulatorServer]:
    """An emulator with a position, resting orders and fills, so the fuzz meets real state."""
    with running_emulator(sample, start_bar=START) as server:
        trading = trading_client(server)
        trading.submit_order(_market("fuzz-entry", OrderSide.BUY, 20))
        _settle(server)
        trading.submit_order(
            LimitOrderRequest(
                symbol="QQQ",
                qty=5,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                limit_price=999.0,
                client_order_id="fuzz-target",
            )
        )
        yield server
    total = sum(FUZZED.values())
    operations = len({k[:2] for k in FUZZED})
    print(f"\nspec fuzz: {total} requests over {operations} operations, statuses {dict(STATUSES)}")


OPERATIONS = [
    pytest.param(name, method, template, id=f"{method} {template}")
    for name, operations in EMULATED.items()
    for method, template in operations
]


@pytest.mark.parametrize(("name", "method", "template"), OPERATIONS)
def test_fuzzing_the_emulator_from_the_spec_finds_no_5xx_and_no_stray_answer(
    busy_emulator: EmulatorServer, name: str, method: str, template: str
) -> None:
    operation = _schemathesis_schema(name)[template][method]
    known = _known_values(busy_emulator, template)
    problems: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategy = operation.as_strategy(generation_mode=mode)
        if known:  # half the cases name a real order, symbol or activity type
            strategy = strategy | operation.as_strategy(generation_mode=mode, **known)
        if (method, template) == ("POST", "/v2/orders"):  # half the orders can be accepted
            strategy = strategy | st.builds(
                _for_qqq, operation.as_strategy(generation_mode=mode), PLAUSIBLE_ORDER
            )
        sent = _fuzz(busy_emulator, strategy, problems, label=mode.value)
        FUZZED[(method, template, mode.value)] += sent
        assert sent >= 1
    assert problems == [], "\n".join(problems[:10])


def _fuzz(server: EmulatorServer, strategy: Any, problems: list[str], label: str) -> int:
    """Send every case `strategy` draws (at most EXAMPLES) and collect what breaks the spec:
    the oracle's verdict and schemathesis' own (no 5xx, content type, response schema)."""
    session = requests.Session()
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        nonlocal sent
        case.headers = {**(case.headers or {}), **AUTH}  # fuzz the parameters, not the keys
        response = case.call(base_url=server.base_url, session=session)
        sent += 1
        STATUSES[response.status_code] += 1
        exchange = Exchange(
            method=case.method.upper(),
            path=urlparse(response.request.url or "").path,
            status=response.status_code,
            content_type=_content_type(response.headers),
            body=response.content,
        )
        found = alpaca_spec.problems(exchange)
        try:
            case.validate_response(
                response,
                checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
            )
        except AssertionError as failure:  # schemathesis' own verdict, kept as evidence
            found.append(f"{exchange.describe()}: schemathesis: {str(failure)[:300]}")
        problems.extend(f"{p} [{label} {case.query} {case.body!r:.120}]" for p in found)

    fuzz()
    return sent


PLAUSIBLE_ORDER = st.fixed_dictionaries(
    {
        "symbol": st.just("QQQ"),
        "side": st.sampled_from(["buy", "sell"]),
        "type": st.sampled_from(["market", "limit", "stop"]),
        "time_in_force": st.sampled_from(["day", "gtc"]),
        "qty": st.integers(min_value=1, max_value=5).map(str),
        "price": st.integers(min_value=40_000, max_value=50_000).map(lambda c: f"{c / 100:.2f}"),
    }
)


def _for_qqq(case: Any, order: dict[str, str]) -> Any:
    """A generated order made plausible — the emulator's one symbol, a side, an order type it
    emulates, a few shares, a price near QQQ's — so the fuzz also reaches the answers past
    validation (accepted, filled, refused for buying power or as a wash trade)."""
    if isinstance(case.body, dict):
        fields = dict(order)
        price = fields.pop("price")
        named = {"limit": "limit_price", "stop": "stop_price"}.get(fields["type"])
        prices = {named: price} if named else {}
        kept = {k: v for k, v in case.body.items() if k == "client_order_id"}
        case.body = {**kept, **fields, **prices}
    return case


def _content_type(headers: dict[str, list[str]]) -> str:
    """schemathesis keeps each header as a list of values under its name as received."""
    values = {name.lower(): value for name, value in headers.items()}.get("content-type", [""])
    return values[0]


@cache
def _schemathesis_schema(name: str) -> Any:
    return schemathesis_openapi.from_dict(alpaca_spec.load(name).document)


def _known_values(server: EmulatorServer, template: str) -> dict[str, Any]:
    """Real ids and symbols for path parameters, so the fuzz also reaches answers other than 404."""
    order_ids = [o.id for o in server.account.orders.values()]
    if "{order_id}" in template:
        return {"path_parameters": {"order_id": order_ids[-1]}}
    if "{symbol_or_asset_id}" in template or "{symbol}" in template:
        key = "symbol" if "{symbol}" in template else "symbol_or_asset_id"
        return {"path_parameters": {key: "QQQ"}}
    if "{activity_type}" in template:
        return {"path_parameters": {"activity_type": "FILL"}}
    if template == "/v2/options/contracts/{symbol_or_id}":
        return {"path_parameters": {"symbol_or_id": "QQQ240729C00460000"}}
    if template == "/v1beta1/options/snapshots/{underlying_symbol}":
        return {"path_parameters": {"underlying_symbol": "QQQ"}}
    if template == "/v1beta1/options/snapshots":
        return {"query": {"symbols": "QQQ240729C00460000,QQQ240729P00460000"}}
    if template == "/v2/orders:by_client_order_id":
        return {"query": {"client_order_id": "fuzz-target"}}
    if template in {"/v2/stocks/bars", "/v2/stocks/bars/latest"}:
        return {"query": {"symbols": "QQQ"}}
    return {}
