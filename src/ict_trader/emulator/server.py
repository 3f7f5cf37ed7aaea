"""The emulator's HTTP and WebSocket server (aiohttp) on 127.0.0.1.

REST under /v2 (trading and market data on one port), the trade-updates stream at /stream
(JSON, no greeting), the market-data stream at /v2/iex and /v2/sip (msgpack, `connected` greeting,
bars with msgpack Timestamps). A replay clock completes one bar every 60 / speed seconds; with
speed 0 the clock only moves when POST /_emulator/advance asks it to (what tests use). Faults are
injected per request or per bar as configured in `Faults`.

Orders settle asynchronously, as on Alpaca: a POST or DELETE leaves pending work (routing, fills of
marketable orders, cancel confirmations) which settles `EmulatorOptions.settle_delay_ms` after the
request, on the trade-updates stream, or when the next bar completes if that is None. Control
routes (no keys): POST /_emulator/advance {"bars": n}, GET /_emulator/state, and
POST /_emulator/account {"status": "...", "trading_blocked": true, ...} to block the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from ict_trader.bars import Bar
from ict_trader.emulator.paper import ApiError, PaperAccount

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    """Injected failures (probabilities per request unless noted)."""

    latency_ms: int = 0
    error_500_rate: float = 0.0
    error_429_rate: float = 0.0
    order_504_rate: float = 0.0  # POST /v2/orders: the order IS created, the answer is a 504
    drop_data_socket_every: int = 0  # bars; 0 = never
    seed: int = 11
    # Scripted failures: the next requests matching (method, path) get this status, in order.
    fail_next: list[tuple[str, str, int]] = field(default_factory=list)


class EmulatorServer:
    """Serves one `PaperAccount`; run it with `start()` in a loop or `run_in_thread()`."""

    def __init__(
        self,
        account: PaperAccount,
        *,
        key: str = "emulator-key",
        secret: str = "emulator-secret",
        speed: float = 0.0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_page_size: int = 10_000,
    ) -> None:
        self.account = account
        self.key = key
        self.secret = secret
        self.speed = speed
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self.max_page_size = max_page_size  # Alpaca's cap per page; lower to test pagination
        self._random = random.Random(self.faults.seed)
        self._trade_sockets: set[web.WebSocketResponse] = set()
        self._data_sockets: dict[web.WebSocketResponse, set[str]] = {}
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._settle_handle: asyncio.TimerHandle | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._clock: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.bars_published = 0
        self.requests: list[tuple[str, str]] = []  # (method, path), for tests and diagnostics
        self.api_errors: list[tuple[str, int, str]] = []  # (path, status, message) answered
        self.injected: Counter[tuple[str, str, int]] = Counter()  # faults served
        # (perf_counter(), client_order_id) of each POST /v2/orders, for the latency benchmark
        self.order_arrivals: list[tuple[float, str]] = []

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v2/account", self._account)
        r.add_get("/v2/clock", self._clock_view)
        r.add_get("/v2/calendar", self._calendar)
        r.add_get("/v2/assets/{symbol}", self._asset)
        r.add_post("/v2/orders", self._submit)
        r.add_get("/v2/orders", self._orders)
        r.add_delete("/v2/orders", self._cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self._order_by_client_id)
        r.add_get("/v2/orders/{order_id}", self._order)
        r.add_delete("/v2/orders/{order_id}", self._cancel)
        r.add_get("/v2/positions", self._positions)
        r.add_get("/v2/positions/{symbol}", self._position)
        r.add_delete("/v2/positions/{symbol}", self._close_position)
        r.add_get("/v2/account/activities/FILL", self._fill_activities)
        r.add_get("/v2/stocks/bars", self._bars)
        r.add_get("/v2/stocks/bars/latest", self._latest_bar)
        r.add_get("/stream", self._trade_stream)
        r.add_get("/v2/iex", self._data_stream)
        r.add_get("/v2/sip", self._data_stream)
        r.add_post("/_emulator/advance", self._advance_view)
        r.add_get("/_emulator/state", self._state_view)
        r.add_post("/_emulator/account", self._account_control)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._bound_port(site)
        if self.speed > 0:
            self._clock = asyncio.create_task(self._run_clock())

    @staticmethod
    def _bound_port(site: web.TCPSite) -> int:
        """The port actually bound (the OS picks one when asked for port 0)."""
        server: Any = site._server
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._settle_handle is not None:
            self._settle_handle.cancel()
        for task in list(self._settling):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        for ws in [*self._trade_sockets, *self._data_sockets]:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def run_in_thread(self) -> None:
        """Start on a private event loop in a daemon thread (tests, the live shell's demo)."""
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="alpaca-emulator", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop from another thread and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ clock

    async def _run_clock(self) -> None:
        interval = 60.0 / self.speed
        while not self.account.finished:
            await asyncio.sleep(interval)
            await self.advance(1)

    async def advance(self, bars: int) -> list[Bar]:
        """Complete `bars` bars: fills first (trade stream), then the bar itself (data stream)."""
        published = []
        async with self._lock:
            for _ in range(bars):
                if self.account.finished:
                    break
                bar = self.account.complete_bar()
                await self._flush_updates()
                await self._publish_bar(bar)
                published.append(bar)
        return published

    async def settle(self) -> None:
        """Settle pending work now (orders routed and filled, cancels confirmed) and stream
        its trade updates; tests call it to see the state after the asynchronous step."""
        async with self._lock:
            self.account.settle()
            await self._flush_updates()

    def _schedule_settle(self) -> None:
        """After a request that left pending work: settle it a little later, as Alpaca answers
        first and routes, fills and confirms cancels asynchronously."""
        delay = self.account.options.settle_delay_ms
        if delay is None or self._settle_handle is not None:
            return
        if not self.account.has_pending_work():
            return
        self._settle_handle = asyncio.get_running_loop().call_later(
            delay / 1000, self._start_settle
        )

    def _start_settle(self) -> None:
        self._settle_handle = None
        task = asyncio.ensure_future(self.settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    # ------------------------------------------------------------------ middleware

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.method == "POST" and request.path == "/v2/orders":
            arrived = time.perf_counter()  # for the latency benchmark
            try:
                body = await request.json()  # aiohttp keeps the body for the handler
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            cid = body.get("client_order_id") if isinstance(body, dict) else None
            self.order_arrivals.append((arrived, str(cid)))
        if request.path.startswith("/_emulator") or request.path in {
            "/stream",
            "/v2/iex",
            "/v2/sip",
        }:
            return await handler(request)
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret
        ):
            return _error(401, {"code": 40110000, "message": "request is not authorized"})
        faults = self.faults
        scripted = next(
            (f for f in faults.fail_next if f[:2] == (request.method, request.path)), None
        )
        if scripted is not None:
            faults.fail_next.remove(scripted)
            self.injected[scripted] += 1
            if scripted[2] == 429:
                return _error(429, {"code": 42910000, "message": "rate limit exceeded"})
            if scripted[2] == 404:  # e.g. an order still being created, not yet found
                return _error(404, {"code": 40410000, "message": "order not found"})
            return web.Response(status=scripted[2], text="Internal Server Error")
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._chance(faults.error_429_rate):
            self.injected[(request.method, request.path, 429)] += 1
            return _error(429, {"code": 42910000, "message": "rate limit exceeded"})
        if self._chance(faults.error_500_rate):
            self.injected[(request.method, request.path, 500)] += 1
            return web.Response(status=500, text="Internal Server Error")
        try:
            async with self._lock:
                response = await handler(request)
                await self._flush_updates()
                if request.method in {"POST", "DELETE"}:
                    self._schedule_settle()
        except ApiError as exc:
            self.api_errors.append((request.path, exc.status, str(exc)))
            return _error(exc.status, exc.body)
        if (
            request.method == "POST"
            and request.path == "/v2/orders"
            and self._chance(faults.order_504_rate)
        ):
            self.injected[(request.method, request.path, 504)] += 1
            return web.Response(status=504, text="Gateway Timeout")  # the order exists anyway
        return response

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    # ------------------------------------------------------------------ REST handlers

    async def _account(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.account_json())

    async def _clock_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.clock_json())

    async def _calendar(self, request: web.Request) -> web.Response:
        start = _date(request.query.get("start"))
        end = _date(request.query.get("end"))
        return web.json_response(self.account.calendar_json(start, end))

    async def _asset(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.asset_json(request.match_info["symbol"]))

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            raise ApiError(400, 40010000, "request body format is invalid") from None
        if not isinstance(payload, dict):
            raise ApiError(400, 40010000, "request body format is invalid")
        order = self.account.submit(payload)
        # the answer carries the legs, as the spec's bracket example and clients' reports show
        return web.json_response(order.as_json(nested=True))

    async def _orders(self, request: web.Request) -> web.Response:
        nested = _flag(request, "nested")
        shown = nested or self.account.options.legs_always
        orders = self.account.list_orders(
            status=request.query.get("status", "open"),
            limit=int(request.query.get("limit", "50")),
            direction=request.query.get("direction", "desc"),
            nested=nested,
        )
        return web.json_response([o.as_json(nested=shown) for o in orders])

    async def _order(self, request: web.Request) -> web.Response:
        order = self.account.get(request.match_info["order_id"])
        nested = _flag(request, "nested") or self.account.options.legs_always
        return web.json_response(order.as_json(nested=nested))

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        client_order_id = request.query.get("client_order_id", "")
        order = self.account.get_by_client_id(client_order_id)
        return web.json_response(order.as_json(nested=self.account.options.legs_always))

    async def _cancel(self, request: web.Request) -> web.Response:
        self.account.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def _cancel_all(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.cancel_all(), status=207)

    async def _positions(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.positions_json())

    async def _position(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.position_json(request.match_info["symbol"]))

    async def _close_position(self, request: web.Request) -> web.Response:
        qty = request.query.get("qty")
        order = self.account.close_position(
            request.match_info["symbol"], int(float(qty)) if qty else None
        )
        return web.json_response(order.as_json())

    async def _fill_activities(self, request: web.Request) -> web.Response:
        """GET /v2/account/activities/FILL: every execution, oldest first (TradingClient lacks it;
        the bot calls it directly after a restart)."""
        return web.json_response(self.account.fill_activities())

    async def _bars(self, request: web.Request) -> web.Response:
        symbols = request.query.get("symbols", "").upper().split(",")
        limit = min(int(request.query.get("limit", "1000")), self.max_page_size)
        start = _moment(request.query.get("start"))
        end = _moment(request.query.get("end"))
        page, token = self.account.bars_page(start, end, limit, request.query.get("page_token"))
        bars = {self.account.symbol: [_bar_json(b) for b in page]} if page else {}
        if self.account.symbol not in symbols:
            bars, token = {}, None
        return web.json_response({"bars": bars, "next_page_token": token})

    async def _latest_bar(self, request: web.Request) -> web.Response:
        bar = self.account.latest_bar()
        symbols = request.query.get("symbols", "").upper().split(",")
        if bar is None or self.account.symbol not in symbols:
            return web.json_response({"bars": {}})
        return web.json_response({"bars": {self.account.symbol: _bar_json(bar)}})

    async def _advance_view(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        bars = await self.advance(int(body.get("bars", 1)))
        return web.json_response(
            {
                "advanced": len(bars),
                "now": self.account.now.isoformat(),
                "finished": self.account.finished,
            }
        )

    async def _account_control(self, request: web.Request) -> web.Response:
        """POST /_emulator/account: set the account's `status` and blocking flags; new orders
        are then refused as Alpaca refuses them. Answers the account as GET /v2/account does."""
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return _error(
                422, {"message": "POST /_emulator/account: the body must be a JSON object"}
            )
        async with self._lock:
            try:
                self.account.set_account(body)
            except ApiError as exc:
                return _error(
                    exc.status, {**exc.body, "message": f"POST /_emulator/account: {exc}"}
                )
            return web.json_response(self.account.account_json())

    async def _state_view(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "now": self.account.now.isoformat(),
                "cursor": self.account.cursor,
                "bars": len(self.account.bars),
                "finished": self.account.finished,
                "position": self.account.position,
                "cash": str(self.account.cash),
                "orders": len(self.account.orders),
                "trade_stream_clients": len(self._trade_sockets),
                "data_stream_clients": len(self._data_sockets),
                # time.perf_counter() (CLOCK_MONOTONIC: comparable across processes on one
                # machine) of each POST /v2/orders, for the latency benchmark
                "order_arrivals": self.order_arrivals,
            }
        )

    # ------------------------------------------------------------------ streams

    async def _trade_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        authorized = False
        async for message in ws:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break
            data = json.loads(message.data)
            action = data.get("action")
            if action in {"authenticate", "auth"}:
                creds = data.get("data", {})
                authorized = (
                    creds.get("key_id") == self.key and creds.get("secret_key") == self.secret
                )
                status = "authorized" if authorized else "unauthorized"
                await ws.send_bytes(
                    json.dumps(
                        {
                            "stream": "authorization",
                            "data": {"action": "authenticate", "status": status},
                        }
                    ).encode()
                )
                if not authorized:
                    break
            elif action == "listen" and authorized:
                streams = data.get("data", {}).get("streams", [])
                await ws.send_bytes(
                    json.dumps({"stream": "listening", "data": {"streams": streams}}).encode()
                )
                if "trade_updates" in streams:
                    self._trade_sockets.add(ws)
        self._trade_sockets.discard(ws)
        return ws

    async def _data_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        authorized = False
        async for message in ws:
            if message.type != WSMsgType.BINARY:
                break
            data = msgpack.unpackb(message.data)
            action = data.get("action")
            if action == "auth":
                authorized = data.get("key") == self.key and data.get("secret") == self.secret
                reply = (
                    {"T": "success", "msg": "authenticated"}
                    if authorized
                    else {"T": "error", "code": 402, "msg": "auth failed"}
                )
                await ws.send_bytes(msgpack.packb([reply]))
                if not authorized:
                    break
            elif action in {"subscribe", "unsubscribe"} and authorized:
                symbols = self._data_sockets.setdefault(ws, set())
                wanted = {s.upper() for s in data.get("bars", [])}
                symbols.update(wanted) if action == "subscribe" else symbols.difference_update(
                    wanted
                )
                await ws.send_bytes(
                    msgpack.packb(
                        [
                            {
                                "T": "subscription",
                                "trades": [],
                                "quotes": [],
                                "bars": sorted(symbols),
                                "updatedBars": [],
                                "dailyBars": [],
                                "statuses": [],
                                "lulds": [],
                                "corrections": [],
                                "cancelErrors": [],
                            }
                        ]
                    )
                )
        self._data_sockets.pop(ws, None)
        return ws

    async def _flush_updates(self) -> None:
        updates = self.account.drain_updates()
        if not updates:
            return
        for update in updates:
            frame = json.dumps({"stream": "trade_updates", "data": update}).encode()
            for ws in list(self._trade_sockets):
                try:
                    await ws.send_bytes(frame)
                except ConnectionError:
                    self._trade_sockets.discard(ws)

    async def _publish_bar(self, bar: Bar) -> None:
        self.bars_published += 1
        every = self.faults.drop_data_socket_every
        if every and self.bars_published % every == 0:
            for ws in list(self._data_sockets):
                await ws.close()  # a dropped connection: clients must reconnect and backfill
            self._data_sockets.clear()
            return
        message = {
            "T": "b",
            "S": self.account.symbol,
            "o": bar.open,
            "h": bar.high,
            "l": bar.low,
            "c": bar.close,
            "v": int(bar.volume),
            "t": msgpack.Timestamp.from_datetime(bar.time),
            "n": 0,
            "vw": round((bar.high + bar.low + bar.close) / 3, 4),
        }
        frame = msgpack.packb([message], datetime=False)
        for ws, symbols in list(self._data_sockets.items()):
            if self.account.symbol in symbols:
                try:
                    await ws.send_bytes(frame)
                except ConnectionError:
                    self._data_sockets.pop(ws, None)


def _error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def _flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter; alpaca-py sends `True`/`False`, so case does not matter."""
    text = request.query.get(name, "false").lower()
    if text not in {"true", "false"}:
        raise ApiError(422, 40010001, f"invalid {name} {request.query.get(name)!r}")
    return text == "true"


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bar_json(bar: Bar) -> dict[str, Any]:
    return {
        "t": bar.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": bar.volume,
        "n": 0,
        "vw": round((bar.high + bar.low + bar.close) / 3, 4),
    }
