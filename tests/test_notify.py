"""The Pushover notifier, over real HTTP against the loopback Pushover emulator."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import requests

from ict_trader.core.events import Level, Notify
from ict_trader.notify.notifier import (
    PUSHOVER_URL,
    DisabledNotifier,
    PushoverNotifier,
    format_notice,
    notifier_from_env,
)
from tests.pushover_emulator import PushoverEmulator, running_pushover

TOKEN = "azGDORePK8gMaC0QOYAMyEEuzJnyUi"
USER = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
WHEN = datetime(2024, 7, 29, 15, 10, tzinfo=UTC)
WHEN_TS = "1722265800"


def notice(
    title: str = "Entry filled", message: str = "long 10 QQQ @ 460.12", level: Level = Level.WARNING
) -> Notify:
    return Notify(level=level, title=title, message=message, time=WHEN)


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def notifier(
    emulator: PushoverEmulator,
    token: str = TOKEN,
    *,
    max_attempts: int = 5,
    backoff_seconds: float = 0.001,  # retry fast unless a test says otherwise
    max_backoff_seconds: float = 60.0,
    timeout_seconds: float = 5.0,
    queue_size: int = 1000,
    sleep: Callable[[float], None] | None = None,
) -> PushoverNotifier:
    return PushoverNotifier(
        token,
        USER,
        emulator.base_url,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
        max_backoff_seconds=max_backoff_seconds,
        timeout_seconds=timeout_seconds,
        queue_size=queue_size,
        sleep=sleep,
    )


@pytest.fixture
def emulator() -> Iterator[PushoverEmulator]:
    with running_pushover(TOKEN, USER) as server:
        yield server


# ---------------------------------------------------------------- formatting


def test_format_notice_fields() -> None:
    assert format_notice(notice()) == {
        "title": "Entry filled",
        "message": "long 10 QQQ @ 460.12",
        "priority": "0",
        "timestamp": WHEN_TS,
    }
    assert format_notice(notice(level=Level.CRITICAL))["priority"] == "1"
    assert format_notice(notice(level=Level.INFO))["priority"] == "0"


def test_format_notice_truncates_title_and_message_and_fills_blank_message() -> None:
    fields = format_notice(notice(title="T" * 300, message="m" * 5000))
    assert len(fields["title"]) == 250
    assert fields["title"] == "T" * 249 + "…"
    assert len(fields["message"]) == 1024
    assert fields["message"] == "m" * 1023 + "…"
    exact = format_notice(notice(message="m" * 1024))
    assert exact["message"] == "m" * 1024  # at the limit: untouched
    assert format_notice(notice(title="Kill switch", message="  "))["message"] == "Kill switch"


# ---------------------------------------------------------------- delivery


def test_delivers_exactly_the_expected_form_fields(emulator: PushoverEmulator) -> None:
    with notifier(emulator) as n:
        n.send(notice())
        assert eventually(lambda: n.sent == 1)
    assert emulator.messages == [
        {
            "token": TOKEN,
            "user": USER,
            "title": "Entry filled",
            "message": "long 10 QQQ @ 460.12",
            "priority": "0",
            "timestamp": WHEN_TS,
        }
    ]
    assert (n.sent, n.failed, n.dropped) == (1, 0, 0)
    assert n.remaining == 9_999  # from X-Limit-App-Remaining


def test_critical_notice_has_priority_1(emulator: PushoverEmulator) -> None:
    with notifier(emulator) as n:
        n.send(notice("Kill switch", "flattening", level=Level.CRITICAL))
        n.send(notice("Started", "paper", level=Level.INFO))
    assert [m["priority"] for m in emulator.messages] == ["1", "0"]
    assert n.sent == 2


def test_long_message_is_truncated_to_1024_and_accepted(emulator: PushoverEmulator) -> None:
    with notifier(emulator) as n:
        n.send(notice(message="x" * 5000))
    [message] = emulator.messages
    assert len(message["message"]) == 1024
    assert message["message"].endswith("…")
    assert emulator.statuses == [200]
    assert n.sent == 1


def test_emulator_rejects_what_pushover_rejects(emulator: PushoverEmulator) -> None:
    """The emulator validates like the real API, so the truncation test above means something."""
    url = emulator.base_url + "/1/messages.json"
    base = {"token": TOKEN, "user": USER, "message": "hi"}
    cases = [
        ({**base, "token": "nope"}, "application token is invalid"),
        ({**base, "user": "nope"}, "user identifier is not a valid user, group, or subscribed"),
        ({**base, "message": ""}, "message cannot be blank"),
        ({**base, "message": "x" * 1025}, "message is too long"),
        ({**base, "priority": "2"}, "retry is required"),
    ]
    with requests.Session() as session:
        for form, error in cases:
            response = session.post(url, data=form, timeout=5)
            body = response.json()
            assert response.status_code == 400, form
            assert body["status"] == 0
            assert body["errors"][0].startswith(error)
            assert body["request"]
        ok = session.post(url, data={**base, "priority": "2", "retry": "60", "expire": "600"})
        assert ok.status_code == 200
        assert ok.json()["status"] == 1
        assert ok.headers["X-Limit-App-Limit"] == "10000"
    assert len(emulator.messages) == 1


def test_order_is_preserved(emulator: PushoverEmulator) -> None:
    with notifier(emulator) as n:
        for i in range(5):
            n.send(notice(f"notice {i}"))
    assert [m["title"] for m in emulator.messages] == [f"notice {i}" for i in range(5)]
    assert n.sent == 5


# ---------------------------------------------------------------- failures


def test_server_errors_are_retried_with_backoff(emulator: PushoverEmulator) -> None:
    emulator.fail_next = [500, 500]
    sleeps: list[float] = []
    with notifier(emulator, backoff_seconds=0.5, sleep=sleeps.append) as n:
        n.send(notice())
        assert eventually(lambda: n.sent == 1)
    assert emulator.statuses == [500, 500, 200]
    assert len(emulator.messages) == 1
    assert (n.sent, n.failed, n.dropped) == (1, 0, 0)
    # exponential with jitter: attempt k waits between half and all of 0.5 * 2^(k-1)
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0


def test_backoff_is_capped(emulator: PushoverEmulator) -> None:
    emulator.fail_next = [503] * 4
    sleeps: list[float] = []
    with notifier(emulator, backoff_seconds=1.0, max_backoff_seconds=2.0, sleep=sleeps.append) as n:
        n.send(notice())
        assert eventually(lambda: n.sent == 1)
    assert len(sleeps) == 4
    assert all(s <= 2.0 for s in sleeps)
    assert sleeps[3] >= 1.0


def test_gives_up_after_max_attempts(
    emulator: PushoverEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.fail_next = [500] * 10
    with notifier(emulator, max_attempts=3) as n:
        n.send(notice("Stop hit"))
        assert eventually(lambda: n.failed == 1)
    assert len(emulator.requests_seen) == 3
    assert emulator.messages == []
    assert (n.sent, n.failed) == (0, 1)
    assert "after 3 attempts" in caplog.text
    assert "Stop hit" in caplog.text


def test_invalid_request_is_not_retried(
    emulator: PushoverEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrongTokenwrongTokenwrongToken"
    with notifier(emulator, token=wrong) as n:
        n.send(notice())
        assert eventually(lambda: n.failed == 1)
        time.sleep(0.05)  # a retry would show up here
    assert emulator.statuses == [400]
    assert len(emulator.requests_seen) == 1
    assert (n.sent, n.failed, n.dropped) == (0, 1, 0)
    assert "application token is invalid" in caplog.text
    assert wrong not in caplog.text


def test_quota_exceeded_pauses_until_the_reset_time(
    emulator: PushoverEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.remaining = 0  # the app has used its month: every send is a 429
    with notifier(emulator) as n:
        n.send(notice("first"))
        assert eventually(lambda: n.failed == 1)
        for i in range(5):
            n.send(notice(f"more {i}"))
        assert eventually(lambda: n.dropped == 5)
    assert emulator.statuses == [429]  # one request, no hammering
    assert (n.sent, n.failed, n.dropped) == (0, 1, 5)
    assert n.remaining == 0
    assert n.suspended_until == emulator.reset_at
    quota_logs = [r for r in caplog.records if "monthly message limit" in r.getMessage()]
    assert len(quota_logs) == 1


def test_quota_pause_ends_at_the_reset_time(emulator: PushoverEmulator) -> None:
    emulator.reset_at = int(time.time()) + 2
    emulator.fail_next = [429]
    with notifier(emulator) as n:
        n.send(notice("over quota"))
        assert eventually(lambda: n.failed == 1)
        n.send(notice("still over"))
        assert eventually(lambda: n.dropped == 1)
        assert eventually(lambda: time.time() >= emulator.reset_at, timeout=3.0)
        n.send(notice("after reset"))
        assert eventually(lambda: n.sent == 1)
    assert emulator.statuses == [429, 200]
    assert [m["title"] for m in emulator.messages] == ["after reset"]
    assert n.suspended_until is None


def test_connection_refused_is_retried_then_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    sleeps: list[float] = []
    n = PushoverNotifier(
        TOKEN, USER, f"http://127.0.0.1:{port}", max_attempts=3, sleep=sleeps.append
    )
    with n:
        n.send(notice())
        assert eventually(lambda: n.failed == 1)
    assert len(sleeps) == 2
    assert "ConnectionError" in caplog.text


# ---------------------------------------------------------------- never blocking


def test_hanging_server_never_delays_the_caller(emulator: PushoverEmulator) -> None:
    emulator.hang()
    with notifier(emulator) as n:
        start = time.monotonic()
        for i in range(50):
            n.send(notice(f"n{i}"))
        elapsed = time.monotonic() - start
        assert elapsed < 0.5
        assert eventually(lambda: len(emulator.requests_seen) == 1)  # stuck on the first
        emulator.release()
        assert eventually(lambda: n.sent == 50)
    assert [m["title"] for m in emulator.messages] == [f"n{i}" for i in range(50)]


def test_slow_server_never_delays_the_caller(emulator: PushoverEmulator) -> None:
    emulator.delay_seconds = 5.0
    n = notifier(emulator, timeout_seconds=0.2, max_attempts=1)
    start = time.monotonic()
    for i in range(50):
        n.send(notice(f"n{i}"))
    assert time.monotonic() - start < 0.5
    assert eventually(lambda: len(emulator.requests_seen) >= 1)
    emulator.delay_seconds = 0.0
    n.close(timeout=10)
    assert not n._thread.is_alive()
    assert n.failed >= 1  # the first timed out (max_attempts=1)
    assert n.sent + n.failed == 50


def test_full_queue_drops_and_counts(
    emulator: PushoverEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.hang()
    with notifier(emulator, queue_size=2) as n:
        n.send(notice("in flight"))
        assert eventually(lambda: len(emulator.requests_seen) == 1)
        start = time.monotonic()
        for i in range(2):
            n.send(notice(f"queued {i}"))
        for i in range(5):
            n.send(notice(f"overflow {i}"))
        assert time.monotonic() - start < 0.5
        assert n.dropped == 5
        emulator.release()
        assert eventually(lambda: n.sent == 3)
    assert [m["title"] for m in emulator.messages] == ["in flight", "queued 0", "queued 1"]
    assert (n.sent, n.failed, n.dropped) == (3, 0, 5)
    assert "queue full" in caplog.text
    assert "overflow 4" in caplog.text


def test_close_respects_its_timeout_with_a_hanging_server(emulator: PushoverEmulator) -> None:
    emulator.hang()
    n = notifier(emulator)
    n.send(notice("stuck"))
    n.send(notice("behind it"))
    assert eventually(lambda: len(emulator.requests_seen) == 1)
    start = time.monotonic()
    n.close(timeout=0.3)
    assert time.monotonic() - start < 1.0
    assert n.dropped == 1  # "behind it" was abandoned; "stuck" is still in flight
    n.send(notice("after close"))
    assert n.dropped == 2
    emulator.release()
    n._thread.join(5)
    assert not n._thread.is_alive()
    assert [m["title"] for m in emulator.messages] == ["stuck"]


def test_close_interrupts_a_backoff_wait(emulator: PushoverEmulator) -> None:
    emulator.fail_next = [500] * 10
    n = notifier(emulator, backoff_seconds=30.0, max_backoff_seconds=30.0)
    n.send(notice())
    assert eventually(lambda: len(emulator.statuses) == 1)
    start = time.monotonic()
    n.close(timeout=0.2)
    n._thread.join(5)
    assert time.monotonic() - start < 2.0
    assert not n._thread.is_alive()
    assert n.failed == 1
    assert len(emulator.requests_seen) == 1


# ---------------------------------------------------------------- configuration


def test_from_env_disabled_without_both_credentials() -> None:
    for environ in ({}, {"PUSHOVER_TOKEN": TOKEN}, {"PUSHOVER_USER": USER}):
        n = notifier_from_env(environ)
        assert isinstance(n, DisabledNotifier)
        assert not n.enabled
        assert "disabled" in n.describe()
        n.send(notice())  # a no-op
        n.close()


def test_from_env_enabled_uses_the_base_url(emulator: PushoverEmulator) -> None:
    environ = {"PUSHOVER_TOKEN": TOKEN, "PUSHOVER_USER": USER}
    default = notifier_from_env(environ)
    try:
        assert isinstance(default, PushoverNotifier)
        assert default.enabled
        assert default.base_url == PUSHOVER_URL
    finally:
        default.close()  # nothing was sent: no request to the real Pushover

    from_env = notifier_from_env({**environ, "ICT_TRADER_PUSHOVER_URL": emulator.base_url})
    from_env.send(notice("via env"))
    from_env.close()
    from_argument = notifier_from_env(
        {**environ, "ICT_TRADER_PUSHOVER_URL": "http://127.0.0.1:9"}, base_url=emulator.base_url
    )
    assert from_argument.enabled
    assert emulator.base_url in from_argument.describe()
    from_argument.send(notice("via argument"))
    from_argument.close()
    assert [m["title"] for m in emulator.messages] == ["via env", "via argument"]


# ---------------------------------------------------------------- secrets


def test_credentials_never_reach_the_log(
    emulator: PushoverEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.fail_next = [500, 500, 429]
    with notifier(emulator, max_attempts=2) as n:
        n.send(notice("server errors"))  # two 500s: retried then dropped
        n.send(notice("over quota"))  # 429: paused
        n.send(notice("paused"))  # dropped while paused
        assert eventually(lambda: n.dropped == 1)
    assert (n.failed, n.dropped) == (2, 1)
    bad_user = PushoverNotifier(TOKEN, "wrongUserwrongUserwrongUser123", emulator.base_url)
    with bad_user:
        bad_user.send(notice("bad user"))
    assert bad_user.failed == 1
    assert "not a valid user" in caplog.text
    assert repr(bad_user) == f"PushoverNotifier({emulator.base_url!r})"
    text = caplog.text
    assert "server errors" in text  # the log does talk about the notices...
    for secret in (TOKEN, USER, "wrongUserwrongUserwrongUser123"):
        assert secret not in text  # ...never about the credentials
