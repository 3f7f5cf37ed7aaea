"""A loopback emulation of Pushover's message API (POST /1/messages.json) for the notifier tests.

It validates like the real API (https://pushover.net/api): the application token, the user key,
a blank or over-long message and an emergency priority without retry/expire are 400s with the
documented `{"status": 0, "errors": [...], "request": ...}` body; success is a 200 with the
`X-Limit-App-*` headers. Faults: `fail_next` (status codes for the next requests, in order),
`delay_seconds` (answer late), `hang()` (never answer until `release()` or shutdown).
"""

from __future__ import annotations

import asyncio
import calendar
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

MONTHLY_LIMIT = 10_000
MAX_MESSAGE_CHARS = 1024
MAX_TITLE_CHARS = 250

_FAULT_ERRORS = {
    429: "application has exceeded its monthly message limit",
    500: "internal error",
    502: "bad gateway",
    503: "service unavailable",
}


class PushoverEmulator:
    """Serves the message API for one application token and one user key."""

    def __init__(self, token: str, user: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.user = user
        self.host = host
        self.port = port
        self.fail_next: list[int] = []  # status codes for the next requests, in order
        self.delay_seconds = 0.0  # wait this long before answering
        self.remaining = MONTHLY_LIMIT
        self.reset_at = _next_month_start()  # unix time of the quota reset (X-Limit-App-Reset)
        self._messages: list[dict[str, str]] = []
        self._requests_seen: list[dict[str, str]] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._released: asyncio.Event | None = None  # cleared while hanging

    # ------------------------------------------------------------------ what tests read

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def messages(self) -> list[dict[str, str]]:
        """The form fields of every accepted message, in arrival order (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def requests_seen(self) -> list[dict[str, str]]:
        """The form fields of every request, accepted or not (a copy)."""
        with self._lock:
            return list(self._requests_seen)

    @property
    def statuses(self) -> list[int]:
        """The HTTP status of every answer, in order (a copy)."""
        with self._lock:
            return list(self._statuses)

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` requests have been answered or seen; True when they have."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._statuses) >= count:
                    return True
            time.sleep(0.005)
        return False

    # ------------------------------------------------------------------ faults

    def hang(self) -> None:
        """Stop answering: requests are read, then left waiting until `release()` or shutdown."""
        self._set_released(False)

    def release(self) -> None:
        """Answer again, including the requests left hanging."""
        self._set_released(True)

    def _set_released(self, released: bool) -> None:
        """Flip the gate on the server's loop and wait until it is flipped."""

        async def flip() -> None:
            assert self._released is not None
            if released:
                self._released.set()
            else:
                self._released.clear()

        assert self._loop is not None, "the emulator is not running"
        asyncio.run_coroutine_threadsafe(flip(), self._loop).result(10)

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/1/messages.json", self._messages_view)
        return app

    async def _start(self) -> None:
        self._released = asyncio.Event()
        self._released.set()
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        assert self._released is not None
        self._released.set()  # let hanging handlers finish so shutdown is quick
        if self._runner is not None:
            await self._runner.cleanup()

    def start(self) -> None:
        """Serve on a private event loop in a daemon thread; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            try:
                try:
                    loop.run_until_complete(self._start())
                except BaseException as exc:
                    failure.append(exc)
                    return
                finally:
                    self._loop = loop
                    ready.set()
                loop.run_forever()
                loop.run_until_complete(self._stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="pushover-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Pushover emulator did not start")
        if failure:
            self._loop = None
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    # ------------------------------------------------------------------ the API

    async def _messages_view(self, request: web.Request) -> web.Response:
        delay = self.delay_seconds  # as it was when the request arrived
        form = {key: str(value) for key, value in (await request.post()).items()}
        with self._lock:
            self._requests_seen.append(form)
        if delay:
            await asyncio.sleep(delay)
        if self._released is not None:
            await self._released.wait()
        response = self._answer(form)
        with self._lock:
            self._statuses.append(response.status)
        return response

    def _answer(self, form: dict[str, str]) -> web.Response:
        if self.fail_next:
            status = self.fail_next.pop(0)
            error = _FAULT_ERRORS.get(status, "injected failure")
            headers = self._limit_headers() if status == 429 else {}
            return _reply(status, {"errors": [error], "status": 0}, headers)
        if form.get("token") != self.token:
            return _reply(400, {"token": "invalid", "errors": ["application token is invalid"]})
        if form.get("user") != self.user:
            return _reply(
                400,
                {
                    "user": "invalid",
                    "errors": [
                        "user identifier is not a valid user, group, or subscribed user key"
                    ],
                },
            )
        message = form.get("message", "")
        if not message.strip():
            return _reply(
                400, {"message": "cannot be blank", "errors": ["message cannot be blank"]}
            )
        if len(message) > MAX_MESSAGE_CHARS:
            return _reply(400, {"message": "is too long", "errors": ["message is too long"]})
        if len(form.get("title", "")) > MAX_TITLE_CHARS:
            return _reply(400, {"title": "is too long", "errors": ["title is too long"]})
        problem = _priority_problem(form)
        if problem is not None:
            return _reply(400, {"priority": "invalid", "errors": [problem]})
        if "timestamp" in form and not form["timestamp"].isdigit():
            return _reply(400, {"timestamp": "is invalid", "errors": ["timestamp is invalid"]})
        if self.remaining <= 0:
            return _reply(
                429,
                {"errors": [_FAULT_ERRORS[429]]},
                self._limit_headers(),
            )
        self.remaining -= 1
        with self._lock:
            self._messages.append(form)
        return _reply(200, {}, self._limit_headers())

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-Limit-App-Limit": str(MONTHLY_LIMIT),
            "X-Limit-App-Remaining": str(self.remaining),
            "X-Limit-App-Reset": str(self.reset_at),
        }


def _priority_problem(form: dict[str, str]) -> str | None:
    text = form.get("priority", "0")
    try:
        priority = int(text)
    except ValueError:
        return "priority is invalid"
    if not -2 <= priority <= 2:
        return "priority is invalid"
    if priority == 2:
        if not form.get("retry"):
            return "retry is required for emergency-priority notifications"
        if not form.get("expire"):
            return "expire is required for emergency-priority notifications"
    return None


def _reply(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    payload = {**body, "status": 1 if status == 200 else 0, "request": str(uuid.uuid4())}
    return web.json_response(payload, status=status, headers=headers)


def _next_month_start() -> int:
    now = time.gmtime()
    year, month = (now.tm_year + 1, 1) if now.tm_mon == 12 else (now.tm_year, now.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))


@contextmanager
def running_pushover(token: str, user: str) -> Iterator[PushoverEmulator]:
    """A started emulator on 127.0.0.1 with an OS-chosen port; stopped on exit."""
    emulator = PushoverEmulator(token, user)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
