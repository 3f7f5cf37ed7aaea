"""The dashboard's HTTP server: a page, its JSON API, a live-update stream and the kill switch.

aiohttp (already used by the Alpaca emulator) on its own event loop in a daemon thread, so it
runs beside the trading loop inside `ict-trader run` without ever making it wait, or alone as
`ict-trader dashboard`. It reads the SQLite store through its own connection (WAL: readers never
block the writer) and changes nothing except through `control.request` — the same numbered
kill/resume request `ict-trader kill` writes, which the trading loop obeys within a bar.

Live updates are Server-Sent Events: the server watches SQLite's `data_version` (it changes when
the trading loop commits) and tells the page, which then re-reads the API. No CDN: plotly.js is
served from the plotly package installed with ict-trader, so the page works offline.

It must never stay broken, nor answer a kill it did not record: reads run on one worker thread
with the reader connection, which is thrown away and reopened after any database error (a
transient lock costs one 503, not the dashboard); each kill/resume is written through a fresh
connection in its own transaction and acknowledged only once committed. Hostile input gets a 4xx
of ours: bodies are capped, JSON nesting errors, bad dates or limits and symbols the store has
no bars of are 400s, and the `Server` header names no software version.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web, web_response

from ict_trader.audit.record import load_report
from ict_trader.dashboard import views
from ict_trader.dashboard.auth import DashboardToken, bearer
from ict_trader.persistence.store import Store, StoreError
from ict_trader.reporting.status import DEFAULT_MAX_HEARTBEAT_AGE, collect_health
from ict_trader.runtime import control

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
_STATIC = resources.files("ict_trader.dashboard") / "static"
_PLOTLY_JS = resources.files("plotly") / "package_data" / "plotly.min.js"
_STATIC_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
_SECURITY_HEADERS = {
    # Scripts only from this server; plotly styles its charts inline and needs blob: workers off.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

SERVER_NAME = "ict-trader"  # no software or version for a scanner to match
MAX_BODY_BYTES = 8 * 1024  # a kill/resume body is a reason of at most 500 characters
_DIGITS = re.compile(r"[0-9]{1,7}")
FIRST_DAY = date(1990, 1, 1)  # /api/bars accepts days in this range; others are not sessions
LAST_DAY = date(2199, 12, 31)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The answers aiohttp builds itself for unparsable requests (a header too long, a bad request
# line) never reach the app's hooks; they take the Server header from this module default. The
# process's other aiohttp server is the Alpaca emulator, which is ours too.
setattr(web_response, "SERVER_SOFTWARE", SERVER_NAME)  # noqa: B010 - not re-exported for mypy


class StoreUnavailableError(RuntimeError):
    """A read failed on a database error; the reader connection is reopened next time."""


class DashboardError(RuntimeError):
    """The dashboard cannot start (port taken, address refused, database unusable)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dashboard:
    """Serves one store's dashboard; `start()` returns once the port is bound."""

    def __init__(
        self,
        db: Path,
        token: DashboardToken,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        poll_seconds: float = 0.25,
        busy_timeout: float | None = None,
        max_heartbeat_age: float = DEFAULT_MAX_HEARTBEAT_AGE,
    ) -> None:
        self.db = db
        self.token = token
        self.host = host
        self.port = port
        self.poll_seconds = poll_seconds
        self.busy_timeout = busy_timeout
        self.max_heartbeat_age = max_heartbeat_age
        self._store: Store | None = None
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-store")
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # reported to the caller of start()
                self._error = exc
                loop.run_until_complete(self._stop())
                loop.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="dashboard", daemon=True)
        self._thread.start()
        ready.wait(30)
        if self._error is not None:
            error = self._error
            self._thread.join(5)
            if isinstance(error, OSError):
                raise DashboardError(f"cannot serve the dashboard on {self.url}: {error.strerror}")
            raise DashboardError(str(error))

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    async def _start(self) -> None:
        try:
            self._store = self._open_reader()
        except StoreError as exc:
            raise DashboardError(str(exc)) from None
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._closing is not None:
            self._closing.set()  # ends the event streams, so cleanup does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()
        self._reads.submit(self._drop_store).result()
        self._reads.shutdown(wait=True)

    # ------------------------------------------------------------------ the store

    def _open_reader(self) -> Store:
        return Store(self.db, reader=True, busy_timeout=self.busy_timeout)

    def _drop_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _use_store(self, build: Callable[[Store], T]) -> T:
        """On the worker thread: run `build` on a healthy reader connection."""
        try:
            if self._store is None:
                self._store = self._open_reader()
            return build(self._store)
        except (sqlite3.Error, StoreError) as exc:
            self._drop_store()  # a fresh connection for the next request: never stay broken
            raise StoreUnavailableError(str(exc)) from None

    async def read(self, build: Callable[[Store], T]) -> T:
        """Run a read on the worker thread (one at a time: a connection serves one thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, self._use_store, build)

    def _record_request(self, kind: str, reason: str) -> int:
        """A kill/resume through its own connection and transaction; returns once committed."""
        store = Store(self.db, reader=True, busy_timeout=self.busy_timeout)
        try:
            return control.request(store, kind, reason, "dashboard")
        finally:
            store.close()

    # ------------------------------------------------------------------ the app

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        app.on_response_prepare.append(_name_server)
        r = app.router
        r.add_get("/", self._index)
        r.add_get("/static/{name}", self._static)
        r.add_get("/favicon.ico", _no_content)
        r.add_get("/api/status", self._json_view(lambda s, _: views.status_view(s)))
        r.add_get("/api/trades", self._json_view(lambda s, _: views.trades_view(s)))
        r.add_get("/api/positions", self._json_view(lambda s, _: views.positions_view(s)))
        r.add_get("/api/equity", self._json_view(lambda s, _: views.equity_view(s)))
        r.add_get("/api/events", self._json_view(_events))
        r.add_get("/api/bars", self._json_view(_bars))
        r.add_get("/api/days", self._json_view(lambda s, _: s.bar_days()))
        r.add_get("/api/audit", self._json_view(lambda s, _: load_report(s)))
        r.add_get("/api/health", self._health)
        r.add_get("/api/stream", self._stream)
        r.add_post("/api/kill", self._control("kill"))
        r.add_post("/api/resume", self._control("resume"))
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_loopback(self.host) and request.host.rsplit(":", 1)[0].strip("[]") not in {
            "127.0.0.1",
            "localhost",
            "::1",
        }:
            # A loopback dashboard answers only to loopback names: a DNS-rebinding page on
            # another site cannot read the API through a name that resolves to 127.0.0.1.
            return _error(421, "unexpected Host header")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _error(exc.status, exc.reason)
        except StoreUnavailableError as exc:
            log.warning("dashboard: store unavailable: %s", exc)
            response = _error(503, "the store is busy or unreadable; try again")
            response.headers["Retry-After"] = "1"
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    async def _index(self, _: web.Request) -> web.Response:
        html = (_STATIC / "index.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "plotly.min.js":
            return web.Response(
                body=_PLOTLY_JS.read_bytes(),
                content_type="text/javascript",
                headers={"Cache-Control": "max-age=86400"},
            )
        if name not in _STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=(_STATIC / name).read_bytes(), content_type=_STATIC_FILES[name], charset="utf-8"
        )

    def _json_view(self, build: Callable[[Store, web.Request], Any]) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                payload = await self.read(lambda store: build(store, request))
            except BadInputError as exc:
                return _error(400, str(exc))
            return web.json_response(payload)

        return handler

    async def _health(self, _: web.Request) -> web.StreamResponse:
        """Liveness for supervisors: no token (it changes nothing and shows no money)."""
        report = await self.read(lambda store: collect_health(store, None, self.max_heartbeat_age))
        return web.json_response(report, status=200 if report["healthy"] else 503)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: `update` whenever the trading loop commits something new."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        for name, value in _SECURITY_HEADERS.items():
            response.headers[name] = value
        await response.prepare(request)
        assert self._closing is not None
        seen: tuple[int, str | None] | None = None
        idle = 0.0
        with contextlib.suppress(ConnectionResetError):
            while not self._closing.is_set():
                try:
                    now: tuple[int, str | None] | None = await self.read(_version)
                except StoreUnavailableError:
                    now = seen  # a transient error: the next poll reads a fresh connection
                if now is not None and now != seen:
                    seen = now
                    idle = 0.0
                    data = json.dumps({"version": now[0], "last_bar": now[1]})
                    await response.write(f"event: update\ndata: {data}\n\n".encode())
                elif idle >= 15:  # a comment keeps proxies and the browser from timing out
                    idle = 0.0
                    await response.write(b": keep-alive\n\n")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.poll_seconds)
                idle += self.poll_seconds
        return response

    def _control(self, kind: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if not self.token.matches(bearer(request.headers.get("Authorization"))):
                return _error(401, "a valid dashboard token is required")
            raw = await request.read()  # at most MAX_BODY_BYTES, else 413
            try:
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, RecursionError):  # bad JSON, bad UTF-8, nesting too deep
                return _error(400, 'send JSON: {"reason": "..."}')
            reason = body.get("reason") if isinstance(body, dict) else None
            if not isinstance(reason, str) or not reason.strip():
                return _error(400, "a reason is required (a string)")
            reason = reason.strip()[:500]
            try:
                number = await asyncio.to_thread(self._record_request, kind, reason)
            except StoreError as exc:
                log.warning("dashboard: %s request not recorded: %s", kind, exc)
                response = _error(503, f"the {kind} request was NOT recorded ({exc}); try again")
                response.headers["Retry-After"] = "1"
                return response
            return web.json_response({"request": number, "kind": kind, "reason": reason})

        return handler


class BadInputError(ValueError):
    """A query parameter the API cannot use: answered 400 with this message."""


def _version(store: Store) -> tuple[int, str | None]:
    return store.data_version(), store.state("last_bar_time")


def _events(store: Store, request: web.Request) -> Any:
    raw = request.query.get("limit", "50")
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= 1000:
        raise BadInputError("limit must be a whole number from 1 to 1000")
    return views.events_view(store, int(raw))


def _bars(store: Store, request: web.Request) -> Any:
    raw = request.query.get("day")
    if raw:
        day: date | None = _day(raw)
    else:
        day = views.session_day(store, None)
    symbol = request.query.get("symbol")
    if symbol:
        known = views.chart_symbols(store)
        if symbol not in known:  # never echoed back: only the symbols the store has bars of
            raise BadInputError(
                f"symbol must be one with bars in the store: {', '.join(known)}"
                if known
                else "symbol: the store keeps no bars yet"
            )
    return views.bars_view(store, day, symbol or None)


def _day(raw: str) -> date:
    """YYYY-MM-DD within the years a session can have (later ones overflow time zones)."""
    problem = f"day must be a date like 2024-07-30, from {FIRST_DAY} to {LAST_DAY}"
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        raise BadInputError(problem)
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise BadInputError(problem) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadInputError(problem)
    return day


async def _name_server(_: web.Request, response: web.StreamResponse) -> None:
    """Runs before any response's headers go out (SSE included): no aiohttp/Python versions."""
    response.headers["Server"] = SERVER_NAME


async def _no_content(_: web.Request) -> web.Response:
    return web.Response(status=204)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
