"""Everything a user sees of an option trade names the contract, counts contracts, gives the
premiums in dollars (x 100) and the greeks at entry, and says "model-priced" when the premium
came from the model — and a share trade beside it reads exactly as before (issue #12).

The stores are made by the engine from the scripted short signal (tests/option_trades.py): a
share trade and 10 puts QQQ240729P00097000 bought at 0.52 (0.50 bid / 0.54 ask, delta -0.42,
IV 20 %), closed at 0.78 (+260.00) or still held at a mark of 0.61 (+90.00).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.core.bars import Bar
from ict_trader.core.contracts import OptionDetails, PremiumSource
from ict_trader.core.events import (
    EntryFilled,
    ExitReason,
    TradeClosed,
    TradeReleased,
    TradeView,
)
from ict_trader.dashboard.auth import DashboardToken
from ict_trader.dashboard.server import Dashboard
from ict_trader.dashboard.views import bars_view, positions_view, status_view, trades_view
from ict_trader.notify.option_words import contract_label, contract_name
from ict_trader.notify.texts import render
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book
from ict_trader.reporting.daily_summary import daily_summary
from ict_trader.reporting.status import collect_status, open_trade_line
from tests.engine_script import FILL_TIME, minutes
from tests.option_trades import PUT, PUT_MARK, PUT_NAME, SHARE_MARK, option_run

WHEN = datetime(2024, 7, 29, 14, 0, tzinfo=UTC)
PUT_TEXT = f"{PUT_NAME} ({PUT})"


def put_view(source: PremiumSource, *, closed: bool = True) -> TradeView:
    return TradeView(
        trade_id="ict-QQQ-202407291335s-puts",
        signal_id="s1",
        profile="puts",
        symbol=PUT,
        direction="short",  # the signal's; the position is 10 long puts
        status="closed" if closed else "open",
        planned_qty=10,
        qty=10,
        entry_order_id="ict-QQQ-202407291335s-puts-entry",
        entry_price=Decimal("0.52"),
        entry_time=WHEN,
        target_price=None,
        stop_price=None,
        exit_price=Decimal("0.78") if closed else None,
        exit_time=WHEN if closed else None,
        exit_reason=ExitReason.TARGET if closed else None,
        pnl=Decimal("260.00") if closed else None,
        commission=Decimal(0),
        option=OptionDetails(
            source, Decimal("0.50"), Decimal("0.54"), -0.42, 0.2, Decimal("97.5"), Decimal("83.5")
        ),
    )


def share_view() -> TradeView:
    return TradeView(
        "ict-QQQ-202407291335s-shares",
        "s1",
        "shares",
        "QQQ",
        "short",
        "closed",
        30,
        30,
        "e",
        Decimal("97.60"),
        WHEN,
        Decimal("83.60"),
        None,
        Decimal("96.10"),
        WHEN,
        ExitReason.TIME,
        Decimal("45.00"),
        Decimal(0),
    )


# ---------------------------------------------------------------- words


def test_a_contract_is_named_by_underlying_expiry_strike_and_right() -> None:
    assert contract_name(PUT) == "QQQ 2024-07-29 97 put"
    assert contract_name("QQQ241115C00500500") == "QQQ 2024-11-15 500.5 call"
    assert contract_name("QQQ241115C00100000") == "QQQ 2024-11-15 100 call"  # not 1E+2
    assert contract_label(PUT) == PUT_TEXT
    assert contract_name("QQQ") == contract_label("QQQ") == "QQQ"


@pytest.mark.parametrize("source", [PremiumSource.MODEL, PremiumSource.FILE])
def test_an_option_entry_notification_names_contract_premiums_greeks_and_order(
    source: PremiumSource,
) -> None:
    trade = put_view(source, closed=False)
    text = render(EntryFilled(WHEN, trade, "alpaca-9f1c", Decimal("0.52"))).message
    assert text.startswith(f"PUTS entry — BUY 10 contracts {PUT_TEXT} @ 0.52")
    assert "paid $52.00 a contract, $520.00 for 10" in text
    assert "delta -0.42, IV 20.0%" in text
    assert "target QQQ 83.50" in text  # judged on the underlying
    assert "order alpaca-9f1c" in text
    assert ("(model-priced)" in text) is (source is PremiumSource.MODEL)
    assert "share" not in text


@pytest.mark.parametrize("source", [PremiumSource.MODEL, PremiumSource.FILE])
def test_an_option_exit_notification_gives_premiums_both_ways_and_the_pnl(
    source: PremiumSource,
) -> None:
    trade = put_view(source)
    note = render(TradeClosed(WHEN, trade, ("alpaca-exit-1",), "alpaca-9f1c"))
    assert note.title == "PUTS target exit"
    text = note.message
    assert f"SELL 10 contracts {PUT_TEXT} 0.52 → 0.78" in text
    assert "paid $52.00 a contract, $520.00 for 10" in text
    assert "received $78.00 a contract, $780.00 for 10" in text
    assert "P&L +260.00" in text
    assert "delta -0.42, IV 20.0% at entry" in text
    assert "order alpaca-exit-1 (entry alpaca-9f1c)" in text
    assert text.count("(model-priced)") == (2 if source is PremiumSource.MODEL else 0)


def test_share_notifications_keep_their_words() -> None:
    trade = share_view()
    entry = render(EntryFilled(WHEN, trade, "b-1", Decimal("97.60"))).message
    closed = render(TradeClosed(WHEN, trade, ("b-2",), "b-1")).message
    assert entry == "SHARES entry — SHORT 30 QQQ @ 97.60 · order b-1 · target 83.60"
    assert closed == (
        "SHARES time exit — SHORT 30 QQQ 97.60 → 96.10 · P&L +45.00 · order b-2 (entry b-1)"
    )
    for text in (entry, closed):
        assert "contract" not in text and "model" not in text and "delta" not in text


def test_a_released_option_trade_counts_contracts() -> None:
    released = render(TradeReleased(WHEN, put_view(PremiumSource.MODEL), 10, "ops", "by hand"))
    assert f"10 contracts {PUT_TEXT} no longer managed" in released.message
    shares = render(TradeReleased(WHEN, share_view(), 30, "ops", "by hand"))
    assert "30 share(s) no longer managed" in shares.message


# ---------------------------------------------------------------- stores, status, dashboard


@pytest.fixture
def held_model(tmp_path: Path) -> Iterator[Path]:
    run = option_run(tmp_path / "held.db", PremiumSource.MODEL, close_the_put=False)
    run.store.close()
    yield tmp_path / "held.db"


@pytest.fixture
def closed_file(tmp_path: Path) -> Iterator[Path]:
    run = option_run(tmp_path / "closed.db", PremiumSource.FILE, close_the_put=True)
    run.store.close()
    yield tmp_path / "closed.db"


@pytest.fixture
def closed_model(tmp_path: Path) -> Iterator[Path]:
    run = option_run(tmp_path / "closed-model.db", PremiumSource.MODEL, close_the_put=True)
    run.store.close()
    yield tmp_path / "closed-model.db"


def test_the_engine_notices_of_a_run_name_the_contract(tmp_path: Path) -> None:
    run = option_run(tmp_path / "run.db", PremiumSource.MODEL, close_the_put=True)
    texts = [render(n).message for n in run.notices()]  # type: ignore[arg-type]
    run.store.close()
    assert texts[0] == "SHARES entry — SHORT 30 QQQ @ 97.60 · order alpaca-entry-1 · target 83.60"
    assert f"BUY 10 contracts {PUT_TEXT} @ 0.52 (model-priced)" in texts[1]
    assert "order alpaca-entry-2" in texts[1] and "target premium 0.78" in texts[1]
    assert f"SELL 10 contracts {PUT_TEXT}" in texts[2] and "P&L +260.00 (model-priced)" in texts[2]
    assert "order alpaca-target-3 (entry alpaca-entry-2)" in texts[2]


def test_a_bought_put_is_a_long_position_in_the_book(held_model: Path) -> None:
    store = Store(held_model, reader=True)
    try:
        book = Book.of(store)
        marks = store.last_closes()
    finally:
        store.close()
    put = next(f for f in book.trades if f.trade.symbol == PUT)
    assert put.trade.direction == "short" and put.sign == 1
    assert book.position(PUT) == 10
    assert book.position("QQQ") == -30  # the share trade beside it is short
    assert book.contracts_on("QQQ") == 10
    # (0.61 - 0.52) x 10 x 100: up when the put's premium rises
    assert book.unrealized(marks, profile="puts") == Decimal("90.00")
    assert book.unrealized(marks, underlying="QQQ") == Decimal("90.00") + 30 * (
        Decimal("97.60") - SHARE_MARK
    )
    assert book.modelled("puts") and not book.modelled("shares")


def test_status_shows_the_held_contract_with_premium_greeks_and_label(held_model: Path) -> None:
    store = Store(held_model, reader=True)
    try:
        status = collect_status(store)
    finally:
        store.close()
    trades = {t["profile"]: t for t in status["open_trades"]}
    put, shares = trades["puts"], trades["shares"]
    assert (put["symbol"], put["contracts"], put["shares"]) == (PUT, 10, None)
    assert put["mark"] == str(PUT_MARK) and put["unrealized"] == "90.00"
    option = put["option"]
    assert option["contract"] == PUT_NAME
    assert (option["right"], option["strike"], option["expiry"]) == ("put", "97", "2024-07-29")
    assert (option["premium_paid_per_contract"], option["premium_paid"]) == ("52.00", "520.00")
    assert (option["delta"], option["iv"], option["source"]) == (-0.42, 0.2, "model")
    assert option["modelled"] is True and option["label"] == "model-priced"
    assert (shares["shares"], shares["contracts"], shares["option"]) == (30, None, None)
    # contracts are counted under the symbol they are on, not as a symbol of their own
    assert list(status["symbols"]) == ["QQQ"]
    assert status["symbols"]["QQQ"]["contracts"] == 10
    assert status["symbols"]["QQQ"]["position"] == -30
    per_profile = status["pnl_today"]["per_profile"]
    assert per_profile["puts"]["instrument"] == "options"
    assert per_profile["puts"]["model_priced"] is True
    assert per_profile["shares"] == {
        "realized": "0",
        "unrealized": "48.00",
        "instrument": "shares",
        "model_priced": False,
    }
    assert status["model_priced"] is True

    line = open_trade_line(put)
    assert line.startswith(f"open: {put['trade_id']} 10 contracts {PUT_TEXT} @ 0.5200")
    assert "paid $520.00" in line and "delta -0.42, IV 20.0%" in line
    assert "mark 0.61" in line and line.endswith("90.00 (model-priced)")
    assert open_trade_line(shares) == (
        f"open: {shares['trade_id']} short 30 @ 97.6000 target 83.60 · 48.00"
    )


def test_status_json_of_the_cli_carries_the_option(held_model: Path) -> None:
    shown = CliRunner().invoke(app, ["status", "--db", str(held_model), "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    put = next(t for t in report["open_trades"] if t["symbol"] == PUT)
    assert put["option"]["contract"] == PUT_NAME and put["contracts"] == 10
    assert report["model_priced"] is True


def test_file_priced_option_trades_carry_no_model_label(closed_file: Path) -> None:
    store = Store(closed_file, reader=True)
    try:
        status = collect_status(store)
        page = status_view(store)
        rows = trades_view(store)
        summary = daily_summary(Book.of(store), FILL_TIME.date(), FILL_TIME + minutes(390))
    finally:
        store.close()
    assert status["model_priced"] is False and page["model_priced"] is False
    assert page["profiles"]["puts"]["model_priced"] is False
    put = next(r for r in rows if r["symbol"] == PUT)
    assert put["option"]["source"] == "file" and put["option"]["label"] is None
    assert "model-priced" not in summary.message
    assert "puts options 1 trade +260.00 (target)" in summary.message


def test_the_daily_summary_labels_modelled_option_pnl(closed_model: Path) -> None:
    store = Store(closed_model, reader=True)
    try:
        summary = daily_summary(Book.of(store), FILL_TIME.date(), FILL_TIME + minutes(390))
    finally:
        store.close()
    assert "1 trade, 1 win, P&L +260.00 model-priced" in summary.message
    assert "puts options 1 trade +260.00 model-priced (target)" in summary.message


TOKEN = DashboardToken("option-views-token-0123456789", "environment")


def api(dashboard: Dashboard, path: str) -> object:
    response = requests.get(dashboard.url + path.lstrip("/"), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_dashboard_api_carries_the_contract_premiums_and_label(closed_model: Path) -> None:
    dashboard = Dashboard(closed_model, TOKEN, port=0)
    dashboard.start()
    try:
        trades = api(dashboard, "/api/trades")
        status = api(dashboard, "/api/status")
        bars = api(dashboard, "/api/bars?day=2024-07-29")
    finally:
        dashboard.stop()
    assert isinstance(trades, list) and isinstance(status, dict) and isinstance(bars, dict)
    put = next(t for t in trades if t["symbol"] == PUT)
    assert (put["contracts"], put["shares"], put["pnl"]) == (10, None, "260.00")
    assert put["entry_order"] == "alpaca-entry-2" and put["exit_orders"] == ["alpaca-target-3"]
    option = put["option"]
    assert option["contract"] == PUT_NAME and option["occ_symbol"] == PUT
    assert (option["premium_paid"], option["premium_received"]) == ("520.00", "780.00")
    assert option["premium_received_per_contract"] == "78.00"
    assert (option["bid"], option["ask"], option["delta"], option["iv"]) == (
        "0.50",
        "0.54",
        -0.42,
        0.2,
    )
    assert option["modelled"] is True
    shares = next(t for t in trades if t["symbol"] == "QQQ")
    assert (shares["shares"], shares["contracts"], shares["option"]) == (30, None, None)
    assert status["model_priced"] is True
    assert status["profiles"]["puts"]["instrument"] == "options"
    assert status["profiles"]["puts"]["model_priced"] is True
    assert status["profiles"]["shares"]["model_priced"] is False
    # No bars stored in this scripted run: the chart has nothing to place marks on.
    assert bars["bars"] == []


def test_positions_show_the_held_contract(held_model: Path) -> None:
    store = Store(held_model, reader=True)
    try:
        positions = {p["profile"]: p for p in positions_view(store)}
    finally:
        store.close()
    put = positions["puts"]
    assert put["contracts"] == 10 and put["option"]["contract"] == PUT_NAME
    assert put["option"]["premium_paid"] == "520.00" and put["mark"] == "0.6100"
    assert put["unrealized"] == "90.00"
    assert positions["shares"]["option"] is None and positions["shares"]["shares"] == 30


def test_option_marks_sit_on_the_underlyings_candles(closed_model: Path) -> None:
    """With the underlying's bars stored, an option trade's entry and exit are drawn at the
    underlying's price (not at the premium) and name the contract and premium."""
    store = Store(closed_model)
    try:
        for minute in range(0, 10):
            moment = FILL_TIME + minutes(minute - 5)
            store.record_bar(Bar(moment, 97.0, 97.5, 96.5, 97.0 - minute / 10, 1000, "QQQ"))
        store.commit()
        chart = bars_view(store, FILL_TIME.date(), "QQQ")
    finally:
        store.close()
    entry = next(e for e in chart["entries"] if e["profile"] == "puts")
    exit_mark = next(e for e in chart["exits"] if e["profile"] == "puts")
    assert entry["price"] == "97.5"  # the signal's close, not the premium 0.52
    assert entry["contract"] == PUT and entry["premium"] == "0.5200" and entry["modelled"]
    # exit filled 13:39 UTC: the last bar done by then opened 13:38 (minute 7 -> 96.3)
    assert exit_mark["price"] == "96.3" and exit_mark["premium"] == "0.7800"
    share = next(e for e in chart["entries"] if e["profile"] == "shares")
    assert share["price"] == "97.6000" and "contract" not in share


def test_status_text_of_the_cli_names_the_held_contract(held_model: Path) -> None:
    shown = CliRunner().invoke(app, ["status", "--db", str(held_model)])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())  # the console may wrap a long line
    assert f"10 contracts {PUT_NAME}" in text and "None @" not in text
