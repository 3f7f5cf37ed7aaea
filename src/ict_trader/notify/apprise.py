"""Any other channel (Telegram, Discord, Slack, e-mail, ntfy, a webhook…) through apprise URLs.

One notifier per URL, so a retry after a failure re-sends only to the channel that failed. The
same queue and worker as Pushover (`QueuedNotifier`): the trading loop never waits on a channel.
URLs carry credentials (bot tokens, passwords), so each URL and its secret-looking parts are
masked in the logs, and only the channel's scheme is ever shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import apprise

from ict_trader.core.events import Level, Notify
from ict_trader.errors import ConfigError
from ict_trader.logs import register_secret
from ict_trader.notify.outbox import QueuedNotifier

log = logging.getLogger("ict_trader.notify.notifier")

_TYPES = {
    Level.INFO: apprise.NotifyType.INFO,
    Level.WARNING: apprise.NotifyType.WARNING,
    Level.CRITICAL: apprise.NotifyType.FAILURE,
}
# apprise logs each delivery attempt at INFO with parts of the URL; warnings are enough.
logging.getLogger("apprise").setLevel(logging.WARNING)


def _register_url_secrets(url: str) -> None:
    register_secret(url)
    parts = urlsplit(url)
    for piece in (parts.username, parts.password, *parts.path.split("/")):
        if piece and len(piece) >= 8:  # tokens and keys, not short words like "hook"
            register_secret(piece)
    for _, value in parse_qsl(parts.query):
        if len(value) >= 8:
            register_secret(value)


class AppriseNotifier(QueuedNotifier):
    """Delivers notices to one apprise URL, retrying a failed delivery with backoff."""

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        queue_size: int = 1000,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        _register_url_secrets(url)
        self.scheme = url.split("://", 1)[0] if "://" in url else "?"
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ConfigError(
                f"ICT_TRADER_APPRISE_URLS: a {self.scheme}:// URL that apprise cannot use "
                "(see https://github.com/caronc/apprise/wiki for the URL formats)"
            )
        super().__init__(
            name=f"apprise-{self.scheme}",
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
            queue_size=queue_size,
            sleep=sleep,
        )

    def describe(self) -> str:
        return f"apprise {self.scheme}:// notifications"

    def __repr__(self) -> str:  # the URL holds credentials
        return f"AppriseNotifier({self.scheme}://…)"

    def _handle(self, notice: Notify) -> None:
        for attempt in range(1, self.max_attempts + 1):
            delivered = self._apprise.notify(
                body=notice.message or notice.title,
                title=notice.title,
                notify_type=_TYPES.get(notice.level, apprise.NotifyType.INFO),
            )
            if delivered:
                self._count("sent")
                return
            if not self._may_retry(notice, attempt, f"{self.scheme}:// refused or unreachable"):
                return
