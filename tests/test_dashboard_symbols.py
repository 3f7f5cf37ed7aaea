"""The dashboard and `status` show each symbol (issue #11): a replay of real IWM and DIA bars.

Replayed (as `ict-trader run` replays, every bar kept) from 2025-10-15 to 12:10 New York on
2025-10-17: that day DIA signalled at 11:39 and both its trades hit their target by 12:03, IWM
signalled at 11:40 and its two trades are still open at the replay's end. So DIA is flat with
P&L realized today, IWM long with unrealized P&L and none realized: every per-symbol figure is
tested apart from a zero.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from rich.console import Console
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.core.calendar import NEW_YORK
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book
from ict_trader.runtime.replay import run_replay
from tests.test_replay import replay_all
from tests.test_several_symbols import SYMBOLS, market, settings

TOKEN = DashboardToken("symbols-test-token-0123456789", "environment")
DAY = date(2025, 10, 17)
FROM = datetime(2025, 10, 15, 4, 0, tzinfo=NEW_YORK)
UNTIL = datetime(2025, 10, 17, 12, 10, tzinfo=NEW_YORK)


def replay_two_symbols(db: Path) -> None:
    """IWM and DIA from FROM to UNTIL replayed into `db` as fast as possible."""
    calendar, merged, _ = market()
    store = Store(db)
    try:
        run_replay(
            [bar for bar in merged if FROM <= bar.time < UNTIL],
            calendar,
            settings(SYMBOLS),
            store,
            "iwm+dia 2025-10-15..17",
            speed=0,
            console=Console(file=io.StringIO()),
        )
    finally:
        store.close()


@pytest.fixture(scope="module")
def two_symbols(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("symbols") / "two.db"
    replay_two_symbols(db)
    return db


@pytest.fixture(scope="module")
def served(two_symbols: Path) -> Iterator[Dashboard]:
    dashboard = Dashboard(two_symbols, TOKEN, port=0)
    dashboard.start()
    try:
        yield dashboard
    finally:
        dashboard.stop()


def api(dashboard: Dashboard, path: str) -> Any:
    response = requests.get(dashboard.url + path.lstrip("/"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def book_figures(db: Path) -> dict[str, dict[str, object]]:
    """Each symbol's figures as the Book computes them, independently of status and the page."""
    store = Store(db, reader=True)
    try:
        book = Book.of(store)
        marks = store.last_closes()
    finally:
        store.close()
    return {
        symbol: {
            "position": book.position(symbol),
            "last_close": marks[symbol],
            "realized": book.realized(DAY, symbol=symbol),
            "unrealized": book.unrealized(marks, symbol=symbol),
        }
        for symbol in SYMBOLS
    }


def test_the_store_holds_what_the_tests_rely_on(two_symbols: Path) -> None:
    store = Store(two_symbols, reader=True)
    try:
        trades = store.trades()
        assert store.bar_symbols() == ["DIA", "IWM"]
        assert store.bar_days() == ["2025-10-15", "2025-10-16", "2025-10-17"]
    finally:
        store.close()
    assert sorted((t.symbol, t.profile, t.status) for t in trades) == [
        ("DIA", "aggressive", "closed"),
        ("DIA", "conservative", "closed"),
        ("IWM", "aggressive", "open"),
        ("IWM", "conservative", "open"),
    ]
    figures = book_figures(two_symbols)
    assert figures["DIA"]["position"] == 0 and figures["DIA"]["realized"] == Decimal("24.08")
    assert figures["IWM"]["position"] == 28 and figures["IWM"]["realized"] == 0
    assert figures["IWM"]["unrealized"] != 0


def test_status_shows_each_symbol_as_the_book_computes_it(
    served: Dashboard, two_symbols: Path
) -> None:
    status = api(served, "/api/status")
    assert status["symbol"] == "IWM, DIA"  # the header: the settings' symbols, in their order
    assert list(status["symbols"]) == ["IWM", "DIA"]
    for symbol, expected in book_figures(two_symbols).items():
        shown = status["symbols"][symbol]
        assert shown["position"] == expected["position"]
        assert Decimal(shown["last_close"]) == expected["last_close"]
        assert Decimal(shown["realized"]) == expected["realized"]
        assert Decimal(shown["unrealized"]) == Decimal(str(expected["unrealized"])).quantize(
            Decimal("0.01")
        )
    # The symbols add up to the account's figures.
    assert sum(Decimal(f["realized"]) for f in status["symbols"].values()) == Decimal(
        status["pnl"]["today_realized"]
    )
    assert sum(Decimal(f["unrealized"]) for f in status["symbols"].values()) == Decimal(
        status["pnl"]["today_unrealized"]
    )


def test_positions_and_trades_name_their_symbol(served: Dashboard) -> None:
    positions = api(served, "/api/positions")
    assert sorted((p["symbol"], p["profile"]) for p in positions) == [
        ("IWM", "aggressive"),
        ("IWM", "conservative"),
    ]
    trades = api(served, "/api/trades")
    assert sorted((t["symbol"], t["status"]) for t in trades) == [
        ("DIA", "closed"),
        ("DIA", "closed"),
        ("IWM", "open"),
        ("IWM", "open"),
    ]
    assert all(t["trade_id"].startswith(f"ict-{t['symbol']}-") for t in trades)


def test_bars_of_one_symbol_with_its_signals_and_trades(
    served: Dashboard, two_symbols: Path
) -> None:
    store = Store(two_symbols, reader=True)
    try:
        start, end = datetime(2025, 10, 17, 4, tzinfo=NEW_YORK), UNTIL
        closes = {s: [b.close for b in store.bars_between(start, end, s)] for s in SYMBOLS}
    finally:
        store.close()
    assert len(closes["DIA"]) == len(closes["IWM"]) == 160  # 09:30 to 12:10
    dia = api(served, "/api/bars?symbol=DIA&day=2025-10-17")
    assert (dia["symbol"], dia["symbols"], dia["day"]) == ("DIA", ["IWM", "DIA"], "2025-10-17")
    assert [b["c"] for b in dia["bars"]] == closes["DIA"]
    assert [(s["t"], s["direction"]) for s in dia["signals"]] == [("2025-10-17T15:39:00Z", "long")]
    assert {e["t"] for e in dia["entries"]} == {"2025-10-17T15:40:00Z"}
    assert {e["reason"] for e in dia["exits"]} == {"target"}
    assert len(dia["entries"]) == len(dia["exits"]) == 2
    # The chart's default: the settings' first symbol, on the last session.
    iwm = api(served, "/api/bars")
    assert (iwm["symbol"], iwm["day"]) == ("IWM", "2025-10-17")
    assert [b["c"] for b in iwm["bars"]] == closes["IWM"]
    assert [s["t"] for s in iwm["signals"]] == ["2025-10-17T15:40:00Z"]
    assert {e["t"] for e in iwm["entries"]} == {"2025-10-17T15:41:00Z"}
    assert iwm["exits"] == []  # still open
    assert api(served, "/api/bars?symbol=IWM") == iwm
    quiet = api(served, "/api/bars?symbol=DIA&day=2025-10-15")
    assert len(quiet["bars"]) == 390 and quiet["signals"] == [] and quiet["entries"] == []


@pytest.mark.parametrize(
    "symbol", ["QQQ", "dia", "DIA,IWM", " DIA", "\x00", "X" * 5000, "'; DROP TABLE bars; --"]
)
def test_a_symbol_without_bars_is_a_400(served: Dashboard, symbol: str) -> None:
    response = requests.get(served.url + "api/bars", params={"symbol": symbol}, timeout=10)
    assert response.status_code == 400
    assert response.json() == {"error": "symbol must be one with bars in the store: IWM, DIA"}


def test_status_prints_a_line_per_symbol(two_symbols: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["status", "--db", str(two_symbols)]).stdout
    figures = book_figures(two_symbols)
    iwm_unrealized = Decimal(str(figures["IWM"]["unrealized"])).quantize(Decimal("0.01"))
    assert (
        f"symbol DIA: flat · last close {figures['DIA']['last_close']} · "
        "realized 24.08, unrealized 0.00"
    ) in text
    assert (
        f"symbol IWM: 28 long · last close {figures['IWM']['last_close']} · "
        f"realized 0.00, unrealized {iwm_unrealized}"
    ) in text
    report = json.loads(runner.invoke(app, ["status", "--db", str(two_symbols), "--json"]).stdout)
    assert set(report["symbols"]) == {"IWM", "DIA"}
    assert report["symbols"]["IWM"]["position"] == 28
    assert report["symbols"]["DIA"]["realized"] == "24.08"


def test_status_of_one_symbol_prints_as_before(sample_csv: Path, tmp_path: Path) -> None:
    db = tmp_path / "qqq.db"
    replay_all(load_bars(sample_csv), db)
    runner = CliRunner()
    text = runner.invoke(app, ["status", "--db", str(db)]).stdout
    assert "P&L 2024-08-09: realized 0, unrealized 0.00" in text
    assert not [line for line in text.splitlines() if line.startswith("symbol")]
    report = json.loads(runner.invoke(app, ["status", "--db", str(db), "--json"]).stdout)
    assert list(report["symbols"]) == ["QQQ"]
