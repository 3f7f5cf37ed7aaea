"""The engine trading a signal as a same-day option: the contract request, sizing by premium,
the limit entry and its timeout, the exits an option has, and a share profile beside it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.events import (
    AccountUpdated,
    CancelOrder,
    ContractMarked,
    ContractQuoted,
    ContractUnavailable,
    EntryReduced,
    EntrySkipped,
    ExitReason,
    KillSwitch,
    OrderFilled,
    RequestContract,
    Tick,
    TradeUpdated,
)
from ict_trader.core.instruments import OptionRight
from ict_trader.core.orders import Leg, OrderType, Side
from ict_trader.core.risk import RiskLimits
from ict_trader.core.strategy import (
    EngineConfig,
    InstrumentChoice,
    OptionEntryPrice,
    OptionRules,
    OptionTarget,
    StrategyProfile,
)
from ict_trader.errors import ConfigError
from ict_trader.persistence.store import Store
from ict_trader.runtime.kernel import Kernel
from tests.engine_script import (
    FILL_TIME,
    SIGNAL_CLOSE_TIME,
    Script,
    minutes,
    rendered,
    submitted,
)
from tests.test_kernel import Recorder
from tests.test_signal_rules import session_bars

PUT = "QQQ240729P00097000"  # the signal is short at 97.50 on 2024-07-29: a same-day put


def option_profile(**rules: object) -> StrategyProfile:
    return StrategyProfile(
        "puts",
        Decimal("0.03"),
        instrument=InstrumentChoice.OPTION,
        option=OptionRules(**rules),  # type: ignore[arg-type]
    )


def scripted(*profiles: StrategyProfile) -> Script:
    script = Script(config=EngineConfig(profiles=profiles))
    script.equity(100_000)
    return script


def quote(symbol: str = PUT, bid: str = "0.50", ask: str = "0.54") -> ContractQuote:
    return ContractQuote(
        symbol, SIGNAL_CLOSE_TIME, Decimal(bid), Decimal(ask), PremiumSource.MODEL, -0.42, 0.2
    )


def requested(script: Script) -> RequestContract:
    requests = [c for c in script.to_signal() if isinstance(c, RequestContract)]
    assert len(requests) == 1
    return requests[0]


def test_a_short_signal_asks_for_a_same_day_put_by_the_profiles_strike_rule() -> None:
    script = scripted(option_profile(strike="otm = 2"))
    request = requested(script)
    assert request.right is OptionRight.PUT
    assert request.expiry == date(2024, 7, 29)
    assert request.strike_rule == "otm = 2"
    assert request.spot == Decimal("97.5")
    assert request.request_id == "ict-QQQ-202407291335s-puts"
    # nothing is ordered before the answer
    assert not submitted(script.commands)


def test_the_entry_is_a_limit_at_the_mid_sized_by_premium_and_capped() -> None:
    script = scripted(option_profile(max_contracts=100))
    request = requested(script)
    out = script.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote()))
    [entry] = submitted(out)
    # floor(100,000 x 3% / (0.54 x 100)) = 55 contracts
    assert (entry.symbol, entry.side, entry.qty) == (PUT, Side.BUY, 55)
    assert (entry.type, entry.limit_price, entry.position_intent) == (
        OrderType.LIMIT,
        Decimal("0.52"),
        "buy_to_open",
    )
    view = [c for c in out if isinstance(c, TradeUpdated)][-1].trade
    assert view.option is not None and view.option.source is PremiumSource.MODEL
    assert view.option.underlying_target == Decimal("83.50")  # 97.50 - 5 x 2.8


def test_contracts_and_premium_caps_cut_the_size_and_say_so() -> None:
    script = scripted(option_profile(max_contracts=100, max_premium=Decimal(1000)))
    request = requested(script)
    out = script.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote()))
    [entry] = submitted(out)
    assert entry.qty == 18  # floor(1000 / 54)
    [reduced] = [c for c in out if isinstance(c, EntryReduced)]
    assert "option.max_premium 1000" in reduced.cuts
    assert rendered([reduced])[0].message.startswith("puts entry reduced from 55 to 18 contracts")
    ask_priced = scripted(option_profile(entry_price=OptionEntryPrice.ASK))
    request = requested(ask_priced)
    out = ask_priced.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote()))
    [entry] = submitted(out)
    assert (entry.qty, entry.limit_price) == (10, Decimal("0.54"))  # max_contracts default 10


def test_a_wrong_or_missing_contract_skips_the_entry_with_the_reason() -> None:
    script = scripted(option_profile())
    request = requested(script)
    call = "QQQ240729C00097000"
    out = script.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote(call)))
    [skip] = [c for c in out if isinstance(c, EntrySkipped)]
    assert "not a put" in skip.reason and not submitted(out)
    other = scripted(option_profile())
    request = requested(other)
    out = other.send(ContractUnavailable(SIGNAL_CLOSE_TIME, request.request_id, "no chain"))
    [skip] = [c for c in out if isinstance(c, EntrySkipped)]
    assert skip.reason == "no contract: no chain"
    crossed = scripted(option_profile())
    request = requested(crossed)
    bad = quote(bid="0.60", ask="0.54")
    out = crossed.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, bad))
    assert "no usable market" in next(c for c in out if isinstance(c, EntrySkipped)).reason


def test_an_answer_after_the_kill_switch_opens_nothing() -> None:
    script = scripted(option_profile())
    request = requested(script)
    script.send(KillSwitch(SIGNAL_CLOSE_TIME, "stop", "test"))
    out = script.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote()))
    assert not submitted(out)


def entered(**rules: object) -> tuple[Script, str]:
    script = scripted(option_profile(**rules))
    request = requested(script)
    [entry] = submitted(script.send(ContractQuoted(FILL_TIME, request.request_id, quote())))
    return script, entry.client_order_id


def test_an_unfilled_entry_is_cancelled_after_its_timeout_and_what_filled_stays() -> None:
    script, entry = entered(entry_timeout_minutes=3)
    assert not [c for c in script.send(Tick(FILL_TIME + minutes(2))) if isinstance(c, CancelOrder)]
    script.fill(entry, 4, "0.52", complete=False)
    [cancel] = [c for c in script.send(Tick(FILL_TIME + minutes(3))) if isinstance(c, CancelOrder)]
    assert (cancel.client_order_id, cancel.reason) == (entry, "entry timeout")
    out = script.cancel_confirmed(entry, FILL_TIME + minutes(3))
    view = [c for c in out if isinstance(c, TradeUpdated)][-1].trade
    assert (view.status, view.qty) == ("open", 4)


def test_the_underlying_target_closes_the_contract_at_market_on_a_close_beyond_it() -> None:
    script, entry = entered()
    out = script.fill(entry, 10, "0.52")
    assert not submitted(out)  # no resting order: the target is judged on the underlying
    [bar] = session_bars(date(2024, 7, 29), [(84.0, 84.0, 83.0, 83.6)])
    above = bar._replace(time=FILL_TIME + minutes(4))
    assert not submitted(script.engine.on_bar(above))  # 83.60 has not reached 83.50
    beyond = bar._replace(time=FILL_TIME + minutes(5), close=83.5)
    exits = submitted(script.engine.on_bar(beyond))
    assert [(o.leg, o.side, o.qty, o.type, o.position_intent) for o in exits] == [
        (Leg.EXIT, Side.SELL, 10, OrderType.MARKET, "sell_to_close")
    ]


def test_a_premium_target_rests_as_a_limit_sell_at_the_entry_plus_the_percent() -> None:
    script, entry = entered(target=OptionTarget.PREMIUM, premium_target_pct=Decimal(50))
    [target] = submitted(script.fill(entry, 10, "0.52"))
    assert (target.leg, target.side, target.type) == (Leg.TARGET, Side.SELL, OrderType.LIMIT)
    assert target.limit_price == Decimal("0.78")
    assert target.position_intent == "sell_to_close" and target.oco_group is None
    out = script.fill(target, 10, "0.78")
    view = [c for c in out if isinstance(c, TradeUpdated)][-1].trade
    assert view.pnl == Decimal("260.00")  # (0.78 - 0.52) x 10 x 100
    assert view.exit_reason is ExitReason.TARGET


def test_the_flatten_time_closes_an_option_trade_before_alpacas_cutoff() -> None:
    script, entry = entered()
    flatten = datetime.combine(date(2024, 7, 29), time(19, 20), tzinfo=UTC)  # 15:20 ET
    # filled late, so the flatten comes before its time limit
    script.fill(entry, 10, "0.52", when=flatten - minutes(5))
    assert not submitted(script.send(Tick(flatten - timedelta(seconds=1))))
    [exit_order] = submitted(script.send(Tick(flatten)))
    assert (exit_order.leg, exit_order.position_intent) == (Leg.EXIT, "sell_to_close")
    view = [c for c in script.commands if isinstance(c, TradeUpdated)][-1].trade
    assert view.exit_reason is ExitReason.SESSION_END


def test_no_option_entry_whose_time_limit_would_pass_the_flatten() -> None:
    profile = option_profile(flatten_at=time(10, 0))  # 10:00 ET: 09:36 + 60 minutes is later
    script = scripted(profile)
    out = script.to_signal()
    [skip] = [c for c in out if isinstance(c, EntrySkipped)]
    assert "time limit would pass the option flatten time" in skip.reason
    assert not [c for c in out if isinstance(c, RequestContract)]


def test_a_contract_mark_feeds_the_daily_loss_limit() -> None:
    config = EngineConfig(
        profiles=(option_profile(),), risk=replace(RiskLimits(), daily_loss_limit=Decimal(300))
    )
    script = Script(config=config)
    script.equity(100_000)
    request = requested(script)
    [entry] = submitted(script.send(ContractQuoted(FILL_TIME, request.request_id, quote())))
    script.fill(entry, 10, "0.52")
    cheap = ContractQuote(
        PUT, FILL_TIME + minutes(1), Decimal("0.20"), Decimal("0.22"), PremiumSource.MODEL
    )
    out = script.send(ContractMarked(FILL_TIME + minutes(1), cheap))  # -0.31 x 1000 = -310
    assert [o for o in submitted(out) if o.leg is Leg.EXIT], "the loss limit should flatten"


def test_shares_and_option_profiles_trade_the_same_signal_side_by_side() -> None:
    shares = StrategyProfile("shares", Decimal("0.03"))
    script = scripted(shares, option_profile())
    out = script.to_signal()
    assert [o.symbol for o in submitted(out)] == ["QQQ"]
    assert len([c for c in out if isinstance(c, RequestContract)]) == 1


def test_option_rules_refuse_a_flatten_after_alpacas_cutoff() -> None:
    with pytest.raises(ConfigError, match="15:30"):
        OptionRules(flatten_at=time(15, 40))
    with pytest.raises(ConfigError, match=r"option\.max_contracts"):
        OptionRules(max_contracts=0)


def test_a_restarted_engine_keeps_managing_an_option_trade_from_the_ledger(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "options.db")
    recorder = Recorder()
    first = scripted(option_profile(target=OptionTarget.UNDERLYING))
    kernel = Kernel(first.engine, recorder, store=store)
    kernel.dispatch(first.to_signal())
    [entry] = recorder.submitted
    store.record_order(entry)  # as a shell's executor does before sending
    kernel.deliver(
        OrderFilled(FILL_TIME, entry.client_order_id, "b-1", "x-1", 5, Decimal("1.05"), 5, True)
    )
    store.commit()
    ledger = store.load_ledger()
    [view] = ledger.unfinished_trades()
    assert view.symbol == "QQQ240729P00097000" and view.option is not None
    assert view.option.source is PremiumSource.MODEL
    assert view.option.underlying_target == Decimal("83.50")
    [order] = [o for o in ledger.orders if o.request.leg is Leg.ENTRY]
    assert order.request.position_intent == "buy_to_open"
    store.close()

    second = scripted(option_profile(target=OptionTarget.UNDERLYING))
    second.engine.restore(ledger)
    assert second.engine.open_positions() == {"QQQ240729P00097000": 5}
    [bar] = session_bars(date(2024, 7, 29), [(84.0, 84.0, 83.0, 83.4)])
    exits = submitted(second.engine.on_bar(bar._replace(time=FILL_TIME + minutes(3))))
    assert [(o.side, o.qty, o.position_intent) for o in exits] == [(Side.SELL, 5, "sell_to_close")]


def test_an_option_premium_above_a_loss_breaker_is_warned_about_when_settings_load(
    tmp_path: Path, sample_csv: Path
) -> None:
    settings = tmp_path / "options.toml"
    settings.write_text(
        '[[profiles]]\nname = "calls_puts"\nallocation = 0.01\ninstrument = "option"\n'
        "[profiles.option]\nmax_premium = 800\n"
    )

    def backtest(config: Path) -> str:
        args = ["backtest", "--data", str(sample_csv), "--config", str(config)]
        shown = CliRunner().invoke(app, args)
        assert shown.exit_code == 0, shown.output
        return " ".join(shown.stderr.split())

    warned = backtest(settings)
    assert "option.max_premium 800 is more than risk.rapid_loss 500" in warned
    assert "daily_loss_limit" not in warned  # 800 is within the default 1000
    quiet = tmp_path / "quiet.toml"
    quiet.write_text(settings.read_text().replace("800", "400"))
    assert "warning" not in backtest(quiet)


def test_option_entries_are_cut_to_the_options_buying_power_when_the_broker_gives_it() -> None:
    script = scripted(option_profile(max_contracts=100))
    script.send(
        AccountUpdated(
            SIGNAL_CLOSE_TIME,
            Decimal(100_000),
            Decimal(100_000),
            Decimal(200_000),  # margin: shares could use twice the cash…
            options_buying_power=Decimal(200),  # …premiums only what Alpaca says is free
        )
    )
    request = requested(script)
    out = script.send(ContractQuoted(SIGNAL_CLOSE_TIME, request.request_id, quote()))
    [entry] = submitted(out)
    assert entry.qty == 3  # floor(200 / 54)
    [reduced] = [c for c in out if isinstance(c, EntryReduced)]
    assert "buying power $200.00" in reduced.cuts
