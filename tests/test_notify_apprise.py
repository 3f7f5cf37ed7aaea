"""Other channels through apprise: its real `json://` webhook plugin, to a loopback server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ict_trader.core.events import Level, Notify
from ict_trader.errors import ConfigError
from ict_trader.logs import close_logging, setup_logging
from ict_trader.notify.apprise import AppriseNotifier
from ict_trader.notify.notifier import (
    DisabledNotifier,
    FanOutNotifier,
    PushoverNotifier,
    notifier_from_env,
)
from tests.pushover_emulator import running_pushover

NOTICE = Notify(
    Level.CRITICAL,
    "Kill switch engaged",
    "Kill switch engaged by dashboard: test · closing 2 trade(s), no new entries",
    datetime(2024, 7, 30, 15, 10, tzinfo=UTC),
)


class Webhook(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, object]] = []
        self.fail_next: list[int] = []
        self.got = threading.Condition()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server_address[1]}/hooks/SECRETHOOKTOKEN123"


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.fail_next.pop(0) if self.server.fail_next else 200
        if status == 200:
            with self.server.got:
                self.server.received.append(json.loads(body))
                self.server.got.notify_all()
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@contextmanager
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_notice_reaches_an_apprise_channel(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    log_file = tmp_path / "run.log"
    setup_logging(log_file, level=logging.DEBUG)
    try:
        with webhook() as hook:
            notifier = AppriseNotifier(hook.url)
            notifier.send(NOTICE)
            notifier.close(timeout=10)
            hook.fail_next = [500]  # a failure makes apprise log the (masked) URL
            failing = AppriseNotifier(hook.url, max_attempts=1)
            failing.send(NOTICE)
            failing.close(timeout=10)
    finally:
        close_logging()
    assert failing.failed == 1
    assert "SECRETHOOKTOKEN123" not in log_file.read_text(encoding="utf-8")
    assert notifier.sent == 1
    assert len(hook.received) == 1
    got = hook.received[0]
    assert (got["title"], got["message"], got["type"]) == (
        NOTICE.title,
        NOTICE.message,
        "failure",  # critical notices as apprise's failure type (red in most channels)
    )
    assert "SECRETHOOKTOKEN123" not in repr(notifier)
    assert "SECRETHOOKTOKEN123" not in caplog.text


def test_a_failed_delivery_is_retried() -> None:
    with webhook() as hook:
        hook.fail_next = [500, 503]
        notifier = AppriseNotifier(hook.url, backoff_seconds=0.01)
        notifier.send(NOTICE)
        notifier.close(timeout=10)
    assert (notifier.sent, notifier.failed) == (1, 0)
    assert len(hook.received) == 1


def test_a_url_apprise_cannot_use_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="ICT_TRADER_APPRISE_URLS: a nosuch:// URL"):
        AppriseNotifier("nosuch://whatever")


def test_pushover_and_apprise_together_from_the_environment() -> None:
    with webhook() as hook, running_pushover("a" * 30, "u" * 30) as pushover:
        notifier = notifier_from_env(
            {
                "PUSHOVER_TOKEN": "a" * 30,
                "PUSHOVER_USER": "u" * 30,
                "ICT_TRADER_APPRISE_URLS": hook.url,
            },
            base_url=pushover.base_url,
        )
        assert isinstance(notifier, FanOutNotifier)
        assert [type(c) for c in notifier.channels] == [PushoverNotifier, AppriseNotifier]
        assert "json://" in notifier.describe()
        notifier.send(NOTICE)
        notifier.close(timeout=10)
        assert [m["title"] for m in pushover.messages] == [NOTICE.title]
    assert [m["title"] for m in hook.received] == [NOTICE.title]


def test_only_apprise_and_nothing_at_all() -> None:
    with webhook() as hook:
        only = notifier_from_env({"ICT_TRADER_APPRISE_URLS": hook.url})
        assert isinstance(only, AppriseNotifier)
        only.close(0)
    nothing = notifier_from_env({})
    assert isinstance(nothing, DisabledNotifier)
    assert "ICT_TRADER_APPRISE_URLS" in nothing.describe()
