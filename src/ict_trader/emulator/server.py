"""The emulator's HTTP and WebSocket server (aiohttp) on 127.0.0.1.

REST under /v2 (trading and market data on one port), the trade-updates stream at /stream
(JSON, no greeting), the market-data stream at /v2/iex and /v2/sip (msgpack, `connected` greeting,
bars with msgpack Timestamps). A replay clock completes one bar every 60 / speed seconds; with
speed 0 the clock only moves when POST /_emulator/advance asks it to (what tests use). Faults are
injected per request or per bar as configured in `Faults`.
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
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from ict_trader.bars import Bar
from ict_trader.emulator import validation as check
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
        r.add_get("/v2/account/activities", self._activities)
        r.add_get("/v2/account/activities/{activity_type}", self._activities)
        r.add_get("/v2/stocks/bars", self._bars)
        r.add_get("/v2/stocks/bars/latest", self._latest_bar)
        r.add_get("/v2/stocks/{symbol}/bars", self._symbol_bars)
        r.add_get("/stream", self._trade_stream)
        r.add_get("/v2/iex", self._data_stream)
        r.add_get("/v2/sip", self._data_stream)
        r.add_post("/_emulator/advance", self._advance_view)
        r.add_get("/_emulator/state", self._state_view)
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
        start = check.day(request.query, "start", check.CALENDAR)
        end = check.day(request.query, "end", check.CALENDAR)
        check.choice(request.query, "date_type", {"TRADING"}, "TRADING", check.CALENDAR)
        return web.json_response(self.account.calendar_json(start, end))

    async def _asset(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.asset_json(request.match_info["symbol"]))

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            payload = check.order_payload(await request.json())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, 40010000, check.BODY_FORMAT_INVALID) from None
        order = self.account.submit(payload)
        return web.json_response(order.as_json())

    async def _orders(self, request: web.Request) -> web.Response:
        query, refusal = request.query, check.TRADING
        orders = self.account.list_orders(
            status=check.choice(query, "status", {"open", "closed", "all"}, "open", refusal),
            limit=check.integer(query, "limit", 50, refusal, low=1, high=500),
            direction=check.choice(query, "direction", {"asc", "desc"}, "desc", refusal),
        )
        return web.json_response([o.as_json() for o in orders])

    async def _order(self, request: web.Request) -> web.Response:
        return web.json_response(self.account.get(request.match_info["order_id"]).as_json())

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        client_order_id = check.text(request.query, "client_order_id", check.TRADING, required=True)
        return web.json_response(self.account.get_by_client_id(client_order_id).as_json())

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
        order = self.account.close_position(
            request.match_info["symbol"], _close_qty(request.query, self.account.position)
        )
        return web.json_response(order.as_json())

    async def _activities(self, request: web.Request) -> web.Response:
        """GET /v2/account/activities[/{activity_type}]: the account's executions (the only
        activities a paper replay has), newest first unless `direction=asc`, paged by
        `page_size` and `page_token` (the id of the last activity of the previous page)."""
        query, refusal = request.query, check.TRADING
        kinds = {request.match_info.get("activity_type", "")} - {""}
        if not kinds and query.get("activity_types"):
            kinds = set(query["activity_types"].split(","))
        direction = check.choice(query, "direction", {"asc", "desc"}, "desc", refusal)
        size = check.integer(query, "page_size", 100, refusal, low=1, high=100)
        check.choice(query, "category", {"trade_activity", "non_trade_activity", ""}, "", refusal)
        activities = [
            a for a in self.account.fill_activities() if not kinds or a["activity_type"] in kinds
        ]
        if query.get("category") == "non_trade_activity":
            activities = []
        if direction == "desc":
            activities.reverse()
        token = query.get("page_token")
        if token:
            ids = [a["id"] for a in activities]
            activities = activities[ids.index(token) + 1 :] if token in ids else []
        return web.json_response(activities[:size])

    async def _bars(self, request: web.Request) -> web.Response:
        symbols = check.text(request.query, "symbols", check.MARKET_DATA, required=True)
        page, token = self._bars_page(request)
        bars = {self.account.symbol: [_bar_json(b) for b in page]} if page else {}
        if self.account.symbol not in symbols.upper().split(","):
            bars, token = {}, None
        return web.json_response({"bars": bars, "next_page_token": token})

    async def _symbol_bars(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/{symbol}/bars: one symbol's bars as a list, with the symbol named."""
        symbol = request.match_info["symbol"].upper()
        page, token = self._bars_page(request)
        if symbol != self.account.symbol:
            page, token = [], None
        return web.json_response(
            {"bars": [_bar_json(b) for b in page], "symbol": symbol, "next_page_token": token}
        )

    def _bars_page(self, request: web.Request) -> tuple[list[Bar], str | None]:
        """The parameters the bars routes share, checked as the market-data spec lists them."""
        query, refusal = request.query, check.MARKET_DATA
        check.timeframe(query, refusal)
        limit = check.integer(query, "limit", 1000, refusal, low=1, high=10_000)
        start = check.moment(query, "start", refusal)
        end = check.moment(query, "end", refusal)
        check.choice(query, "feed", {"iex", "otc", "sip", "boats"}, "sip", refusal)
        if check.choice(query, "sort", {"asc", "desc"}, "asc", refusal) == "desc":
            raise refusal.error("sort=desc is not emulated")  # refused rather than ignored
        token = query.get("page_token")
        if token is not None and not (token.isascii() and token.isdigit()):
            raise refusal.error(f"invalid page_token: {token!r}")
        return self.account.bars_page(start, end, min(limit, self.max_page_size), token)

    async def _latest_bar(self, request: web.Request) -> web.Response:
        symbols = check.text(request.query, "symbols", check.MARKET_DATA, required=True)
        check.choice(
            request.query,
            "feed",
            {"delayed_sip", "iex", "otc", "sip", "boats", "overnight"},
            "sip",
            check.MARKET_DATA,
        )
        bar = self.account.latest_bar()
        if bar is None or self.account.symbol not in symbols.upper().split(","):
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


def _close_qty(query: Mapping[str, str], position: int) -> int | None:
    """Shares to close from DELETE /v2/positions/{symbol}'s `qty` or `percentage` (of the
    position, rounded down to whole shares: the emulator trades no fractions)."""
    refusal = check.TRADING
    if "qty" in query and "percentage" in query:
        raise refusal.error("only one of qty or percentage may be given")
    if "qty" in query:
        qty = check.positive_decimal(query["qty"], "qty", refusal)
        if qty != qty.to_integral_value():
            raise refusal.error("fractional orders are not emulated")
        return int(qty)  # more than the position: the paper account answers 403, as Alpaca
    if "percentage" in query:
        percentage = check.positive_decimal(query["percentage"], "percentage", refusal)
        if percentage > 100:
            raise refusal.error("percentage must be <= 100")
        shares = int(abs(position) * percentage / 100)
        if shares == 0 and position != 0:
            raise refusal.error("percentage leaves no whole share to close")
        return shares or None
    return None


def _bar_json(bar: Bar) -> dict[str, Any]:
    return {
        "t": bar.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": int(bar.volume),
        "n": 0,
        "vw": round((bar.high + bar.low + bar.close) / 3, 4),
    }
