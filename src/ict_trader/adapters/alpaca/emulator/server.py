"""The emulator's HTTP and WebSocket server (aiohttp) on 127.0.0.1.

REST under /v2 (trading and market data on one port), the trade-updates stream at /stream
(JSON, no greeting), the market-data stream at /v2/iex and /v2/sip (msgpack, `connected` greeting,
bars with msgpack Timestamps). A replay clock completes one bar every 60 / speed seconds; with
speed 0 the clock only moves when POST /_emulator/advance asks it to (what tests use). Faults are
injected per request or per bar as configured in `Faults`. Query parameters and order bodies are
checked by `emulator.validation` as Alpaca's OpenAPI specs list them: a bad one gets a 4xx, never
a 500.

The data stream follows realtime.md: every bar of every served symbol is sent, pre- and
after-market ones included, as one frame per symbol (`"S"` names it) to the connections that
subscribed to that symbol's bars or to `*`; a symbol without a trade in a minute sends no bar
then. The subscription reply lists every channel; errors are
`[{"T":"error","code":N,"msg":…}]` — 400 invalid syntax, 401 not authenticated, 402 auth failed,
403 already authenticated, 406 connection limit exceeded (a second authenticated connection with
the key), 409 insufficient subscription (/v2/sip on the free plan; alpaca-py then stops for
good). What the feeds and the bars REST model is described in `emulator.feed`.

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
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from ict_trader.adapters.alpaca.emulator import activities, contracts, snapshots
from ict_trader.adapters.alpaca.emulator import validation as check
from ict_trader.adapters.alpaca.emulator.errors import ApiError
from ict_trader.adapters.alpaca.emulator.feed import (
    RECENT_SIP_DELAY,
    DataBar,
    DataOptions,
    Feed,
    MarketFeed,
    aggregate,
    parse_timeframe,
)
from ict_trader.adapters.alpaca.emulator.paper import PaperAccount
from ict_trader.core.bars import Bar

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


CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
# alpaca-py: "you can only subscribe to trade corrections [cancels] by subscribing to the
# underlying trades", so these two lists follow `trades`
FOLLOW_TRADES = ("corrections", "cancelErrors")
STREAM_ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    406: "connection limit exceeded",
    409: "insufficient subscription",
}


@dataclass
class DataSession:
    """One market-data connection: its feed and what it subscribed to, per channel."""

    feed: Feed
    channels: dict[str, set[str]] = field(default_factory=lambda: {c: set() for c in CHANNELS})

    def wants(self, channel: str, symbol: str) -> bool:
        chosen = self.channels[channel]
        return symbol in chosen or "*" in chosen

    def reply(self) -> dict[str, Any]:
        """The subscription message: the whole current set, every channel listed."""
        lists: dict[str, Any] = {c: sorted(s) for c, s in self.channels.items()}
        lists.update({name: sorted(self.channels["trades"]) for name in FOLLOW_TRADES})
        return {"T": "subscription", **lists}


class EmulatorServer:
    """Serves one `PaperAccount` (and the market data of every symbol it serves); run it with
    `start()` in a loop or `run_in_thread()`."""

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
        data: DataOptions | None = None,
    ) -> None:
        self.account = account
        self.feed = MarketFeed(account.bars_by_symbol, data)
        self.key = key
        self.secret = secret
        self.speed = speed
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self.max_page_size = max_page_size  # Alpaca's cap per page; lower to test pagination
        self._random = random.Random(self.faults.seed)
        self._trade_sockets: set[web.WebSocketResponse] = set()
        self._data_sockets: dict[web.WebSocketResponse, DataSession] = {}  # subscribed
        self._data_authenticated: set[web.WebSocketResponse] = set()
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
        r.add_delete("/v2/positions", self._close_all_positions)
        r.add_get("/v2/positions/{symbol}", self._position)
        r.add_delete("/v2/positions/{symbol}", self._close_position)
        r.add_get("/v2/account/activities", self._activities)
        r.add_get("/v2/account/activities/{activity_type}", self._activities)
        r.add_get("/v2/stocks/bars", self._bars)
        r.add_get("/v2/stocks/bars/latest", self._latest_bar)
        r.add_get("/v2/stocks/{symbol}/bars", self._symbol_bars)
        r.add_get("/v2/options/contracts", self._option_contracts)
        r.add_get("/v2/options/contracts/{symbol_or_id}", self._option_contract)
        r.add_get("/v1beta1/options/snapshots", self._option_snapshots)
        r.add_get("/v1beta1/options/snapshots/{underlying_symbol}", self._option_chain)
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
        """Complete `bars` minutes of the clock, answering with one bar per minute (the default
        symbol's, or the first served symbol's that had one; see `advance_minutes`)."""
        minutes = await self.advance_minutes(bars)
        symbol = self.account.symbol
        return [minute.get(symbol) or next(iter(minute.values())) for minute in minutes]

    async def advance_minutes(self, minutes: int) -> list[dict[str, Bar]]:
        """Complete `minutes` minutes of the clock: fills first (trade stream), then the
        minute's bars (data stream). Answers each minute's bars by symbol (a symbol with no
        trade that minute has none)."""
        published = []
        async with self._lock:
            for _ in range(minutes):
                if self.account.finished:
                    break
                index = self.account.cursor
                if index > 0:
                    await self._publish_revision(index - 1)  # late trades, ~30 s after it
                completed = self.account.complete_minute()
                await self._flush_updates()
                await self._publish_bar(index)
                published.append(completed)
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
        # the answer carries the legs, as the spec's bracket example and clients' reports show
        return web.json_response(order.as_json(nested=True))

    async def _orders(self, request: web.Request) -> web.Response:
        query, refusal = request.query, check.TRADING
        nested = check.boolean(query, "nested", refusal)
        symbols = check.text(query, "symbols", refusal)
        side = check.choice(query, "side", {"", "buy", "sell"}, "", refusal)
        orders = self.account.list_orders(
            status=check.choice(query, "status", {"open", "closed", "all"}, "open", refusal),
            limit=check.integer(query, "limit", 50, refusal, low=1, high=500),
            direction=check.choice(query, "direction", {"asc", "desc"}, "desc", refusal),
            nested=nested,
            after=check.moment(query, "after", refusal),
            until=check.moment(query, "until", refusal),
            symbols=frozenset(s.strip().upper() for s in symbols.split(",")) if symbols else None,
            side=side or None,
        )
        shown = nested or self.account.options.legs_always
        return web.json_response([o.as_json(nested=shown) for o in orders])

    async def _order(self, request: web.Request) -> web.Response:
        order = self.account.get(request.match_info["order_id"])
        nested = check.boolean(request.query, "nested", check.TRADING)
        return web.json_response(order.as_json(nested=nested or self.account.options.legs_always))

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        client_order_id = check.text(request.query, "client_order_id", check.TRADING, required=True)
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
        symbol = request.match_info["symbol"]
        served = self.account.resolve(symbol)
        position = self.account.position_of(served) if served is not None else 0
        order = self.account.close_position(symbol, _close_qty(request.query, position))
        return web.json_response(order.as_json())

    async def _close_all_positions(self, request: web.Request) -> web.Response:
        """DELETE /v2/positions: one PositionClosedResponse per open position (207)."""
        cancel_orders = check.boolean(request.query, "cancel_orders", check.TRADING)
        answers = self.account.close_all_positions(cancel_orders=cancel_orders)
        return web.json_response(answers, status=207)

    async def _activities(self, request: web.Request) -> web.Response:
        """GET /v2/account/activities[/{activity_type}]: newest first, paged (see `activities`;
        TradingClient has no method for it, clients call the route directly)."""
        try:
            query = activities.parse_query(request.query, request.match_info.get("activity_type"))
        except ValueError as exc:
            raise check.TRADING.error(str(exc)) from None
        return web.json_response(activities.select(self.account.account_activities(), query))

    async def _option_contracts(self, request: web.Request) -> web.Response:
        """GET /v2/options/contracts: the listed contracts of the served underlyings, a page
        at a time (TradingClient.get_option_contracts reads one page; see `contracts`)."""
        now = self.account.now
        query = contracts.parse_query(request.query, now)
        query = replace(query, limit=min(query.limit, self.max_page_size))
        page = contracts.contracts_page(self.account.option_market, query, now)
        return web.json_response(page)

    async def _option_contract(self, request: web.Request) -> web.Response:
        """GET /v2/options/contracts/{symbol_or_id}: one contract, by OCC symbol or id."""
        found = contracts.one_contract(
            self.account.option_market, request.match_info["symbol_or_id"], self.account.now
        )
        return web.json_response(found)

    async def _option_snapshots(self, request: web.Request) -> web.Response:
        """GET /v1beta1/options/snapshots: modelled snapshots of the listed contracts among
        `symbols` (see `snapshots`)."""
        query = self._snapshot_query(request)
        market, now = self.account.option_market, self.account.now
        listed = [
            c for s in snapshots.parse_symbols(request.query) if (c := market.contract(s, now))
        ]
        return web.json_response(snapshots.snapshots_page(self.account, listed, query))

    async def _option_chain(self, request: web.Request) -> web.Response:
        """GET /v1beta1/options/snapshots/{underlying_symbol}: the option chain, the
        underlying's active contracts filtered as asked, a page at a time."""
        query = self._snapshot_query(request)
        chosen = snapshots.parse_chain(request.query)
        underlying = request.match_info["underlying_symbol"].upper()
        market, now = self.account.option_market, self.account.now
        chain = [
            c
            for c in market.listed(now, [underlying])
            if market.active(c, now) and chosen.admits(c)
        ]
        return web.json_response(snapshots.snapshots_page(self.account, chain, query))

    def _snapshot_query(self, request: web.Request) -> snapshots.SnapshotQuery:
        """Both snapshot routes' common query, the page no larger than `max_page_size`; the
        default feed is OPRA on the paid data plan (the spec: "opra if the user has a
        subscription, otherwise indicative")."""
        query = snapshots.parse_query(request.query, self.feed.options.plan != "free")
        return replace(query, limit=min(query.limit, self.max_page_size))

    async def _bars(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/bars: the bars of the completed minutes of every requested symbol the
        emulator serves (others have none: no key), a page at a time. As the spec says, results
        are sorted by symbol first, then by time, and `limit` counts the bars of the page across
        symbols, so a page may hold only the first symbol's bars."""
        symbols = self._requested(request.query)
        page, token = self._bars_page(request.query, symbols)
        bars: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in page:
            bars.setdefault(symbol, []).append(bar.as_json())
        return web.json_response({"bars": bars, "next_page_token": token})

    async def _symbol_bars(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/{symbol}/bars: one symbol's bars as a list, with the symbol named."""
        symbol = request.match_info["symbol"].upper()
        served = [symbol] if symbol in self.account.symbols else []
        page, token = self._bars_page(request.query, served)
        return web.json_response(
            {"bars": [b.as_json() for _, b in page], "symbol": symbol, "next_page_token": token}
        )

    def _requested(self, query: Mapping[str, str]) -> list[str]:
        """The served symbols among the request's `symbols` (required), sorted."""
        symbols = check.text(query, "symbols", check.MARKET_DATA, required=True)
        asked = {s.strip().upper() for s in symbols.split(",")}
        return sorted(asked & set(self.account.symbols))

    def _bars_page(
        self, query: Mapping[str, str], symbols: list[str]
    ) -> tuple[list[tuple[str, DataBar]], str | None]:
        """Historical bars of the completed minutes of `symbols` (in that order), aggregated to
        `timeframe`, in `sort` order within each symbol, `limit` bars a page in all (both bars
        routes; parameters checked as the market-data spec lists them, 400 otherwise)."""
        refusal = check.MARKET_DATA
        try:
            timeframe = parse_timeframe(check.text(query, "timeframe", refusal, required=True))
        except ValueError as exc:
            raise refusal.error(str(exc)) from None
        limit = check.integer(query, "limit", 1000, refusal, low=1, high=10_000)
        start = check.moment(query, "start", refusal)
        end = check.moment(query, "end", refusal)
        descending = check.choice(query, "sort", {"asc", "desc"}, "asc", refusal) == "desc"
        token = query.get("page_token")
        if token is not None and not (token.isascii() and token.isdigit()):
            raise refusal.error(f"invalid page_token: {token!r}")
        feed = self._history_feed(query, end, {"iex", "otc", "sip", "boats"})
        chosen: list[tuple[str, DataBar]] = []
        for symbol in symbols:
            minutes = self.feed.history(self.account.cursor, feed, since=start, symbol=symbol)
            bars = [
                b
                for b in aggregate(minutes, timeframe, self.account.calendar)
                if (start is None or b.time >= start) and (end is None or b.time <= end)
            ]
            if descending:
                bars.reverse()
            chosen.extend((symbol, b) for b in bars)
        offset = int(token) if token else 0
        size = min(limit, self.max_page_size)
        following = offset + size
        return chosen[offset:following], (str(following) if following < len(chosen) else None)

    async def _latest_bar(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/bars/latest: the newest bar of each requested served symbol."""
        query = request.query
        symbols = self._requested(query)
        feed = self._history_feed(
            query, None, {"delayed_sip", "iex", "otc", "sip", "boats", "overnight"}
        )
        bars = {}
        for symbol in symbols:
            bar = self.feed.latest(self.account.cursor, feed, symbol)
            if bar is not None:
                bars[symbol] = bar.as_json()
        return web.json_response({"bars": bars})

    def _history_feed(
        self, query: Mapping[str, str], end: datetime | None, listed: set[str]
    ) -> Feed:
        """The feed a history request reads (`listed`: the route's feeds in the spec, of which
        the emulator has iex and sip). The free plan's SIP history stops 15 minutes back (403
        when asked for; without `feed`, recent requests are answered from IEX)."""
        refusal = check.MARKET_DATA
        free = self.feed.options.plan == "free"
        recent = end is None or end > self.account.now - RECENT_SIP_DELAY
        if not query.get("feed"):
            return "iex" if free and recent else "sip"
        asked = check.choice(query, "feed", listed, "sip", refusal)
        if asked not in {"iex", "sip"}:
            raise refusal.error(f"feed {asked!r} is not emulated (iex or sip)")
        if asked == "sip" and free and recent:
            raise ApiError(403, None, "subscription does not permit querying recent SIP data")
        return "sip" if asked == "sip" else "iex"

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
                "bars": len(self.account.times),  # minutes of the clock
                "finished": self.account.finished,
                "symbols": list(self.account.symbols),
                "position": self.account.position,  # the default symbol's
                "positions": self.account.positions,
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
        session = DataSession(feed="sip" if request.path.endswith("/sip") else "iex")
        await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
        try:
            async for message in ws:
                if message.type != WSMsgType.BINARY:
                    break
                if not await self._data_message(ws, session, message.data):
                    break
        finally:
            self._data_sockets.pop(ws, None)
            self._data_authenticated.discard(ws)
        return ws

    async def _data_message(
        self, ws: web.WebSocketResponse, session: DataSession, raw: bytes
    ) -> bool:
        """Answer one client message; False closes the connection (as Alpaca does after a
        failed authentication)."""
        try:
            data = msgpack.unpackb(raw)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            data = None
        action = data.get("action") if isinstance(data, dict) else None
        authorized = ws in self._data_authenticated
        if action == "auth":
            assert isinstance(data, dict)
            if authorized:
                return await self._data_error(ws, 403)
            if data.get("key") != self.key or data.get("secret") != self.secret:
                await self._data_error(ws, 402)
                return False
            if session.feed == "sip" and self.feed.options.plan == "free":
                await self._data_error(ws, 409)
                return False
            if len(self._data_authenticated) >= self.feed.options.connection_limit:
                await self._data_error(ws, 406)
                return False
            self._data_authenticated.add(ws)
            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
            return True
        if action not in {"subscribe", "unsubscribe"}:
            return await self._data_error(ws, 400)
        if not authorized:
            return await self._data_error(ws, 401)
        assert isinstance(data, dict)
        for channel, chosen in session.channels.items():
            wanted = {str(s).upper() for s in data.get(channel) or []}
            if action == "subscribe":
                chosen.update(wanted)
            else:
                chosen.difference_update(wanted)
        self._data_sockets[ws] = session
        await ws.send_bytes(msgpack.packb([session.reply()]))
        return True

    async def _data_error(self, ws: web.WebSocketResponse, code: int) -> bool:
        await ws.send_bytes(
            msgpack.packb([{"T": "error", "code": code, "msg": STREAM_ERRORS[code]}])
        )
        return True

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

    async def _publish_bar(self, index: int) -> None:
        """Clock minute `index` completed: each symbol's bar goes to every subscriber of that
        symbol's `bars` (or of `*`) whose feed has it; a symbol without a bar sends nothing."""
        self.bars_published += 1
        every = self.faults.drop_data_socket_every
        if every and self.bars_published % every == 0:
            for ws in list(self._data_sockets):
                self._data_authenticated.discard(ws)
                await ws.close()  # a dropped connection: clients must reconnect and backfill
            self._data_sockets.clear()
            return
        for symbol in self.account.symbols:
            for feed in ("iex", "sip"):
                bar = self.feed.sent(index, feed, symbol)
                if bar is not None:
                    await self._send_data(_stream_frame("b", symbol, bar), "bars", feed, symbol)

    async def _publish_revision(self, index: int) -> None:
        """Late trades revised minute `index`: an `updatedBars` message, each feed that had a
        bar for it getting its own revised bar."""
        for symbol in self.account.symbols:
            for feed in ("iex", "sip"):
                revised = self.feed.revision(index, feed, symbol)
                if revised is not None:
                    frame = _stream_frame("u", symbol, revised)
                    await self._send_data(frame, "updatedBars", feed, symbol)

    async def _send_data(self, frame: bytes, channel: str, feed: Feed, symbol: str) -> None:
        for ws, session in list(self._data_sockets.items()):
            if session.feed == feed and session.wants(channel, symbol):
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


def _stream_frame(kind: str, symbol: str, bar: DataBar) -> bytes:
    """One bar message (`b` or `u`) as the msgpack stream sends it (`t` a msgpack Timestamp)."""
    message = {
        "T": kind,
        "S": symbol,
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": bar.volume,
        "t": msgpack.Timestamp.from_datetime(bar.time),
        "n": bar.trades,
        "vw": bar.vwap,
    }
    frame: bytes = msgpack.packb([message], datetime=False)
    return frame
