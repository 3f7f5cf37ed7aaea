"""Hostile and unlucky requests against the dashboard: never a 5xx for input, never stuck.

Issue #10: one "database is locked" used to break the dashboard's kill switch until a restart;
deep or huge bodies, odd dates and limits answered 500 with Python's own messages; the Server
header named aiohttp and its version. Issue #9: /api/health for supervisors.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.dashboard import views
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.persistence import store as store_module
from ict_trader.persistence.store import Store
from ict_trader.runtime import control

TOKEN = DashboardToken("misuse-token-0123456789", "environment")
AUTH = {"Authorization": f"Bearer {TOKEN.value}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Dashboard, Path]]:
    db = tmp_path / "bot.db"
    Store(db).close()
    dashboard = Dashboard(db, TOKEN, port=0, poll_seconds=0.05, max_heartbeat_age=30)
    dashboard.start()
    try:
        yield dashboard, db
    finally:
        dashboard.stop()


def raw(dashboard: Dashboard, payload: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (requests would fix them up); the status code and the headers."""
    with socket.create_connection(("127.0.0.1", dashboard.port), timeout=10) as connection:
        connection.sendall(payload)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, headers = answer.partition(b"\r\n")
    return int(status_line.split()[1]), headers.split(b"\r\n\r\n", 1)[0]


def test_hostile_requests_never_get_a_5xx_nor_a_version(served: tuple[Dashboard, Path]) -> None:
    dashboard, db = served
    url = dashboard.url.rstrip("/")
    deep = b"[" * 100_000
    probes: list[tuple[str, str, dict[str, object]]] = [
        ("GET", "/api/bars?day=9999-12-31", {}),
        ("GET", "/api/bars?day=0001-01-01", {}),
        ("GET", "/api/bars?day=2024-13-45", {}),
        ("GET", "/api/bars?day=20240730", {}),
        ("GET", "/api/bars?day=%00", {}),
        ("GET", "/api/bars?day=" + "9" * 5000, {}),
        ("GET", "/api/events?limit=²", {}),
        ("GET", "/api/events?limit=-1", {}),
        ("GET", "/api/events?limit=0", {}),
        ("GET", "/api/events?limit=1e3", {}),
        ("GET", "/api/events?limit=99999999999999999999", {}),
        ("GET", "/api/events?limit=%F0%9F%98%80", {}),
        ("GET", "/api/nope", {}),
        ("GET", "/static/../../etc/passwd", {}),
        ("GET", "/static/%2e%2e%2fstore.py", {}),
        ("DELETE", "/api/status", {}),
        ("PUT", "/api/kill", {}),
        ("GET", "/api/kill", {}),
        ("POST", "/api/kill", {"data": deep, "headers": AUTH}),
        ("POST", "/api/kill", {"data": b"[" * 4000, "headers": AUTH}),
        ("POST", "/api/kill", {"data": b'{"reason": ' * 700, "headers": AUTH}),
        ("POST", "/api/kill", {"data": b"x" * 2_000_000, "headers": AUTH}),
        ("POST", "/api/kill", {"data": b"\xff\xfe\x00", "headers": AUTH}),
        ("POST", "/api/kill", {"data": b'{"reason": {"a": 1}}', "headers": AUTH}),
        ("POST", "/api/kill", {"data": b'{"reason": 12}', "headers": AUTH}),
        ("POST", "/api/kill", {"data": b'["reason"]', "headers": AUTH}),
        ("POST", "/api/kill", {"data": b"NaN", "headers": AUTH}),
        ("POST", "/api/resume", {"data": b"", "headers": AUTH}),
        ("POST", "/api/kill", {"json": {"reason": "x"}, "headers": {"Authorization": "Bearer"}}),
        ("POST", "/api/kill", {"json": {"reason": "x"}, "headers": {"Authorization": "Basic a"}}),
        ("POST", "/api/kill", {"json": {"reason": "x"}, "headers": {"Authorization": "B" * 9000}}),
        ("POST", "/api/kill", {"json": {"reason": "x"}, "headers": {"Host": "evil.example"}}),
        ("GET", "/api/status", {"headers": {"Host": "localhost.evil.example:80"}}),
        ("GET", "/api/status", {"headers": {"Host": "[::1"}}),
        ("GET", "/api/health", {"headers": {"Host": "127.0.0.1:1:2"}}),
    ]
    statuses: list[int] = []
    for method, path, options in probes:
        response = requests.request(method, url + path, timeout=10, **options)  # type: ignore[arg-type]
        statuses.append(response.status_code)
        assert response.status_code < 500, (method, path, response.status_code, response.text)
        assert response.headers.get("Server") == "ict-trader", (method, path)
        if response.status_code == 400:
            assert "Traceback" not in response.text and "invalid literal" not in response.text
    # Malformed HTTP itself, below aiohttp's router.
    raw_probes = [
        b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
        b"POST /api/kill HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\r\n"
        b'Content-Length: 18\r\n\r\n{"reason": "raw"}',
        b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"BREW /api/status HTCPCP/1.0\r\n\r\n",
    ]
    for payload in raw_probes:
        status, headers = raw(dashboard, payload)
        statuses.append(status)
        assert status < 500, payload
        assert b"aiohttp" not in headers.lower() and b"python" not in headers.lower(), payload
    specific = {path: code for (_, path, _), code in zip(probes, statuses, strict=False)}
    assert specific["/api/bars?day=9999-12-31"] == 400
    assert specific["/api/events?limit=²"] == 400
    print(f"dashboard probes: {len(statuses)} hostile requests, 0 answered 5xx")
    assert len(statuses) >= 30
    store = Store(db, reader=True)
    assert store.control_requests() == []  # none of them recorded a request
    store.close()


def test_a_transient_store_error_costs_one_answer_not_the_dashboard(
    served: tuple[Dashboard, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard, _ = served
    real = views.status_view
    calls: list[int] = []

    def flaky(store: Store) -> dict[str, object]:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(store)

    monkeypatch.setattr(views, "status_view", flaky)
    first = requests.get(dashboard.url + "api/status", timeout=10)
    second = requests.get(dashboard.url + "api/status", timeout=10)
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.json()["state"] == "active"


def test_a_kill_during_a_long_lock_is_refused_then_the_next_one_lands(
    served: tuple[Dashboard, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's 500-for-ever: a kill that could not be written must say so, and must not
    leave the dashboard holding a stale transaction (status frozen, every later kill failing)."""
    dashboard, db = served
    monkeypatch.setattr(store_module, "pause", lambda _: None)
    dashboard.busy_timeout = 0.05
    blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("INSERT OR REPLACE INTO state VALUES ('last_bar_time', '2024-08-01T15:00:00Z')")
    refused = requests.post(
        dashboard.url + "api/kill", json={"reason": "x"}, headers=AUTH, timeout=30
    )
    assert refused.status_code == 503 and "NOT recorded" in refused.json()["error"]
    blocker.execute("COMMIT")
    blocker.close()
    status = requests.get(dashboard.url + "api/status", timeout=10).json()
    assert status["last_bar"] == "2024-08-01T15:00:00Z"  # not frozen at an old snapshot
    landed = requests.post(
        dashboard.url + "api/kill", json={"reason": "y"}, headers=AUTH, timeout=30
    )
    assert landed.status_code == 200 and landed.json()["request"] == 1
    after = requests.get(dashboard.url + "api/status", timeout=10).json()
    assert (after["state"], after["pending_requests"][0]["reason"]) == ("halted", "y")


def test_kill_and_resume_back_to_back_against_a_busy_bot(served: tuple[Dashboard, Path]) -> None:
    """A replay at full speed commits continuously; 200 authorised requests all land, in order,
    and /api/status follows the bot's bars throughout."""
    dashboard, db = served
    stop = threading.Event()
    written: list[str] = []

    def bot() -> None:
        store = Store(db)
        start = datetime(2024, 8, 1, 13, 30, tzinfo=UTC)
        minute = 0
        while not stop.is_set():
            stamp = (start + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
            store.set_state("last_bar_time", stamp)
            control.apply_requests(store, lambda _: None)
            store.commit()
            written.append(stamp)
            minute += 1
        store.close()

    writer = threading.Thread(target=bot)
    writer.start()
    numbers: list[int] = []
    failures = 0
    try:
        with requests.Session() as session:
            for index in range(200):
                kind = "kill" if index % 2 == 0 else "resume"
                response = session.post(
                    f"{dashboard.url}api/{kind}",
                    json={"reason": f"r{index}"},
                    headers=AUTH,
                    timeout=30,
                )
                if response.status_code != 200:
                    failures += 1
                else:
                    numbers.append(response.json()["request"])
    finally:
        stop.set()
        writer.join()
    last = requests.get(dashboard.url + "api/status", timeout=10).json()["last_bar"]
    store = Store(db, reader=True)
    recorded = [row["reason"] for row in store.control_requests()]
    store.close()
    print(f"dashboard under load: 200 requests, {failures} failed, {200 - len(recorded)} lost")
    assert failures == 0
    assert numbers == list(range(1, 201))
    assert recorded == [f"r{i}" for i in range(200)]
    assert last == written[-1]  # the status follows the bot's last commit


def test_health_needs_no_token_and_says_503_when_the_bot_is_stuck(
    served: tuple[Dashboard, Path],
) -> None:
    dashboard, db = served
    url = dashboard.url + "api/health"
    empty = requests.get(url, timeout=10)
    assert empty.status_code == 503  # no heartbeat yet: nothing is trading this store
    assert "no heartbeat recorded" in " ".join(empty.json()["problems"])
    now = datetime.now(UTC)
    store = Store(db)
    store.set_state("heartbeat", now.isoformat())
    store.set_state("last_bar_time", (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    store.set_state("broker_ok", "1")
    store.set_state("broker_checked_at", now.isoformat())
    store.commit()
    healthy = requests.get(url, timeout=10)
    body = healthy.json()
    assert healthy.status_code == 200, body
    assert body["healthy"] is True and body["state"] == "active"
    assert 0 <= body["heartbeat_age_seconds"] < 30
    assert body["last_bar_age_seconds"] >= 60
    assert body["broker"] == {"ok": True, "checked_at": now.isoformat(), "last_error": None}
    store.set_state("broker_ok", "0")
    store.set_state("broker_last_error", "GET /v2/account: 401 unauthorized (key ***)")
    store.commit()
    broken = requests.get(url, timeout=10)
    assert broken.status_code == 503
    assert broken.json()["broker"]["last_error"].startswith("GET /v2/account: 401")
    store.set_state("broker_ok", "1")
    store.set_state("heartbeat", (now - timedelta(seconds=300)).isoformat())
    store.commit()
    stale = requests.get(url, timeout=10)
    assert stale.status_code == 503
    assert any("no heartbeat for" in p for p in stale.json()["problems"])
    store.close()


def test_health_command_exit_codes(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    runner = CliRunner()
    missing = runner.invoke(app, ["health", "--db", str(db)])
    assert missing.exit_code == 2 and "no such store" in missing.output
    store = Store(db)
    store.set_state("heartbeat", datetime.now(UTC).isoformat())
    store.set_state("broker_ok", "1")
    store.commit()
    ok = runner.invoke(app, ["health", "--db", str(db)])
    assert ok.exit_code == 0 and ok.stdout.startswith("healthy")
    store.set_state("heartbeat", (datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    store.commit()
    store.close()
    stuck = runner.invoke(app, ["health", "--db", str(db), "--json", "--max-heartbeat-age", "60"])
    assert stuck.exit_code == 1 and '"healthy": false' in stuck.stdout
