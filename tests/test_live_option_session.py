"""An option profile live, end to end: the real alpaca-py against the loopback emulator's option
routes, the live shell and its contract desk, the same engine. The 2024-07-30 11:01 short signal
is traded as a same-day QQQ put: picked from the emulator's paged contract list, quoted from its
snapshots, bought with a limit and `buy_to_open`, sold with `sell_to_close` before the flatten,
its P&L the fills' difference x 100 — the cash the emulated account moved."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.adapters.alpaca.emulator.options import OptionSettings
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.adapters.alpaca.options import AlpacaContractDesk
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.contracts import PremiumSource
from ict_trader.core.engine import Engine
from ict_trader.core.events import ContractMarked, OrderRejected
from ict_trader.core.instruments import OptionRight, instrument_of
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side
from ict_trader.core.risk import RiskLimits
from ict_trader.core.strategy import (
    InstrumentChoice,
    OptionEntryPrice,
    OptionRules,
    StrategyProfile,
)
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from ict_trader.runtime.kernel import Seen
from ict_trader.runtime.live import LiveEndpoints, LiveShell
from ict_trader.signals import IctDetector
from tests.alpaca_emulator import (
    KEY,
    SECRET,
    backtest_like,
    data_client,
    every_minute,
    option_data_client,
    running_emulator,
)
from tests.test_live import SESSION_START, drive, trading
from tests.test_live_restart import start_bot, step, wait_connected

SIGNAL_DAY = date(2024, 7, 30)  # the sample's session with the 11:01 short signal


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def option_config(risk: RiskLimits | None = None) -> AppConfig:
    """One profile buying the day's at-the-money put or call at the ask (a marketable limit:
    the emulator, like Alpaca's paper engine, fills a buy limit once the ask is at or below it)."""
    puts = StrategyProfile(
        "puts",
        Decimal("0.03"),
        instrument=InstrumentChoice.OPTION,
        option=OptionRules(entry_price=OptionEntryPrice.ASK),
    )
    base = AppConfig()
    engine = replace(base.engine, profiles=(puts,), risk=risk or base.engine.risk)
    return replace(base, engine=engine)


# A 0DTE put's premium moves $1 in minutes: on 10 contracts that is $1,000, beyond the default
# rapid-loss limit built for shares. The session test turns it off to follow the trade to its
# time exit; the next test keeps it, to see held contracts' marks reach the loss limits.
NO_RAPID_LOSS = RiskLimits(rapid_loss=Decimal(0))


def option_shell(
    server: EmulatorServer,
    calendar: NyseCalendar,
    store: Store,
    config: AppConfig,
    seen: list[Seen] | None = None,
) -> LiveShell:
    """The live shell as the runner builds it for an option profile: a contract desk on the
    broker's trading client and an option data client, reads retried by the broker."""
    engine = Engine(
        config.engine,
        {symbol: IctDetector(calendar, config.signal) for symbol in config.engine.symbols},
    )
    broker = AlpacaBroker(KEY, SECRET, url_override=server.base_url, sleep=lambda s: None)
    desk = AlpacaContractDesk(broker.trading, option_data_client(server), read=broker.read)
    return LiveShell(
        engine,
        broker,
        store,
        data_client(server),
        calendar,
        api_key=KEY,
        secret_key=SECRET,
        endpoints=LiveEndpoints(
            rest_url=server.base_url,
            data_stream_url=f"ws://127.0.0.1:{server.port}/v2/iex",
            trade_stream_url=f"ws://127.0.0.1:{server.port}/stream",
        ),
        stale_after=timedelta(seconds=0.3),
        desk=desk,
        observer=seen.append if seen is not None else None,
    )


def option_trades(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute("SELECT * FROM trades ORDER BY trade_id").fetchall()


def test_a_signal_is_traded_live_as_a_same_day_put_through_alpaca_py(
    sample: BarFile, tmp_path: Path
) -> None:
    db = tmp_path / "options.db"
    config = option_config(NO_RAPID_LOSS)
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=every_minute()
    ) as server:
        cash_before = server.account.cash
        store = Store(db)
        shell = option_shell(server, sample.calendar, store, config)
        start = sample.bars[SESSION_START].time
        shell.reconcile(start)
        with trading(server, shell, start):
            drive(server, shell, 390)
        store.close()
        account = server.account
        orders = sorted(account.orders.values(), key=lambda o: o.created_at)
        cash_after = account.cash
        contract_calls = server.requests.count(("GET", "/v2/options/contracts"))
        snapshot_calls = server.requests.count(("GET", "/v1beta1/options/snapshots"))
        held = {s: q for s, q in account.positions.items() if instrument_of(s).is_option}
    [trade] = option_trades(db)
    symbol = trade["symbol"]
    contract = instrument_of(symbol)
    # the contract: a put (short signal) on QQQ expiring the signal's day, at the money
    assert contract.is_option and contract.right is OptionRight.PUT
    assert (contract.underlying, contract.expiry) == ("QQQ", SIGNAL_DAY)
    signal_bar = datetime(2024, 7, 30, 15, 1, tzinfo=UTC)  # the 11:01 bar
    signal_close = next(b.close for b in sample.bars if b.time == signal_bar)
    assert signal_close == 460.29  # so `atm` is the $460 strike, the nearest listed
    assert contract.strike == Decimal(460)
    assert contract_calls >= 1 and snapshot_calls >= 1
    # the orders Alpaca received: a limit buy to open, then a market sell to close
    entry, exit_ = orders
    assert (entry.symbol, entry.side, entry.type, entry.position_intent) == (
        symbol,
        "buy",
        "limit",
        "buy_to_open",
    )
    assert (exit_.symbol, exit_.side, exit_.position_intent) == (symbol, "sell", "sell_to_close")
    assert entry.time_in_force == exit_.time_in_force == "day"
    assert entry.filled_qty == exit_.filled_qty == trade["qty"] > 0
    # out before the flatten (15:20 New York): the target, judged on the underlying, was
    # reached — a bar of QQQ closed at or below entry - 5 x ATR, and the put was sold at market
    exit_time = datetime.fromisoformat(trade["exit_time"].replace("Z", "+00:00"))
    assert exit_time.astimezone(NEW_YORK).time() < time(15, 20)
    assert trade["exit_reason"] == "target"
    details = json.loads(trade["option"])
    assert details["source"] == "broker"
    target = Decimal(details["underlying_target"])
    closes = [b.close for b in sample.bars if signal_bar < b.time < exit_time]
    assert min(closes) <= target < min(closes[:-1])  # the last bar before the exit crossed it
    # P&L from the fills, x 100 a contract, and exactly the cash the account moved
    entry_price = entry.filled_value / entry.filled_qty
    exit_price = exit_.filled_value / exit_.filled_qty
    pnl = (exit_price - entry_price) * trade["qty"] * 100
    assert Decimal(trade["pnl"]) == pnl
    assert cash_after - cash_before == pnl
    assert Decimal(trade["entry_price"]) == entry_price
    assert held == {symbol: 0}  # nothing left at the broker


def test_held_contracts_marks_reach_the_loss_limits(sample: BarFile, tmp_path: Path) -> None:
    """With the default limits the same put gains, then gives back more than $500 of its best
    within 15 minutes: known only from Alpaca's quotes of the contract (`ContractMarked` each
    bar), the rapid-loss breaker closes it — still at a profit, from the fills."""
    db = tmp_path / "marks.db"
    seen: list[Seen] = []
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=every_minute()
    ) as server:
        store = Store(db)
        shell = option_shell(server, sample.calendar, store, option_config(), seen)
        start = sample.bars[SESSION_START].time
        shell.reconcile(start)
        with trading(server, shell, start):
            drive(server, shell, 390)
        store.close()
    marks = [e for e in seen if isinstance(e, ContractMarked)]
    [trade] = option_trades(db)
    assert trade["exit_reason"] == "kill"
    assert {m.quote.symbol for m in marks} == {trade["symbol"]}
    assert all(m.quote.source is PremiumSource.BROKER for m in marks)
    entry = Decimal(trade["entry_price"])
    best = max(m.quote.mid for m in marks)
    assert (best - entry) * trade["qty"] * 100 > Decimal(trade["pnl"]) + 500  # given back
    assert Decimal(trade["pnl"]) > 0
    with sqlite3.connect(db) as connection:
        [(actor, why)] = connection.execute(
            "SELECT actor, message FROM audit WHERE kind = 'kill'"
        ).fetchall()
    assert actor == "breaker:rapid_loss" and why.startswith("rapid loss:")


def test_an_option_entry_from_the_cutoff_never_reaches_alpaca(
    sample: BarFile, tmp_path: Path
) -> None:
    """The engine takes no entry so late; the shell's backstop is shown an entry at 15:31 on
    the day's put: refused locally, with the rule named, while an exit still goes out."""
    late = datetime(2024, 7, 30, 19, 31, tzinfo=UTC)  # 15:31 New York
    put = "QQQ240730P00455000"
    index = SESSION_START + 360  # 15:30's bar
    seen: list[Seen] = []
    with running_emulator(
        sample, start_bar=index + 1, options=backtest_like(), data=every_minute()
    ) as server:
        store = Store(tmp_path / "late.db")
        shell = option_shell(server, sample.calendar, store, option_config(), seen)
        shell.stats.last_bar = sample.bars[index].time
        entry = OrderRequest(
            client_order_id="ict-QQQ-202407301930s-puts-entry",
            symbol=put,
            side=Side.BUY,
            qty=1,
            type=OrderType.LIMIT,
            trade_id="ict-QQQ-202407301930s-puts",
            profile="puts",
            leg=Leg.ENTRY,
            limit_price=Decimal("1.00"),
            created_at=late,
            position_intent="buy_to_open",
        )
        shell.submit(entry)
        posts = server.requests.count(("POST", "/v2/orders"))
        exit_ = replace(
            entry,
            client_order_id="ict-QQQ-202407301930s-puts-exit",
            side=Side.SELL,
            type=OrderType.MARKET,
            leg=Leg.EXIT,
            limit_price=None,
            position_intent="sell_to_close",
        )
        shell.submit(exit_)
        posts_after_exit = server.requests.count(("POST", "/v2/orders"))
        store.close()
    assert posts == 0
    [refused] = [e for e in seen if isinstance(e, OrderRejected)][:1]
    assert refused.client_order_id == entry.client_order_id
    assert "option entry cut-off" in refused.reason and "15:30" in refused.reason
    assert posts_after_exit == 1  # the exit went to Alpaca (which has its own cut-off)


OPTION_TOML = """
[risk]
rapid_loss = 0

[[profiles]]
name = "puts"
allocation = 0.03
instrument = "option"

[profiles.option]
entry_price = "ask"
"""


def test_kill_9_mid_option_trade_then_restart_reconciles_the_contracts(
    sample: BarFile, tmp_path: Path
) -> None:
    """The bot as a real process (`ict-trader run --alpaca-url …` with an option profile in
    ict-trader.toml) is killed at 11:05 holding the put, restarted at 11:20: the ledger's
    contracts and Alpaca's `us_option` position agree, no order is sent twice, and the trade
    still exits at its target."""
    db, log = tmp_path / "bot.db", tmp_path / "bot.log"
    (tmp_path / "ict-trader.toml").write_text(OPTION_TOML, encoding="utf-8")
    with running_emulator(
        sample, start_bar=SESSION_START, options=backtest_like(), data=every_minute()
    ) as server:
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 95, bot_up=True, log=log)  # to 11:05: the put bought at 11:02
        with sqlite3.connect(db) as connection:
            [(symbol, qty)] = connection.execute(
                "SELECT symbol, qty FROM trades WHERE status = 'open'"
            ).fetchall()
        assert instrument_of(symbol).is_option and qty > 0
        bot.kill()  # SIGKILL: no clean-up at all
        bot.wait()
        step(server, db, 15, bot_up=False, log=log)
        held_at_restart = server.account.positions[symbol]
        bot = start_bot(server, db, log)
        wait_connected(server, bot, log)
        step(server, db, 390 - 95 - 15, bot_up=True, log=log)
        bot.wait(timeout=60)
        client_ids = Counter(o.client_order_id for o in server.account.orders.values())
        posts = server.requests.count(("POST", "/v2/orders"))
        held_at_end = server.account.positions[symbol]
    text = log.read_text()
    assert bot.returncode == 0, text[-3000:]
    assert held_at_restart == qty
    assert (
        f"reconciled: ledger and broker agree on {qty} QQQ (option contracts: {qty} {symbol})"
        in text
    )
    assert max(client_ids.values()) == 1 and posts == len(client_ids) == 2
    assert held_at_end == 0
    [trade] = option_trades(db)
    assert (trade["status"], trade["exit_reason"]) == ("closed", "target")


def test_an_account_below_options_level_two_is_refused_at_start(
    sample: BarFile, tmp_path: Path
) -> None:
    """Options level 1 (covered calls only) and an option profile: `ict-trader run` stops at
    start with one line saying which level and what to do, exits 2, and records no run."""
    db = tmp_path / "bot.db"
    (tmp_path / "ict-trader.toml").write_text(OPTION_TOML, encoding="utf-8")
    level_one = backtest_like(option_settings=OptionSettings(trading_level=1))
    with running_emulator(sample, start_bar=SESSION_START, options=level_one) as server:
        env = {**os.environ, "ALPACA_API_KEY": KEY, "ALPACA_API_SECRET": SECRET}
        command = [sys.executable, "-m", "ict_trader", "run", "--no-dashboard"]
        done = subprocess.run(
            [*command, "--alpaca-url", server.base_url, "--db", str(db)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: profile(s) puts trade options, but this Alpaca account's options trading level"
        " is 1 and buying calls and puts needs level 2: enable options level 2 (or 3) in the"
        " Alpaca dashboard (and raise the account's maximum options level if it is capped"
        " lower), or disable the option profiles"
    ]
    with closing(Store(db)) as store:
        assert store.last_run() is None
