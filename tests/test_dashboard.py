"""The dashboard's HTTP API and token, against a real server over loopback on a replayed store."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.dashboard.auth import TOKEN_ENV, DashboardToken, load_token
from ict_trader.dashboard.launch import open_dashboard
from ict_trader.dashboard.server import Dashboard
from ict_trader.errors import ConfigError
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from tests.test_replay import replay_all

CENT = Decimal("0.01")
TOKEN = DashboardToken("test-token-0123456789", "environment")


@pytest.fixture(scope="module")
def replayed(sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a finished replay of the bundled sample (6 trades)."""
    db = tmp_path_factory.mktemp("dash") / "replay.db"
    replay_all(load_bars(sample_csv), db)
    return db


@pytest.fixture
def served(replayed: Path, tmp_path: Path) -> Iterator[tuple[Dashboard, Path]]:
    db = tmp_path / "copy.db"
    db.write_bytes(replayed.read_bytes())  # WAL checkpointed at close: the file is complete
    dashboard = Dashboard(db, TOKEN, port=0, poll_seconds=0.05)
    dashboard.start()
    try:
        yield dashboard, db
    finally:
        dashboard.stop()


def api(dashboard: Dashboard, path: str) -> object:
    response = requests.get(dashboard.url + path.lstrip("/"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_status_figures_are_the_stores(served: tuple[Dashboard, Path]) -> None:
    dashboard, db = served
    status = api(dashboard, "/api/status")
    assert isinstance(status, dict)
    store = Store(db)
    try:
        trades = store.trades()
        account = store.latest_account()
    finally:
        store.close()
    assert account is not None
    closed = [t for t in trades if t.status == "closed"]
    assert len(closed) == 6
    assert status["account"]["equity"] == str(account[1].quantize(Decimal("0.01")))
    assert status["account"]["cash"] == str(account[2].quantize(Decimal("0.01")))
    total = sum((t.pnl for t in closed if t.pnl is not None), Decimal(0))
    assert total != total.quantize(CENT)  # sub-penny fills: the page shows cents
    assert Decimal(status["pnl"]["total"]) == total.quantize(CENT)
    # A flat account's equity is the start plus every realized P&L, to the cent.
    assert Decimal(status["account"]["equity"]) == (Decimal(100_000) + total).quantize(CENT)
    wins = sum(1 for t in closed if t.pnl is not None and t.pnl > 0)
    assert status["trades"] == {"closed": 6, "wins": wins, "win_rate": round(wins / 6, 4)}
    for name, figures in status["profiles"].items():
        mine = [t for t in closed if t.profile == name]
        assert figures["closed"] == len(mine)
        mine_total = sum((t.pnl or Decimal(0) for t in mine), Decimal(0))
        assert Decimal(figures["pnl_total"]) == mine_total.quantize(CENT)
    assert status["state"] == "active"
    assert set(status["breakers"]) == {
        "daily_loss",
        "rapid_loss",
        "error_rate",
        "drawdown",
        "stale_data",
    }
    assert status["breakers"]["stale_data"]["threshold"] == "5"


def test_trades_carry_the_brokers_order_ids(served: tuple[Dashboard, Path]) -> None:
    dashboard, db = served
    rows = api(dashboard, "/api/trades")
    assert isinstance(rows, list)
    store = Store(db)
    try:
        orders = store.orders()
    finally:
        store.close()
    broker_ids = {(o["trade_id"], o["leg"]): o["broker_order_id"] for o in orders}
    assert len(rows) == 6
    assert [r["entry_time"] for r in rows] == sorted((r["entry_time"] for r in rows), reverse=True)
    for row in rows:
        assert row["symbol"] == "QQQ"
        assert row["entry_order"] == broker_ids[(row["trade_id"], "entry")]
        assert row["entry_order"].startswith("sim-")
        assert len(row["exit_orders"]) == 1
        assert row["exit_reason"] in {"target", "time", "session_end"}


def test_bars_of_a_trading_day_with_its_marks(served: tuple[Dashboard, Path]) -> None:
    dashboard, _ = served
    day = api(dashboard, "/api/bars?day=2024-07-30")
    assert isinstance(day, dict)
    assert len(day["bars"]) == 390
    assert day["bars"][0]["t"] == "2024-07-30T13:30:00Z"
    assert [s["t"] for s in day["signals"]] == ["2024-07-30T15:01:00Z"]
    assert {e["profile"] for e in day["entries"]} == {"conservative", "aggressive"}
    assert all(e["t"] == "2024-07-30T15:02:00Z" for e in day["entries"])
    assert len(day["exits"]) == 2
    latest = api(dashboard, "/api/bars")
    assert isinstance(latest, dict)
    assert latest["day"] == "2024-08-09"  # the last session replayed
    assert (latest["symbol"], latest["symbols"]) == ("QQQ", ["QQQ"])  # the one symbol traded
    assert api(dashboard, "/api/bars?day=2024-07-30&symbol=QQQ") == day
    days = api(dashboard, "/api/days")
    assert isinstance(days, list)
    assert len(days) == 10
    assert (days[0], days[-1]) == ("2024-07-29", "2024-08-09")


def test_bad_queries_get_a_clear_400(served: tuple[Dashboard, Path]) -> None:
    dashboard, _ = served
    for path in (
        "api/bars?day=30/07/2024",
        "api/bars?symbol=SPY",
        "api/events?limit=0",
        "api/events?limit=x",
    ):
        response = requests.get(dashboard.url + path, timeout=10)
        assert response.status_code == 400
        assert response.json()["error"]


def test_mutations_need_the_token_and_change_nothing_without_it(
    served: tuple[Dashboard, Path],
) -> None:
    dashboard, db = served
    url = dashboard.url + "api/kill"
    refused = [
        requests.post(url, json={"reason": "no token"}, timeout=10),
        requests.post(
            url, json={"reason": "bad"}, headers={"Authorization": "Bearer nope"}, timeout=10
        ),
        requests.post(
            url, json={"reason": "scheme"}, headers={"Authorization": TOKEN.value}, timeout=10
        ),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401]
    store = Store(db)
    try:
        assert store.control_requests() == []  # none of the refused requests was recorded
        assert json.loads(store.state("trading_state") or "")["state"] == "active"
    finally:
        store.close()
    auth = {"Authorization": f"Bearer {TOKEN.value}"}
    no_reason = requests.post(url, json={"reason": "  "}, headers=auth, timeout=10)
    assert no_reason.status_code == 400
    accepted = requests.post(url, json={"reason": "test kill"}, headers=auth, timeout=10)
    assert accepted.status_code == 200
    assert accepted.json() == {"request": 1, "kind": "kill", "reason": "test kill"}
    status = api(dashboard, "/api/status")
    assert isinstance(status, dict)
    assert (status["state"], status["state_reason"], status["state_actor"]) == (
        "halted",
        "test kill",
        "dashboard",
    )
    events = api(dashboard, "/api/events?limit=1")
    assert isinstance(events, list)
    assert events[0]["kind"] == "request.kill"
    assert events[0]["actor"] == "dashboard"
    resumed = requests.post(
        dashboard.url + "api/resume", json={"reason": "checked"}, headers=auth, timeout=10
    )
    assert resumed.json()["request"] == 2


def test_the_token_never_appears_in_a_page_or_response(served: tuple[Dashboard, Path]) -> None:
    dashboard, _ = served
    paths = ["", "static/app.js", "api/status", "api/trades", "api/positions", "api/events"]
    for path in paths:
        body = requests.get(dashboard.url + path, timeout=10).text
        assert TOKEN.value not in body


def test_a_foreign_host_name_is_refused(served: tuple[Dashboard, Path]) -> None:
    """DNS rebinding: a page from evil.example resolving to 127.0.0.1 cannot read the API."""
    dashboard, _ = served
    response = requests.get(
        dashboard.url + "api/status", headers={"Host": "evil.example"}, timeout=10
    )
    assert response.status_code == 421
    assert "equity" not in response.text


def test_security_headers_and_local_assets(served: tuple[Dashboard, Path]) -> None:
    dashboard, _ = served
    page = requests.get(dashboard.url, timeout=10)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    plotly = requests.get(dashboard.url + "static/plotly.min.js", timeout=30)
    assert plotly.status_code == 200
    assert len(plotly.content) > 1_000_000
    assert requests.get(dashboard.url + "static/..%2Fserver.py", timeout=10).status_code == 404


def test_the_stream_announces_each_commit(served: tuple[Dashboard, Path]) -> None:
    dashboard, db = served
    updates: list[dict[str, object]] = []
    got_two = threading.Event()

    def listen() -> None:
        with requests.get(dashboard.url + "api/stream", stream=True, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    updates.append(json.loads(line.removeprefix(b"data: ")))
                    if len(updates) == 2:
                        got_two.set()
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    writer = Store(db)
    try:
        for _ in range(100):  # until the stream has sent its first update
            if updates:
                break
            got_two.wait(0.05)
        writer.set_state("last_bar_time", "2024-08-12T13:30:00Z")
        writer.commit()
    finally:
        writer.close()
    assert got_two.wait(10)
    listener.join(10)
    assert updates[0]["last_bar"] == "2024-08-09T19:59:00Z"
    assert updates[1]["last_bar"] == "2024-08-12T13:30:00Z"


def test_token_generated_once_with_user_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "ict-trader" / "dashboard-token"
    first = load_token({}, path)
    assert first.created
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_token({}, path)
    assert not again.created
    assert again.value == first.value
    assert first.value not in repr(first)
    from_env = load_token({TOKEN_ENV: "from-env"}, path)
    assert (from_env.value, from_env.source) == ("from-env", "environment")


def test_a_network_address_needs_an_explicit_flag(replayed: Path, tmp_path: Path) -> None:
    said: list[str] = []
    with pytest.raises(ConfigError, match="--allow-remote"):
        open_dashboard(
            replayed,
            "0.0.0.0",
            0,
            allow_remote=False,
            environ={TOKEN_ENV: "x"},
            say=said.append,
        )
    dashboard = open_dashboard(
        replayed,
        "0.0.0.0",
        0,
        allow_remote=True,
        environ={TOKEN_ENV: "x"},
        say=said.append,
    )
    dashboard.stop()
    assert any(line.startswith("WARNING") for line in said)


def test_first_start_prints_the_token_once(replayed: Path, tmp_path: Path) -> None:
    said: list[str] = []
    path = tmp_path / "token"
    for _ in range(2):
        dashboard = open_dashboard(
            replayed,
            "127.0.0.1",
            0,
            allow_remote=False,
            environ={},
            say=said.append,
            token_path=path,
        )
        dashboard.stop()
    token = path.read_text().strip()
    assert sum(token in line for line in said) == 1


def test_an_empty_store_is_served_without_errors(tmp_path: Path) -> None:
    """A bot started for the first time: nothing traded yet, every view answers."""
    db = tmp_path / "empty.db"
    Store(db).close()
    dashboard = Dashboard(db, TOKEN, port=0)
    dashboard.start()
    try:
        status = api(dashboard, "/api/status")
        assert isinstance(status, dict)
        assert (status["mode"], status["account"], status["last_bar"]) == (None, None, None)
        assert status["trades"] == {"closed": 0, "wins": 0, "win_rate": None}
        assert api(dashboard, "/api/trades") == []
        assert api(dashboard, "/api/positions") == []
        assert api(dashboard, "/api/equity") == []
        assert api(dashboard, "/api/events") == []
        bars = api(dashboard, "/api/bars")
        assert isinstance(bars, dict) and bars["bars"] == []
        assert (bars["symbol"], bars["symbols"]) == (None, [])
        refused = requests.get(dashboard.url + "api/bars?symbol=QQQ", timeout=10)
        assert refused.status_code == 400
        assert refused.json() == {"error": "symbol: the store keeps no bars yet"}
    finally:
        dashboard.stop()


def test_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 2
    assert "no such store" in result.output
