"""Risk limits and circuit breakers inside the engine, on scripted events."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ict_trader.config import AppConfig, parse_config
from ict_trader.core.bars import Bar
from ict_trader.core.events import (
    AccountUpdated,
    BrokerError,
    CancelOrder,
    EntrySkipped,
    ExitReason,
    Level,
    OrderRejected,
    Output,
)
from ict_trader.core.risk import RiskLimits, RiskMonitor, fit_entry
from ict_trader.core.strategy import EngineConfig
from ict_trader.errors import ConfigError
from ict_trader.marketdata.barfile import load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.backtest import run_backtest
from tests.engine_script import FILL_TIME, Script, minutes, rendered, submitted

NO_BREAKERS = RiskLimits(
    daily_loss_limit=Decimal(0), rapid_loss=Decimal(0), max_errors=0, max_drawdown_pct=Decimal(0)
)


def opened(limits: RiskLimits) -> Script:
    """Both profiles short (30 + 41 shares) at 97.60 from the scripted 09:35 signal."""
    script = Script(config=EngineConfig(risk=limits))
    script.equity()
    for entry in submitted(script.to_signal()):
        script.fill(entry, entry.qty, "97.60")
    return script


def bar_at(minute: int, close: float) -> Bar:
    """A bar of 2024-07-29 after the scripted ones (09:36 is minute 6)."""
    moment = datetime(2024, 7, 29, 13, 30 + minute, tzinfo=UTC)
    return Bar(moment, close, close, close, close, 1000.0)


def kill_notices(commands: Sequence[Output]) -> list[str]:
    return [n.message for n in rendered(commands) if n.title == "Kill switch engaged"]


def test_fit_entry_reduces_to_the_tightest_limit_and_says_why() -> None:
    limits = RiskLimits(max_shares_per_trade=20, max_total_notional=Decimal(3000))
    qty, why = fit_entry(
        41,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=Decimal(50_000),
        open_shares=0,
        open_notional=Decimal(1500),
        limits=limits,
    )
    assert (qty, why) == (15, ["max 20 shares", "max $3000 in total"])
    qty, why = fit_entry(
        41,
        Decimal(100),
        equity=Decimal(100_000),
        buying_power=Decimal(250),
        open_shares=0,
        open_notional=Decimal(0),
        limits=RiskLimits(),
    )
    assert (qty, why) == (2, ["buying power $250.00"])


def test_the_daily_loss_limit_trips_the_kill_switch_mid_trade() -> None:
    script = opened(replace(NO_BREAKERS, daily_loss_limit=Decimal(1000)))
    # 71 shares short at 97.60: a close of 111.60 is a loss of 994, 111.70 of 1001.10.
    assert kill_notices(list(script.engine.on_bar(bar_at(6, 111.60)))) == []
    commands = list(script.engine.on_bar(bar_at(7, 111.70)))
    (notice,) = kill_notices(commands)
    assert "daily loss limit: session P&L -1001.10 reached -1000" in notice
    assert len([c for c in commands if isinstance(c, CancelOrder)]) == 2  # both targets
    assert script.engine.halted


def test_rapid_loss_breaker() -> None:
    script = opened(replace(NO_BREAKERS, rapid_loss=Decimal(500), rapid_loss_minutes=15))
    script.engine.on_bar(bar_at(6, 97.0))  # +42.60
    commands = list(script.engine.on_bar(bar_at(10, 104.7)))  # -504.10: 546.70 lost in 4 min
    assert any("rapid loss" in n for n in kill_notices(commands))


def test_error_rate_breaker() -> None:
    script = Script(config=EngineConfig(risk=replace(NO_BREAKERS, max_errors=3)))
    script.equity()
    entries = submitted(script.to_signal())
    script.send(OrderRejected(FILL_TIME, entries[0].client_order_id, "nope"))
    script.send(OrderRejected(FILL_TIME, entries[1].client_order_id, "nope"))
    assert not script.engine.halted
    commands = script.send(OrderRejected(FILL_TIME + minutes(1), "unknown-order", "nope"))
    assert any("error rate: 3 broker/order errors" in n for n in kill_notices(commands))


def test_drawdown_breaker_uses_the_equity_peak() -> None:
    script = opened(replace(NO_BREAKERS, max_drawdown_pct=Decimal(5)))
    script.send(AccountUpdated(FILL_TIME, Decimal(104_000), Decimal(0), Decimal(0)))
    script.send(AccountUpdated(FILL_TIME, Decimal(98_800), Decimal(0), Decimal(0)))
    assert not script.engine.halted  # 5.0 % below the peak is checked with the next bar
    commands = list(script.engine.on_bar(bar_at(6, 97.5)))
    assert any("drawdown 5.00% from the equity peak 104000" in n for n in kill_notices(commands))


def test_entries_are_reduced_or_refused_with_the_reason() -> None:
    script = Script(config=EngineConfig(risk=replace(NO_BREAKERS, max_shares_per_trade=35)))
    script.equity()
    commands = script.to_signal()
    assert [o.qty for o in submitted(commands)] == [30, 35]  # aggressive wanted 41
    reduced = [n.message for n in rendered(commands) if "reduced" in n.title]
    assert reduced == ["aggressive entry reduced from 41 to 35 shares: max 35 shares"]
    tight = Script(config=EngineConfig(risk=replace(NO_BREAKERS, max_total_shares=30)))
    tight.equity()
    commands = tight.to_signal()
    assert [o.qty for o in submitted(commands)] == [30]
    (skip,) = [c for c in commands if isinstance(c, EntrySkipped)]
    assert skip.reason == "size limits leave 0 of 41 shares: max 30 shares in total"


def test_a_blocked_account_takes_no_entries() -> None:
    script = Script()
    script.send(
        AccountUpdated(
            FILL_TIME, Decimal(100_000), Decimal(100_000), Decimal(0), trading_blocked=True
        )
    )
    skips = [c for c in script.to_signal() if isinstance(c, EntrySkipped)]
    assert {s.reason for s in skips} == {"the broker reports the account or trading as blocked"}


def test_risk_settings_in_the_config_file() -> None:
    config = parse_config({"risk": {"daily_loss_limit": 250, "max_errors": 2}})
    assert config.engine.risk.daily_loss_limit == Decimal(250)
    assert config.engine.risk.max_errors == 2
    with pytest.raises(ConfigError, match=r"unknown setting risk\.loss"):
        parse_config({"risk": {"loss": 1}})
    with pytest.raises(ConfigError, match=r"risk\.max_errors must be a whole number"):
        parse_config({"risk": {"max_errors": 1.5}})
    with pytest.raises(ConfigError, match=r"risk\.daily_loss_limit must not be negative"):
        parse_config({"risk": {"daily_loss_limit": -1}})


def test_a_tiny_loss_limit_trips_mid_trade_in_a_replay(dev_year: Path, tmp_path: Path) -> None:
    """Dev-year bars of 2024-01-02 .. 01-12 with a $2 daily loss limit: the first trade goes
    $2 against the profiles within minutes, the kill switch closes both trades and cancels their
    targets, and every later signal is skipped."""
    bar_file = load_bars(dev_year)
    bars = [b for b in bar_file.bars if b.time < datetime(2024, 1, 13, tzinfo=UTC)]
    base = AppConfig()
    config = replace(
        base, engine=replace(base.engine, risk=replace(NO_BREAKERS, daily_loss_limit=Decimal(2)))
    )
    db = tmp_path / "trip.db"
    store = Store(db)
    result = run_backtest(bars, bar_file.calendar, config, store=store)
    store.close()
    killed = [t for t in result.closed_trades() if t.exit_reason is ExitReason.KILL]
    assert len(killed) == 2 and killed[0].signal_id == killed[1].signal_id
    assert all(t.pnl is not None and t.pnl < 0 for t in killed)
    trip = killed[0].exit_time
    assert trip is not None
    with sqlite3.connect(db) as connection:
        working = connection.execute(
            "SELECT COUNT(*) FROM orders WHERE status NOT IN ('filled', 'canceled', 'expired')"
        ).fetchone()
        targets = connection.execute(
            "SELECT o.status FROM orders o JOIN trades t ON o.trade_id = t.trade_id"
            " WHERE o.leg = 'target' AND t.exit_reason = 'kill'"
        ).fetchall()
        later_orders = connection.execute(
            "SELECT COUNT(*) FROM orders WHERE created_at > ? AND leg = 'entry'",
            (trip.strftime("%Y-%m-%dT%H:%M:%SZ"),),
        ).fetchone()
        skipped = connection.execute("SELECT signal_id, reason FROM skips").fetchall()
        audit = connection.execute("SELECT message FROM audit WHERE kind = 'notify.critical'")
        critical = [row[0] for row in audit]
    assert working == (0,) and later_orders == (0,)
    assert targets == [("canceled",), ("canceled",)]
    later = {d.signal_id for d in result.signals if d.signal.time > trip}
    assert len(later) == 3  # 01-05, 01-09 and 01-12
    assert {s for s, _ in skipped} == later and len(skipped) == 6
    assert all(reason.startswith("kill switch engaged: daily loss limit") for _, reason in skipped)
    assert any("breaker:daily_loss" in message for message in critical)


def test_broker_errors_count_for_the_error_rate_breaker() -> None:
    script = Script(config=EngineConfig(risk=replace(NO_BREAKERS, max_errors=2)))
    first = script.send(BrokerError(FILL_TIME, "account: HTTP 500"))
    assert [(n.level, n.message) for n in rendered(first)] == [
        (Level.WARNING, "account: HTTP 500")  # every broker error reaches the user
    ]
    assert not script.engine.halted
    commands = script.send(BrokerError(FILL_TIME + minutes(3), "poll orders: timeout"))
    assert any("error rate: 2 broker/order errors" in n for n in kill_notices(commands))
    assert script.engine.state == "halted"


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 6), st.integers(-40_000, 40_000)), min_size=1, max_size=60
    )
)
def test_rapid_loss_window_matches_a_naive_scan(steps: list[tuple[int, int]]) -> None:
    """The O(1) monotonic window trips exactly when a scan over the last 15 minutes would."""
    limits = replace(NO_BREAKERS, rapid_loss=Decimal(500), rapid_loss_minutes=15)
    monitor = RiskMonitor(limits)
    now = datetime(2024, 7, 29, 14, 0, tzinfo=UTC)
    history: list[tuple[datetime, Decimal]] = []
    for gap, cents in steps:
        now += minutes(gap)
        pnl = Decimal(cents) / 100
        monitor.mark(pnl)
        history.append((now, pnl))
        recent = [value for moment, value in history if moment >= now - minutes(15)]
        tripped = monitor.check(now)
        assert (tripped is not None) == (max(recent) - pnl >= 500)


@settings(max_examples=300)
@given(
    peak=st.decimals(min_value=Decimal(1000), max_value=Decimal(10**7), places=2),
    equity=st.decimals(min_value=Decimal(0), max_value=Decimal(2 * 10**7), places=4),
    limit=st.sampled_from([Decimal(0), Decimal("0.1"), Decimal(5), Decimal("12.5")]),
    error=st.floats(min_value=-1e-12, max_value=1e-12),
)
def test_the_float_first_test_never_misses_an_equity_that_matters(
    peak: Decimal, equity: Decimal, limit: Decimal, error: float
) -> None:
    """A sweep asks `equity_may_matter` with a float estimate before the exact test: whatever
    the exact test would act on (a new peak, a drawdown at the limit), the estimate flags."""
    monitor = RiskMonitor(RiskLimits(max_drawdown_pct=limit))
    monitor.equity(peak)
    estimate = float(equity) * (1 + error)  # an estimate off by up to a part in 10^12
    if monitor.equity_matters(equity):
        assert monitor.equity_may_matter(estimate)
    # and near the boundaries the exact test decides: just past the limit matters, just above
    # it does not
    if limit:
        floor = peak * (1 - limit / 100)
        assert monitor.equity_matters(floor)
        assert not monitor.equity_matters(floor + Decimal("0.01"))
    assert monitor.equity_matters(peak + Decimal("0.0001"))  # a new peak
    assert not monitor.equity_matters(peak)
