"""Several symbols at once (issue #11): IWM and DIA, real bars of the same 64 sessions (DIA with
real missing minutes), traded together by one engine — one detector per symbol, every profile
per symbol, size limits per symbol and in total."""

from __future__ import annotations

import heapq
import sqlite3
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from rich.console import Console

from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.engine import Engine
from ict_trader.core.events import AccountUpdated, SubmitOrder
from ict_trader.core.orders import MAX_CLIENT_ORDER_ID
from ict_trader.core.risk import RiskLimits
from ict_trader.core.strategy import EngineConfig
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.reporting.backtest_summary import summary_table
from ict_trader.runtime.backtest import run_backtest
from ict_trader.signals import Direction, Signal
from ict_trader.signals.detector import SignalReplay

DATA = Path(__file__).parent / "data"
SYMBOLS = ("IWM", "DIA")
NO_BREAKERS = RiskLimits(
    daily_loss_limit=Decimal(0), rapid_loss=Decimal(0), max_errors=0, max_drawdown_pct=Decimal(0)
)


@cache
def market() -> tuple[NyseCalendar, tuple[Bar, ...], dict[str, tuple[Bar, ...]]]:
    """Both symbols' bars, each stamped, merged in (time, symbol) order; and each on its own."""
    own: dict[str, tuple[Bar, ...]] = {}
    calendar = None
    for symbol in SYMBOLS:
        bar_file = load_bars(DATA / f"{symbol.lower()}_1min_2025q3.csv.gz")
        calendar = bar_file.calendar
        own[symbol] = tuple(bar._replace(symbol=symbol) for bar in bar_file.bars)
    assert calendar is not None
    merged = tuple(heapq.merge(*own.values(), key=lambda bar: (bar.time, bar.symbol)))
    return calendar, merged, own


def settings(symbols: tuple[str, ...], risk: RiskLimits = NO_BREAKERS) -> AppConfig:
    base = AppConfig()
    return replace(base, engine=replace(base.engine, symbols=symbols, risk=risk))


def backtest(symbols: tuple[str, ...], risk: RiskLimits = NO_BREAKERS) -> BacktestResult:
    calendar, merged, own = market()
    bars = merged if len(symbols) > 1 else own[symbols[0]]
    return run_backtest(bars, calendar, settings(symbols, risk))


def without_size(result: BacktestResult) -> set[tuple[object, ...]]:
    """What a trade is apart from its size: equity is shared by the symbols, so the shares (and
    the P&L) of one symbol's trade depend on the other's results; nothing else may."""
    return {
        (t.symbol, t.signal_id, t.profile, t.entry_time, t.entry_price, t.exit_time, t.exit_price)
        for t in result.closed_trades()
    }


def test_the_real_files_differ_as_documented() -> None:
    _, merged, own = market()
    assert (len(own["IWM"]), len(own["DIA"])) == (24_960, 24_954)  # DIA: 6 minutes no trade
    assert len(merged) == 24_960 + 24_954
    assert [b.time for b in merged] == sorted(b.time for b in merged)


def test_two_symbols_trade_as_each_would_alone_apart_from_size() -> None:
    together = backtest(SYMBOLS)
    alone = {symbol: backtest((symbol,)) for symbol in SYMBOLS}
    assert {t.symbol for t in together.closed_trades()} == set(SYMBOLS)
    # One detector per symbol: the signals are each symbol's own, found as if alone.
    assert sorted(s.signal_id for s in together.signals) == sorted(
        s.signal_id for result in alone.values() for s in result.signals
    )
    assert {s.signal.symbol for s in together.signals} == set(SYMBOLS)
    assert without_size(together) == without_size(alone["IWM"]) | without_size(alone["DIA"])
    # Every profile trades every symbol.
    assert {(t.symbol, t.profile) for t in together.closed_trades()} == {
        (s, p) for s in SYMBOLS for p in ("conservative", "aggressive")
    }
    by_symbol = together.metrics_by_symbol
    assert set(by_symbol) == set(SYMBOLS)
    assert sum(m.trades for m in by_symbol.values()) == together.metrics["all"].trades
    assert sum(m.total_pnl for m in by_symbol.values()) == together.metrics["all"].total_pnl


def test_orders_trade_their_trades_symbol_with_unique_short_ids(tmp_path: Path) -> None:
    calendar, merged, _ = market()
    store = Store(tmp_path / "two.db")
    run_backtest(merged, calendar, settings(SYMBOLS), store=store)
    trades = {t.trade_id: t for t in store.trades()}
    orders = store.orders()
    assert {o["symbol"] for o in orders} == set(SYMBOLS)
    assert len({o["client_order_id"] for o in orders}) == len(orders)
    for order in orders:
        assert len(str(order["client_order_id"])) <= MAX_CLIENT_ORDER_ID
        assert order["symbol"] == trades[order["trade_id"]].symbol
        assert str(order["client_order_id"]).startswith(f"ict-{order['symbol']}-")
    store.close()
    with sqlite3.connect(tmp_path / "two.db") as connection:
        mismatched = connection.execute(
            "SELECT count(*) FROM fills f JOIN orders o USING (client_order_id)"
            " WHERE f.symbol != o.symbol"
        ).fetchone()
        fills = connection.execute("SELECT DISTINCT symbol FROM fills").fetchall()
    assert mismatched == (0,)
    assert {row[0] for row in fills} == set(SYMBOLS)  # fill rows name their symbol


Span = tuple[datetime, datetime, int]


def spans(result: BacktestResult, symbol: str | None = None) -> list[Span]:
    """(entry, exit, shares) of the closed trades (of `symbol`)."""
    return [
        (t.entry_time, t.exit_time, t.qty)
        for t in result.closed_trades()
        if t.entry_time is not None
        and t.exit_time is not None
        and (symbol is None or t.symbol == symbol)
    ]


def most_held(trades: list[Span]) -> int:
    """The most shares the trades held at once (each trade's entry is a moment to look at)."""
    return max(
        (sum(q for start, end, q in trades if start <= moment < end) for moment, _, _ in trades),
        default=0,
    )


def test_the_symbol_cap_limits_each_symbol_and_the_total_cap_both() -> None:
    free = backtest(SYMBOLS)
    # Uncapped, both profiles together hold 30 IWM (about $235 a share) but only 14 DIA ($460).
    assert (most_held(spans(free, "IWM")), most_held(spans(free, "DIA"))) == (30, 14)
    capped = backtest(SYMBOLS, replace(NO_BREAKERS, max_symbol_shares=20))
    # The cap of 20 a symbol cuts IWM and leaves DIA's trades as they were ...
    assert most_held(spans(capped, "IWM")) == 20
    assert spans(capped, "DIA") == spans(free, "DIA")
    # ... and the two symbols together still hold more than 20 at once.
    assert most_held(spans(capped)) > 20
    total = backtest(SYMBOLS, replace(NO_BREAKERS, max_total_shares=20))
    assert 0 < most_held(spans(total)) <= 20
    assert {t.symbol for t in total.closed_trades()} == set(SYMBOLS)


def test_signals_of_two_symbols_in_one_minute_get_distinct_trades_and_ids() -> None:
    calendar, merged, own = market()
    moment = own["IWM"][40].time  # a minute both symbols have a bar in
    assert any(b.time == moment for b in own["DIA"])
    detectors = {
        symbol: SignalReplay(calendar, [Signal(moment, Direction.LONG, 100.0, 0.5, 99.0, 100.5)])
        for symbol in SYMBOLS
    }
    engine = Engine(EngineConfig(symbols=SYMBOLS, risk=NO_BREAKERS), detectors)
    engine.handle(AccountUpdated(moment, Decimal(100_000), Decimal(100_000), Decimal(200_000)))
    orders = []
    for bar in merged:
        if bar.time > moment:
            break
        orders += [c.order for c in engine.on_bar(bar) if isinstance(c, SubmitOrder)]
    assert sorted((o.symbol, o.profile) for o in orders) == sorted(
        (s, p) for s in SYMBOLS for p in ("conservative", "aggressive")
    )
    assert len({o.client_order_id for o in orders}) == 4
    assert {o.trade_id for o in orders} == {
        f"ict-{s}-{moment:%Y%m%d%H%M}l-{p}" for s in SYMBOLS for p in ("conservative", "aggressive")
    }
    assert engine.open_positions() == {"IWM": 0, "DIA": 0}  # nothing filled yet: planned only


def test_a_bar_of_a_symbol_not_traded_is_refused() -> None:
    calendar, merged, _ = market()
    engine = Engine(EngineConfig(symbols=("IWM",)), {"IWM": SignalReplay(calendar, [])})
    with pytest.raises(ValueError, match=r"a bar of DIA .* ict-trader trades IWM"):
        for bar in merged[:4]:
            engine.on_bar(bar)


def test_a_symbol_loss_limit_stops_that_symbol_only_for_the_session() -> None:
    """Real bars, signals placed by hand (a symbol rarely signals twice a day): IWM's first
    trade of the day loses; its second signal is skipped, DIA's at the same minute trades."""
    calendar, merged, own = market()
    day = own["IWM"][390 * 5].time.date()  # the sixth session
    iwm = [b for b in own["IWM"] if b.time.date() == day]
    first, second = iwm[30], iwm[120]  # 10:00 and 11:30 New York
    exit_bar = iwm[31 + 60]  # the time exit: 60 minutes after the entry at the next open
    losing = Direction.SHORT if exit_bar.open > iwm[31].open else Direction.LONG

    def signal(bar: Bar, direction: Direction) -> Signal:
        return Signal(bar.time, direction, bar.close, 0.5, bar.close, bar.close)

    def run(limit: Decimal) -> BacktestResult:
        detectors = {
            "IWM": SignalReplay(calendar, [signal(first, losing), signal(second, losing)]),
            "DIA": SignalReplay(calendar, [signal(second._replace(symbol="DIA"), losing)]),
        }
        risk = replace(NO_BREAKERS, symbol_daily_loss_limit=limit)
        bars = [b for b in merged if b.time.date() == day]
        return run_backtest(bars, calendar, settings(SYMBOLS, risk), detector=detectors)

    free = run(Decimal(0))
    limited = run(Decimal(1))
    first_id = f"IWM-{first.time:%Y%m%dT%H%M}Z-{losing.value}"
    first_trades = [t for t in free.closed_trades() if t.signal_id == first_id]
    assert first_trades and all(t.pnl is not None and t.pnl < -1 for t in first_trades)
    assert {(t.symbol, t.signal_id) for t in free.closed_trades()} >= {
        ("IWM", f"IWM-{second.time:%Y%m%dT%H%M}Z-{losing.value}")
    }
    kept = {(t.symbol, t.profile, t.signal_id) for t in limited.closed_trades()}
    assert kept == {
        (s, p, f"{s}-{when:%Y%m%dT%H%M}Z-{losing.value}")
        for p in ("conservative", "aggressive")
        for s, when in (("IWM", first.time), ("DIA", second.time))
    }
    reasons = {(s.signal_id.split("-")[0], s.reason.split(":")[0]) for s in limited.skips}
    assert reasons == {("IWM", "IWM loss limit")}


def test_the_summary_table_has_a_column_per_symbol() -> None:
    result = backtest(SYMBOLS)
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "conservative" in line)
    assert [c for c in header.replace("┃", " ").split()][-3:] == ["all", "IWM", "DIA"]
    trades = next(line for line in text.splitlines() if line.strip("│ ").startswith("trades"))
    counts = [int(cell) for cell in trades.replace("│", " ").split()[1:]]
    by_symbol = result.metrics_by_symbol
    assert counts[-2:] == [by_symbol["IWM"].trades, by_symbol["DIA"].trades]
    assert counts[-3] == counts[-2] + counts[-1]
