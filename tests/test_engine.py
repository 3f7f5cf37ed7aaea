"""The pure engine on scripted event sequences: sizing, skips, exits, races, retries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from ict_trader.core.events import (
    CancelOrder,
    EntrySkipped,
    ExitReason,
    KillSwitch,
    OrderRejected,
    Resume,
    SignalDetected,
    SubmitOrder,
    Tick,
    TradeUpdated,
)
from ict_trader.core.exits import StopMode
from ict_trader.core.orders import (
    MAX_CLIENT_ORDER_ID,
    Leg,
    OrderType,
    Side,
    client_order_id,
    trade_id,
)
from ict_trader.core.strategy import EngineConfig, ExitRules, StrategyProfile
from tests.engine_script import FILL_TIME, Script, minutes, rendered, submitted


def opened(exits: ExitRules | None = None) -> tuple[Script, list[SubmitOrder]]:
    """A script whose two entries (30 and 41 shares short) have filled at 97.60."""
    script = Script(exits=exits)
    script.equity()
    entries = submitted(script.to_signal())
    for entry in entries:
        script.fill(entry, entry.qty, "97.60")
    targets = [
        c for c in script.commands if isinstance(c, SubmitOrder) and c.order.leg is Leg.TARGET
    ]
    return script, targets


def last_trade(script: Script, profile: str) -> TradeUpdated:
    return [
        c for c in script.commands if isinstance(c, TradeUpdated) and c.trade.profile == profile
    ][-1]


def test_every_profile_sizes_from_equity() -> None:
    script = Script()
    script.equity(100_000)
    commands = script.to_signal()
    assert isinstance(commands[0], SignalDetected)
    entries = submitted(commands)
    # floor(100,000 x 3% / 97.50) = 30, floor(100,000 x 4% / 97.50) = 41
    assert [(o.profile, o.side, o.qty, o.type) for o in entries] == [
        ("conservative", Side.SELL, 30, OrderType.MARKET),
        ("aggressive", Side.SELL, 41, OrderType.MARKET),
    ]
    assert [o.client_order_id for o in entries] == [
        "ict-QQQ-202407291335s-conservative-entry",
        "ict-QQQ-202407291335s-aggressive-entry",
    ]


def test_no_equity_or_zero_shares_is_skipped_with_a_reason() -> None:
    unknown = Script()
    skips = [c for c in unknown.to_signal() if isinstance(c, EntrySkipped)]
    assert [(s.profile, s.reason) for s in skips] == [
        ("conservative", "account equity not known yet"),
        ("aggressive", "account equity not known yet"),
    ]
    poor = Script()
    poor.equity(3_000)  # 3% = $90 < one share at 97.50; 4% = $120 buys one
    commands = poor.to_signal()
    skips = [c for c in commands if isinstance(c, EntrySkipped)]
    assert [s.profile for s in skips] == ["conservative"]
    assert skips[0].reason.startswith("0 shares")
    assert [o.qty for o in submitted(commands)] == [1]


def test_entry_fill_places_the_target_rounded_away_from_the_entry() -> None:
    script, targets = opened()
    # short: 97.60 - 5 x 2.8 = 83.60 (ATR 2.7999999999999970 -> 83.600000000000015 -> floor)
    assert [(t.order.side, t.order.qty, t.order.limit_price) for t in targets] == [
        (Side.BUY, 30, Decimal("83.60")),
        (Side.BUY, 41, Decimal("83.60")),
    ]
    notices = rendered(script.commands)
    assert notices[0].message == (
        "CONSERVATIVE entry — SHORT 30 QQQ @ 97.60 · "
        "order b-ict-QQQ-202407291335s-conservative-entry · target 83.60"
    )  # the broker's order id, the one a user finds in the broker's app


def test_time_exit_cancels_the_target_then_closes_after_the_confirmation() -> None:
    script, targets = opened()
    assert script.send(Tick(FILL_TIME + minutes(59))) == []
    commands = script.send(Tick(FILL_TIME + minutes(60)))
    target_ids = [t.order.client_order_id for t in targets]
    assert [c.client_order_id for c in commands if isinstance(c, CancelOrder)] == target_ids
    assert submitted(commands) == []  # no market order while the target still holds the shares
    after_cancel = script.cancel_confirmed(target_ids[0], FILL_TIME + minutes(60))
    (exit_order,) = submitted(after_cancel)
    assert (exit_order.leg, exit_order.side, exit_order.qty) == (Leg.EXIT, Side.BUY, 30)
    assert exit_order.client_order_id == "ict-QQQ-202407291335s-conservative-exit"
    script.fill(exit_order, 30, "97.10", FILL_TIME + minutes(61))
    trade = last_trade(script, "conservative").trade
    assert (trade.status, trade.exit_reason, trade.pnl) == (
        "closed",
        ExitReason.TIME,
        Decimal("15.00"),
    )


def test_target_filling_while_its_cancel_is_pending_wins() -> None:
    script, targets = opened()
    script.send(Tick(FILL_TIME + minutes(60)))
    target = targets[0].order
    commands = script.fill(target, 30, "83.60", FILL_TIME + minutes(60))
    assert submitted(commands) == []
    trade = last_trade(script, "conservative").trade
    assert (trade.status, trade.exit_reason, trade.pnl) == (
        "closed",
        ExitReason.TARGET,
        Decimal("420.00"),
    )
    assert script.cancel_confirmed(target.client_order_id, FILL_TIME + minutes(60)) == []


def test_partial_target_then_time_exit_closes_the_rest() -> None:
    script, targets = opened()
    target = targets[0].order
    script.fill(target, 10, "83.60", FILL_TIME + minutes(30), cumulative=10, complete=False)
    script.send(Tick(FILL_TIME + minutes(60)))
    (exit_order,) = submitted(
        script.cancel_confirmed(target.client_order_id, FILL_TIME + minutes(60))
    )
    assert exit_order.qty == 20
    script.fill(exit_order, 20, "97.00", FILL_TIME + minutes(61))
    trade = last_trade(script, "conservative").trade
    # 10 x (97.60 - 83.60) + 20 x (97.60 - 97.00) = 140 + 12
    assert (trade.status, trade.pnl) == ("closed", Decimal("152.00"))
    assert trade.exit_price == Decimal("92.5333")  # (836 + 1940) / 30, to 1/10000


def test_session_end_flattens_five_minutes_before_the_close() -> None:
    script, _ = opened(ExitRules(max_hold_minutes=600))  # the session ends first
    assert script.send(Tick(datetime(2024, 7, 29, 19, 54, tzinfo=UTC))) == []
    closing = script.send(Tick(datetime(2024, 7, 29, 19, 55, tzinfo=UTC)))
    cancels = [c for c in closing if isinstance(c, CancelOrder)]
    assert len(cancels) == 2
    assert all(c.reason == "session_end exit" for c in cancels)


def test_early_close_day_flattens_at_12_55() -> None:
    script = Script(exits=ExitRules(max_hold_minutes=600))
    script.equity()
    entries = submitted(script.to_signal(date(2024, 11, 29)))  # NYSE closes at 13:00
    entry_time = datetime(2024, 11, 29, 14, 36, tzinfo=UTC)
    for entry in entries:
        script.fill(entry, entry.qty, "97.60", entry_time)
    assert script.send(Tick(datetime(2024, 11, 29, 17, 54, tzinfo=UTC))) == []
    closing = script.send(Tick(datetime(2024, 11, 29, 17, 55, tzinfo=UTC)))  # 12:55 New York
    assert [c.reason for c in closing if isinstance(c, CancelOrder)] == ["session_end exit"] * 2


def test_rejected_exit_is_retried_with_a_new_id() -> None:
    script, targets = opened()
    script.send(Tick(FILL_TIME + minutes(60)))
    (exit_order,) = submitted(script.cancel_confirmed(targets[0].order.client_order_id, FILL_TIME))
    retry = script.send(OrderRejected(FILL_TIME, exit_order.client_order_id, "insufficient qty"))
    (second,) = submitted(retry)
    assert second.client_order_id == "ict-QQQ-202407291335s-conservative-exit2"
    assert second.qty == 30
    assert any("rejected" in n.title for n in rendered(retry))


def test_rejected_entry_frees_the_profile() -> None:
    script = Script()
    script.equity()
    entries = submitted(script.to_signal())
    script.send(OrderRejected(FILL_TIME, entries[0].client_order_id, "insufficient buying power"))
    assert last_trade(script, "conservative").trade.status == "canceled"
    assert [t.profile for t in script.engine.open_trades] == ["aggressive"]


def test_duplicate_execution_is_ignored() -> None:
    script, targets = opened()
    target = targets[0].order
    script.fill(target, 10, "83.60", cumulative=10, complete=False, execution_id="dup")
    assert script.fill(target, 10, "83.60", cumulative=10, complete=False, execution_id="dup") == []
    trade = next(t for t in script.engine.open_trades if t.profile == "conservative")
    assert trade.qty == 30 and trade.exit_price == Decimal("83.6000")


def test_stop_modes_place_an_oco_stop() -> None:
    for mode, expected in ((StopMode.SWEEP, Decimal("102.50")), (StopMode.ATR, Decimal("103.20"))):
        script = Script(exits=ExitRules(stop=mode, stop_atr_multiple=Decimal(2)))
        script.equity()
        entries = submitted(script.to_signal())
        commands = script.fill(entries[0], entries[0].qty, "97.60")
        target, stop = submitted(commands)
        assert (stop.leg, stop.type, stop.side, stop.stop_price) == (
            Leg.STOP,
            OrderType.STOP,
            Side.BUY,
            expected,
        )
        assert stop.oco_group == target.oco_group == "ict-QQQ-202407291335s-conservative"
        # The stop fills: the target is canceled and the trade closes as a stop.
        after = script.fill(stop, stop.qty, str(expected))
        assert [c.client_order_id for c in after if isinstance(c, CancelOrder)] == [
            target.client_order_id
        ]


def test_a_refused_stop_closes_the_position_at_market() -> None:
    """Alpaca answers 422 to an OCO whose stop the price has crossed, refusing both legs: the
    position must not stay open unprotected until the time exit."""
    script = Script(exits=ExitRules(stop=StopMode.SWEEP))
    script.equity()
    entries = submitted(script.to_signal())
    target, stop = submitted(script.fill(entries[0], entries[0].qty, "97.60"))
    reason = "stop price must be at least 0.01 above the base price"
    assert submitted(script.send(OrderRejected(FILL_TIME, target.client_order_id, reason))) == []
    (exit_order,) = submitted(script.send(OrderRejected(FILL_TIME, stop.client_order_id, reason)))
    assert (exit_order.leg, exit_order.type, exit_order.side, exit_order.qty) == (
        Leg.EXIT,
        OrderType.MARKET,
        Side.BUY,
        entries[0].qty,
    )
    script.fill(exit_order, exit_order.qty, "102.60")
    closed = last_trade(script, "conservative").trade
    assert (closed.status, closed.exit_reason) == ("closed", "stop")


def test_a_refused_stop_with_the_target_resting_cancels_the_target_first() -> None:
    script = Script(exits=ExitRules(stop=StopMode.SWEEP))
    script.equity()
    entries = submitted(script.to_signal())
    target, stop = submitted(script.fill(entries[0], entries[0].qty, "97.60"))
    after = script.send(OrderRejected(FILL_TIME, stop.client_order_id, "refused"))
    assert submitted(after) == []  # the target still holds the shares
    assert [c.client_order_id for c in after if isinstance(c, CancelOrder)] == [
        target.client_order_id
    ]
    (exit_order,) = submitted(script.cancel_confirmed(target.client_order_id, FILL_TIME))
    assert exit_order.qty == entries[0].qty


def test_the_same_events_give_the_same_commands() -> None:
    first, _ = opened()
    second, _ = opened()
    assert first.commands == second.commands


def test_client_order_ids_are_short_deterministic_and_distinct() -> None:
    moment = datetime(2024, 1, 4, 16, 30, tzinfo=UTC)
    symbols = ("QQQ", "IWM", "BRK.B", "ABCDEFGHIJ")
    profiles = ("conservative", "aggressive", "x" * 32, "x" * 31 + "y")
    ids = {
        client_order_id(trade_id(symbol, moment, direction, profile), leg, attempt)
        for symbol in symbols
        for direction in ("long", "short")
        for profile in profiles
        for leg in Leg
        for attempt in (1, 2, 13, 999)
    }
    assert len(ids) == 4 * 2 * 4 * 4 * 4
    assert all(len(i) <= MAX_CLIENT_ORDER_ID for i in ids)
    trade = trade_id("QQQ", moment, "short", "conservative")
    assert client_order_id(trade, Leg.ENTRY) == "ict-QQQ-202401041630s-conservative-entry"
    assert client_order_id(trade, Leg.EXIT, 2) == "ict-QQQ-202401041630s-conservative-exit2"
    # Every leg of a trade whose profile name had to be shortened shares one stem.
    long_trade = trade_id("ABCDEFGHIJ", moment, "long", "x" * 32)
    assert "~" in long_trade
    assert {client_order_id(long_trade, leg).rsplit("-", 1)[0] for leg in Leg} == {long_trade}


def test_disabled_profiles_do_not_trade() -> None:
    config = EngineConfig(
        profiles=(
            StrategyProfile("conservative", Decimal("0.03")),
            replace(StrategyProfile("aggressive", Decimal("0.04")), enabled=False),
        )
    )
    script = Script(config=config)
    script.equity()
    assert [o.profile for o in submitted(script.to_signal())] == ["conservative"]


def test_kill_switch_flattens_and_blocks_entries_until_resumed() -> None:
    script, targets = opened()
    kill = script.send(KillSwitch(FILL_TIME + minutes(5), "manual test", "cli"))
    assert [c.client_order_id for c in kill if isinstance(c, CancelOrder)] == [
        t.order.client_order_id for t in targets
    ]
    assert any(n.level.value == "critical" for n in rendered(kill))
    assert script.engine.halted
    (exit_order,) = submitted(script.cancel_confirmed(targets[0].order.client_order_id, FILL_TIME))
    assert (exit_order.side, exit_order.qty) == (Side.BUY, 30)
    script.fill(exit_order, 30, "97.50", FILL_TIME + minutes(6))
    assert last_trade(script, "conservative").trade.exit_reason is ExitReason.KILL

    blocked = Script()
    blocked.equity()
    blocked.send(KillSwitch(FILL_TIME, "before the signal", "test"))
    skips = [c for c in blocked.to_signal() if isinstance(c, EntrySkipped)]
    assert [s.reason for s in skips] == ["kill switch engaged: before the signal"] * 2
    blocked.send(Resume(FILL_TIME, "checked", "test"))
    assert not blocked.engine.halted


def test_kill_while_the_entry_is_working_cancels_it() -> None:
    script = Script()
    script.equity()
    entries = submitted(script.to_signal())
    kill = script.send(KillSwitch(FILL_TIME, "now", "test"))
    assert [c.client_order_id for c in kill if isinstance(c, CancelOrder)] == [
        e.client_order_id for e in entries
    ]
    # The conservative entry filled before the cancel landed: it is closed at once.
    (exit_order,) = submitted(script.fill(entries[0], 30, "97.60"))
    assert (exit_order.leg, exit_order.qty) == (Leg.EXIT, 30)
    script.cancel_confirmed(entries[1].client_order_id, FILL_TIME)
    assert last_trade(script, "aggressive").trade.status == "canceled"
