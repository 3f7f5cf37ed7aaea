"""Push notifications (Pushover) for the engine's `Notify` commands.

Why a separate module with its own worker thread: a notification is a side channel. The trading
loop must never wait on it, and a slow, dead or over-quota Pushover must never delay an order or
crash the bot. So `send()` only puts the notice on a bounded queue (dropping it, with a warning,
when the queue is full) and a daemon thread does the HTTP work, retrying what is worth retrying.

Pushover's message API (https://pushover.net/api): POST form fields to `/1/messages.json`.

* HTTP 200 with `{"status": 1, ...}`: delivered.
* HTTP 4xx (not 429): the request itself is invalid (bad token or user key, blank or too long
  message...). Retrying cannot help, so it is logged with the API's `errors` list and dropped.
* HTTP 429: the application is over its monthly message quota. Retrying only hammers the API, so
  the notifier logs once and suspends itself: notices are dropped without a request until the
  quota resets (the `X-Limit-App-Reset` time when the answer carries it, else one hour later),
  then it tries again.
* HTTP 5xx, connection errors and timeouts: retried with exponential backoff and jitter, up to
  `max_attempts`, then logged and dropped.

Counters: `sent` (delivered), `failed` (attempted, not delivered), `dropped` (never attempted:
queue full, closed, quota suspended, still queued when `close` gave up). The token and the user
key are never logged; log lines name a notice by its title only.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import requests

from ict_trader.events import Level, Notify
from ict_trader.logs import register_secret

log = logging.getLogger(__name__)

PUSHOVER_URL: Final = "https://api.pushover.net"
MESSAGES_PATH: Final = "/1/messages.json"
MAX_MESSAGE_CHARS: Final = 1024
MAX_TITLE_CHARS: Final = 250
ELLIPSIS: Final = "…"
QUOTA_PAUSE_SECONDS: Final = 3600.0  # after a 429 without an X-Limit-App-Reset header

# Never 2 (emergency): that needs retry/expire and an acknowledgement from the user.
PRIORITY: Final[Mapping[Level, int]] = {Level.CRITICAL: 1, Level.WARNING: 0, Level.INFO: 0}


class Notifier(Protocol):
    @property
    def enabled(self) -> bool: ...

    def describe(self) -> str: ...

    def send(self, notice: Notify) -> None:
        """Queue a notice; never blocks, never raises."""

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (waiting up to `timeout` seconds), then stop."""


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def format_notice(notice: Notify) -> dict[str, str]:
    """The Pushover form fields for a notice, except `token` and `user`.

    Pushover rejects a blank message, so a notice without one carries its title as the message.
    """
    message = notice.message if notice.message.strip() else (notice.title or "(no message)")
    return {
        "title": _truncate(notice.title, MAX_TITLE_CHARS),
        "message": _truncate(message, MAX_MESSAGE_CHARS),
        "priority": str(PRIORITY.get(notice.level, 0)),
        "timestamp": str(int(notice.time.timestamp())),
    }


class DisabledNotifier:
    """What runs without Pushover credentials: every notice is ignored."""

    enabled: bool = False

    def describe(self) -> str:
        return "notifications disabled (set PUSHOVER_TOKEN and PUSHOVER_USER to enable)"

    def send(self, notice: Notify) -> None:
        pass

    def close(self, timeout: float = 5.0) -> None:
        pass

    def __enter__(self) -> DisabledNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STOP: Final = object()  # tells the worker to exit


class PushoverNotifier:
    """Delivers notices to Pushover from a daemon thread; see the module docstring."""

    enabled: bool = True

    def __init__(
        self,
        token: str,
        user: str,
        base_url: str = PUSHOVER_URL,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        queue_size: int = 1000,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._token = token
        self._user = user
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + MESSAGES_PATH
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._sleep = sleep
        self._random = random.Random()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()  # set by close(): abandon retries, exit
        self._closed = False
        self._lock = threading.Lock()  # guards the counters and _closed
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.remaining: int | None = None  # X-Limit-App-Remaining from the last answer
        self.suspended_until: float | None = None  # unix time; set by a 429
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="pushover-notifier", daemon=True)
        self._thread.start()

    def describe(self) -> str:
        return f"Pushover notifications via {self.base_url}"

    def __repr__(self) -> str:  # never show the credentials
        return f"PushoverNotifier({self.base_url!r})"

    def __enter__(self) -> PushoverNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ caller side

    def send(self, notice: Notify) -> None:
        try:
            with self._lock:
                if self._closed:
                    self.dropped += 1
                    log.warning("notifier closed; dropped notice %r", notice.title)
                    return
                self._queue.put_nowait(notice)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            log.warning("notification queue full; dropped notice %r", notice.title)
        except Exception:  # never let a notification break the caller
            log.exception("could not queue notice %r", getattr(notice, "title", "?"))

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True  # send() drops from now on, so the queue only shrinks
        deadline = time.monotonic() + timeout
        # Flush: wait for the worker to finish what is queued.
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._queue.all_tasks_done.wait(remaining)
        # Stop: abandon backoff waits, drop whatever is still queued, wake the worker.
        self._stop.set()
        abandoned = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            abandoned += 1
        if abandoned:
            with self._lock:
                self.dropped += abandoned
            log.warning("notifier closing; dropped %d queued notice(s)", abandoned)
        self._queue.put_nowait(_STOP)  # the queue is empty and nothing else is added
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            log.warning("notifier thread still busy after %.1f s; leaving it to finish", timeout)

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                try:
                    if item is _STOP:
                        return
                    assert isinstance(item, Notify)
                    self._handle(item)
                except Exception:  # the worker must survive anything
                    self._count("failed")
                    log.exception("notifier failed on a notice")
                finally:
                    self._queue.task_done()
        finally:
            self._session.close()

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _handle(self, notice: Notify) -> None:
        if self._stop.is_set():
            self._count("dropped")
            return
        if self.suspended_until is not None:
            if time.time() < self.suspended_until:
                self._count("dropped")
                log.debug("over the Pushover quota; dropped notice %r", notice.title)
                return
            self.suspended_until = None
            log.info("Pushover quota reset time reached; sending again")
        fields = {"token": self._token, "user": self._user, **format_notice(notice)}
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._session.post(self.url, data=fields, timeout=self.timeout_seconds)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {self._scrub(str(exc))}"
            else:
                self._record_limits(response)
                status = response.status_code
                if status == 429:
                    self._suspend(response, notice)
                    return
                if status < 500:
                    self._settle(response, notice)
                    return
                problem = f"HTTP {status}: {self._errors(response)}"
            if attempt == self.max_attempts:
                self._count("failed")
                log.error(
                    "could not deliver notice %r after %d attempts (%s); dropped",
                    notice.title,
                    attempt,
                    problem,
                )
                return
            delay = self._backoff(attempt)
            log.warning(
                "notice %r attempt %d failed (%s); retrying in %.2f s",
                notice.title,
                attempt,
                problem,
                delay,
            )
            if not self._wait(delay):
                self._count("failed")
                log.warning("notifier closing; gave up on notice %r", notice.title)
                return

    def _settle(self, response: requests.Response, notice: Notify) -> None:
        """A final answer below 500 (429 aside): delivered or rejected for good."""
        body = _json(response)
        if response.status_code == 200 and body.get("status") == 1:
            self._count("sent")
            return
        self._count("failed")
        log.error(
            "Pushover rejected notice %r (HTTP %d): %s; not retrying",
            notice.title,
            response.status_code,
            self._errors(response),
        )

    def _suspend(self, response: requests.Response, notice: Notify) -> None:
        self._count("failed")
        reset = _int_header(response, "X-Limit-App-Reset")
        now = time.time()
        self.suspended_until = (
            float(reset) if reset is not None and reset > now else (now + QUOTA_PAUSE_SECONDS)
        )
        log.error(
            "Pushover says the application is over its monthly message limit (%s); "
            "dropped notice %r and pausing notifications for %.0f s",
            self._errors(response),
            notice.title,
            self.suspended_until - now,
        )

    def _record_limits(self, response: requests.Response) -> None:
        remaining = _int_header(response, "X-Limit-App-Remaining")
        if remaining is not None:
            self.remaining = remaining

    def _errors(self, response: requests.Response) -> str:
        errors = _json(response).get("errors")
        text = "; ".join(str(e) for e in errors) if isinstance(errors, list) else response.text
        return self._scrub(text[:300])

    def _scrub(self, text: str) -> str:
        """Remove the credentials from text headed for the log, should an answer echo them."""
        for secret in (self._token, self._user):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2^(attempt - 1)."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    def _wait(self, seconds: float) -> bool:
        """Sleep before a retry; False when close() asked to stop meanwhile."""
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)
        return not self._stop.is_set()


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def notifier_from_env(environ: Mapping[str, str], base_url: str | None = None) -> Notifier:
    """Pushover when PUSHOVER_TOKEN and PUSHOVER_USER are both set, else a disabled notifier.

    The API address comes from `base_url`, else ICT_TRADER_PUSHOVER_URL, else Pushover's own.
    """
    token = environ.get("PUSHOVER_TOKEN", "").strip()
    user = environ.get("PUSHOVER_USER", "").strip()
    if not token or not user:
        return DisabledNotifier()
    register_secret(token)
    register_secret(user)
    url = base_url or environ.get("ICT_TRADER_PUSHOVER_URL", "").strip() or PUSHOVER_URL
    return PushoverNotifier(token, user, url)
