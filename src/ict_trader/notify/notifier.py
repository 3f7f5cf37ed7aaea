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
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import requests

from ict_trader.core.events import Level, Notify
from ict_trader.logs import register_secret
from ict_trader.notify.apprise import AppriseNotifier
from ict_trader.notify.outbox import QueuedNotifier

log = logging.getLogger(__name__)

PUSHOVER_URL: Final = "https://api.pushover.net"
MESSAGES_PATH: Final = "/1/messages.json"
MAX_MESSAGE_CHARS: Final = 1024
MAX_TITLE_CHARS: Final = 250
ELLIPSIS: Final = "…"
APPRISE_ENV: Final = "ICT_TRADER_APPRISE_URLS"
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
        return (
            "notifications disabled (set PUSHOVER_TOKEN and PUSHOVER_USER, or "
            f"{APPRISE_ENV}, to enable)"
        )

    def send(self, notice: Notify) -> None:
        pass

    def close(self, timeout: float = 5.0) -> None:
        pass

    def __enter__(self) -> DisabledNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PushoverNotifier(QueuedNotifier):
    """Delivers notices to Pushover from a daemon thread; see the module docstring."""

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
        self._token = token
        self._user = user
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + MESSAGES_PATH
        self.timeout_seconds = timeout_seconds
        self.remaining: int | None = None  # X-Limit-App-Remaining from the last answer
        self.suspended_until: float | None = None  # unix time; set by a 429
        self._session = requests.Session()
        super().__init__(
            name="pushover-notifier",
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
            queue_size=queue_size,
            sleep=sleep,
        )

    def describe(self) -> str:
        return f"Pushover notifications via {self.base_url}"

    def __repr__(self) -> str:  # never show the credentials
        return f"PushoverNotifier({self.base_url!r})"

    def _cleanup(self) -> None:
        self._session.close()

    def _handle(self, notice: Notify) -> None:
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
            if not self._may_retry(notice, attempt, problem):
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


class FanOutNotifier:
    """Several channels at once (Pushover and apprise URLs): each gets every notice."""

    enabled: bool = True

    def __init__(self, channels: Sequence[Notifier]) -> None:
        self.channels = list(channels)

    def describe(self) -> str:
        return "; ".join(channel.describe() for channel in self.channels)

    def send(self, notice: Notify) -> None:
        for channel in self.channels:
            channel.send(notice)

    def close(self, timeout: float = 5.0) -> None:
        for channel in self.channels:  # they flush one after another; each within `timeout`
            channel.close(timeout)


def notifier_from_env(environ: Mapping[str, str], base_url: str | None = None) -> Notifier:
    """Pushover when PUSHOVER_TOKEN and PUSHOVER_USER are both set, plus one channel per URL in
    ICT_TRADER_APPRISE_URLS (separated by spaces or commas); disabled when there is none.

    The Pushover address comes from `base_url`, else ICT_TRADER_PUSHOVER_URL, else Pushover's.
    """
    channels: list[Notifier] = []
    token = environ.get("PUSHOVER_TOKEN", "").strip()
    user = environ.get("PUSHOVER_USER", "").strip()
    if token and user:
        register_secret(token)
        register_secret(user)
        url = base_url or environ.get("ICT_TRADER_PUSHOVER_URL", "").strip() or PUSHOVER_URL
        channels.append(PushoverNotifier(token, user, url))
    for apprise_url in environ.get(APPRISE_ENV, "").replace(",", " ").split():
        try:
            channels.append(AppriseNotifier(apprise_url))
        except Exception:
            for channel in channels:  # no worker thread left behind
                channel.close(0)
            raise
    if not channels:
        return DisabledNotifier()
    return channels[0] if len(channels) == 1 else FanOutNotifier(channels)
