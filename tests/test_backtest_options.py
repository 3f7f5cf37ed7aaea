"""Backtests with an option profile beside the shares profiles, on the real dev year: model-
priced, then from a quote file; the P&L from the fills, the flatten, the premium source; and
the command refusing unusable option pricing in one line."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.config import AppConfig, parse_config
from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.contracts import PremiumSource
from ict_trader.core.events import TradeView
from ict_trader.core.instruments import OptionRight, instrument_of, option
from ict_trader.core.ledger import Ledger
from ict_trader.core.orders import OrderType, Side
from ict_trader.marketdata.barfile import load_bars
from ict_trader.options.pricing import OptionModel, Spread
from ict_trader.options.quotes import load_quotes
from ict_trader.persistence.store import Store
from ict_trader.reporting.backtest_result import BacktestResult
from ict_trader.runtime.backtest import run_backtest

RELAXED = {"rapid_loss": 0, "daily_loss_limit": 0, "max_drawdown_pct": 0}
PROFILES = [
    {"name": "conservative", "allocation": 0.03},
    {"name": "aggressive", "allocation": 0.04},
    {"name": "calls_puts", "allocation": 0.01, "instrument": "option"},
]


def settings(**options: Any) -> AppConfig:
    return parse_config({"risk": RELAXED, "profiles": PROFILES, "options": options})


@dataclass
class Run:
    result: BacktestResult
    ledger: Ledger
    calendar: NyseCalendar
    bars: list[Bar]

    def option_trades(self) -> list[TradeView]:
        return [t for t in self.result.closed_trades() if t.profile == "calls_puts"]


def backtest(bars: list[Bar], calendar: NyseCalendar, config: AppConfig, db: Path) -> Run:
    store = Store(db)
    try:
        result = run_backtest(bars, calendar, config, store=store)
        ledger = store.load_ledger()
    finally:
        store.close()
    return Run(result, ledger, calendar, bars)


@pytest.fixture(scope="module")
def model_run(dev_year: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    year = load_bars(dev_year)
    config = settings(commission_per_contract=0.02, slippage=0.01)
    db = tmp_path_factory.mktemp("model") / "b.db"
    return backtest(list(year.bars), year.calendar, config, db)


def fills_by_trade(ledger: Ledger) -> dict[str, list[tuple[Side, int, Decimal, Decimal]]]:
    orders = {o.request.client_order_id: o.request for o in ledger.orders}
    found: dict[str, list[tuple[Side, int, Decimal, Decimal]]] = defaultdict(list)
    for fill in ledger.fills:
        request = orders[fill.client_order_id]
        found[request.trade_id].append((request.side, fill.qty, fill.price, fill.commission))
    return found


def check_option_trades(run: Run, source: PremiumSource) -> list[TradeView]:
    """What every option trade of a run must satisfy, whatever priced it."""
    trades = run.option_trades()
    fills = fills_by_trade(run.ledger)
    for trade in trades:
        contract = instrument_of(trade.symbol)
        assert contract.is_option and contract.underlying == "QQQ"
        assert trade.entry_time is not None and trade.exit_time is not None
        session = run.calendar.session_on(trade.entry_time.astimezone(NEW_YORK).date())
        assert session is not None and contract.expiry == session.day  # same-day
        wanted = OptionRight.CALL if trade.direction == "long" else OptionRight.PUT
        assert contract.right is wanted
        # flat by the flatten (40 minutes before the close: 15:20 on a full day)
        assert trade.exit_time <= session.close - timedelta(minutes=40), trade.trade_id
        assert trade.option is not None and trade.option.source is source
        # P&L from the fills: what was received less what was paid, 100 shares a contract
        legs = fills[trade.trade_id]
        paid = sum((q * p for s, q, p, _ in legs if s is Side.BUY), Decimal(0))
        received = sum((q * p for s, q, p, _ in legs if s is Side.SELL), Decimal(0))
        commission = sum((c for *_, c in legs), Decimal(0))
        assert sum(q for s, q, *_ in legs if s is Side.BUY) == trade.qty
        assert sum(q for s, q, *_ in legs if s is Side.SELL) == trade.qty
        assert trade.pnl == (received - paid) * 100 - commission
        assert trade.entry_price is not None and trade.exit_price is not None
        expected = (trade.exit_price - trade.entry_price) * trade.qty * 100 - trade.commission
        assert trade.pnl == expected
    return trades


def test_a_model_priced_option_profile_trades_the_dev_year_beside_the_shares(
    model_run: Run,
) -> None:
    trades = check_option_trades(model_run, PremiumSource.MODEL)
    assert len(trades) >= 20
    assert {t.direction for t in trades} == {"long", "short"}
    assert any(t.pnl is not None and t.pnl > 0 for t in trades)
    # commission per contract charged on both legs
    assert [t.commission for t in trades] == [Decimal("0.04") * t.qty for t in trades]
    described = model_run.result.to_json()["config"]["options"]
    assert described["premium_source"] == "model"
    assert described["pricing"].startswith("model-priced: Black-Scholes-Merton")
    # everything was closed: no option trade still open at the end
    statuses = {t.status for t in model_run.ledger.trades if t.profile == "calls_puts"}
    assert statuses <= {"closed", "canceled"}, statuses  # canceled: the entry never filled
    shares = [t for t in model_run.result.closed_trades() if t.profile != "calls_puts"]
    assert len(shares) >= 150 and all(t.option is None for t in shares)


def test_entries_fill_at_or_under_their_limit_and_market_exits_at_most_the_mid(
    model_run: Run,
) -> None:
    orders = {o.request.client_order_id: o.request for o in model_run.ledger.orders}
    fills = {f.client_order_id: f for f in model_run.ledger.fills}
    entries = exits = 0
    for trade in model_run.option_trades():
        assert trade.option is not None
        for order_id, request in orders.items():
            if request.trade_id != trade.trade_id or order_id not in fills:
                continue
            price = fills[order_id].price
            if request.side is Side.BUY:
                assert request.type is OrderType.LIMIT and request.limit_price is not None
                assert price <= request.limit_price
                assert request.position_intent == "buy_to_open"
                entries += 1
            else:
                assert request.position_intent == "sell_to_close"
                exits += 1
    assert entries == exits == len(model_run.option_trades())


def test_the_shares_profiles_trade_as_they_do_without_the_option_profile(
    model_run: Run,
) -> None:
    shares_only = parse_config({"risk": RELAXED, "profiles": PROFILES[:2]})
    alone = run_backtest(model_run.bars, model_run.calendar, shares_only)

    def key(t: TradeView) -> tuple[object, ...]:
        # the decisions and prices; not the size: the option trades' P&L moves the equity the
        # shares are sized on, and their premium counts toward the total exposure caps
        return (t.trade_id, t.entry_time, t.entry_price, t.exit_time, t.exit_price, t.exit_reason)

    beside = [key(t) for t in model_run.result.closed_trades() if t.profile != "calls_puts"]
    assert beside == [key(t) for t in alone.closed_trades()]


def write_model_quotes(path: Path, bars: list[Bar]) -> Path:
    """A quote file as a vendor's would be: every minute, calls and puts 4 strikes either side
    of the underlying, priced by the model at 20 % with a wider spread than the model desk's."""
    model = OptionModel(spread=Spread(Decimal("0.03"), Decimal("0.03")))
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "symbol", "bid", "ask"])
        for bar in bars:
            day = bar.time.astimezone(NEW_YORK).date()
            centre = round(bar.open)
            for strike in range(centre - 4, centre + 5):
                for right in (OptionRight.CALL, OptionRight.PUT):
                    contract = option("QQQ", day, right, Decimal(strike))
                    q = model.quote(contract, bar.open, bar.time, 0.20)
                    stamp = bar.time.strftime("%Y-%m-%dT%H:%M:%SZ")
                    out.writerow([stamp, contract.symbol, q.bid, q.ask])
    return path


def test_a_quote_file_prices_the_option_profile_with_its_own_bids_and_asks(
    model_run: Run, tmp_path: Path
) -> None:
    days = sorted({t.entry_time.date() for t in model_run.option_trades() if t.entry_time})[:6]
    bars = [bar for bar in model_run.bars if bar.time.date() in days]
    quotes = write_model_quotes(tmp_path / "quotes.csv", bars)
    config = settings().with_option_quotes(quotes)
    run = backtest(bars, model_run.calendar, config, tmp_path / "file.db")
    trades = check_option_trades(run, PremiumSource.FILE)
    assert len(trades) >= 3
    described = run.result.to_json()["config"]["options"]
    assert described["premium_source"] == "file"
    assert described["pricing"].startswith("quote file quotes.csv: real bid/ask")
    book = load_quotes(quotes)
    orders = {o.request.client_order_id: o.request for o in run.ledger.orders}
    option_fills = [
        f for f in run.ledger.fills if orders[f.client_order_id].profile == "calls_puts"
    ]
    assert len(option_fills) == 2 * len(trades)
    for fill in option_fills:
        request = orders[fill.client_order_id]
        quote = book.quote_at(request.symbol, fill.time)
        assert quote is not None
        if request.side is Side.BUY:
            assert fill.price == quote.ask  # a limit buy fills at the file's ask
        elif request.type is OrderType.MARKET:
            assert fill.price == quote.bid
        else:
            assert fill.price == request.limit_price


# ---------------------------------------------------------------------------- the command

runner = CliRunner()
# within the default rapid-loss limit, so the command warns of nothing and only refuses
OPTION_PROFILE = (
    '[[profiles]]\nname = "calls"\nallocation = 0.01\ninstrument = "option"\n'
    "[profiles.option]\nmax_premium = 400\n"
)


def one_line_refusal(args: list[str], *expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('pricing = "black-scholes"', "options.pricing"),
        ('volatility = "implied"', "options.volatility"),
        ("volatility = 0", "options.volatility"),
        ("volatility = nan", "options.volatility"),
        ("realized_window_minutes = 5", "options.realized_window_minutes"),
        ("realized_window_minutes = 60.5", "options.realized_window_minutes"),
        ("spread_absolute = -0.01", "options.spread_absolute"),
        ("spread_relative = 2", "options.spread_relative"),
        ('slippage = "1"', "options.slippage"),
        ("commission_per_contract = inf", "options.commission_per_contract"),
        ("rate = true", "options.rate"),
        ("dividend = -1", "options.dividend"),
        ("strike_step = 0", "options.strike_step"),
        ("strike_step = 0.5001", "options.strike_step"),
        ("strike_count = 0", "options.strike_count"),
        ("staleness_minutes = 61", "options.staleness_minutes"),
        ("quotes = 5", "options.quotes"),
        ("colour = 1", "options.colour"),
        ('pricing = "model"\nquotes = "q.csv"', "options.quotes"),
    ],
)
def test_bad_options_settings_are_refused_in_one_line_naming_the_key(
    tmp_path: Path, table: str, key: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[options]\n{table}\n" + OPTION_PROFILE, encoding="utf-8")
    one_line_refusal(["backtest", "--config", str(config)], str(config), key)


def test_an_option_profile_without_usable_pricing_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    config = tmp_path / "file.toml"
    config.write_text('[options]\npricing = "file"\n' + OPTION_PROFILE, encoding="utf-8")
    one_line_refusal(["backtest", "--config", str(config)], "needs options.quotes")
    missing = tmp_path / "nowhere.csv"
    args = ["--config", str(config), "--option-quotes", str(missing)]
    one_line_refusal(["backtest", *args], "nowhere.csv", "not found")
    one_line_refusal(["run", "--fresh", "--speed", "0", "--db", str(tmp_path / "r.db"), *args])
    assert not (tmp_path / "r.db").exists()  # refused before anything was written
    relative = tmp_path / "rel.toml"
    relative.write_text('[options]\nquotes = "q.csv"\n' + OPTION_PROFILE, encoding="utf-8")
    one_line_refusal(["backtest", "--config", str(relative)], str(tmp_path / "q.csv"))


def test_the_backtest_command_says_where_premiums_come_from(tmp_path: Path) -> None:
    config = tmp_path / "model.toml"
    config.write_text(OPTION_PROFILE, encoding="utf-8")
    report = tmp_path / "bt.json"
    result = runner.invoke(app, ["backtest", "--config", str(config), "--json", str(report)])
    assert result.exit_code == 0, result.stderr
    assert "option premiums: model-priced" in " ".join(result.stderr.split())
    described = json.loads(report.read_text(encoding="utf-8"))["config"]["options"]
    assert described["premium_source"] == "model"
