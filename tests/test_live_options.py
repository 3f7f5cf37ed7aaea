"""The live shell's option duties: the contract desk answers the engine's requests, held
contracts are marked once a bar, and an option entry from Alpaca's expiry-day cut-off is
refused before it leaves (exits still go). Alpaca is the canned loopback server; the engine is
the scripted one with a real signal."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from alpaca.data.historical import StockHistoricalDataClient

from ict_trader.adapters.alpaca.broker import AlpacaBroker
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.contracts import ContractQuote, PremiumSource
from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    ContractMarked,
    ContractQuoted,
    ContractUnavailable,
    OrderRejected,
    RequestContract,
)
from ict_trader.core.instruments import OptionRight
from ict_trader.core.orders import Leg, OrderRequest, OrderType, Side
from ict_trader.core.strategy import EngineConfig, InstrumentChoice, OptionRules, StrategyProfile
from ict_trader.persistence.store import Store
from ict_trader.runtime.kernel import Seen
from ict_trader.runtime.live import LiveEndpoints, LiveShell
from ict_trader.runtime.live_options import entry_cutoff, refused_entry
from tests.canned_alpaca import KEY, SECRET, Canned, canned_alpaca
from tests.engine_script import SIGNAL_CLOSE_TIME, Script, submitted
from tests.test_signal_rules import CALENDAR

PUT = "QQQ240729P00097000"  # the scripted signal: short at 97.50 on 2024-07-29


def at(hour: int, minute: int, day: int = 29) -> datetime:
    """A moment on 2024-07-<day>, New York wall time (EDT, UTC-4)."""
    return datetime(2024, 7, day, hour + 4, minute, tzinfo=UTC)


def entry(symbol: str = PUT, leg: Leg = Leg.ENTRY, when: datetime | None = None) -> OrderRequest:
    side = Side.BUY if leg is Leg.ENTRY else Side.SELL
    return OrderRequest(
        client_order_id=f"ict-QQQ-202407291930s-puts-{leg.value}",
        symbol=symbol,
        side=side,
        qty=2,
        type=OrderType.LIMIT if leg is Leg.ENTRY else OrderType.MARKET,
        trade_id="ict-QQQ-202407291930s-puts",
        profile="puts",
        leg=leg,
        limit_price=Decimal("0.52") if leg is Leg.ENTRY else None,
        created_at=when or at(15, 31),
        position_intent="buy_to_open" if leg is Leg.ENTRY else "sell_to_close",
    )


def test_the_cutoff_is_half_an_hour_before_the_close_and_only_for_todays_option_entries() -> None:
    assert entry_cutoff(CALENDAR, at(10, 0)) == at(15, 30)
    assert refused_entry(entry(when=at(15, 29)), CALENDAR, at(15, 29)) is None
    reason = refused_entry(entry(), CALENDAR, at(15, 30))
    assert reason is not None and "option entry cut-off" in reason and "from 15:30" in reason
    assert refused_entry(entry(leg=Leg.EXIT), CALENDAR, at(15, 50)) is None  # exits still go
    tomorrow = "QQQ240730P00097000"
    assert refused_entry(entry(tomorrow), CALENDAR, at(15, 45)) is None  # not expiring today
    assert refused_entry(entry("QQQ"), CALENDAR, at(15, 45)) is None  # shares: no such rule


def test_on_an_early_close_the_cutoff_moves_with_the_close() -> None:
    calendar = NyseCalendar.covering(
        datetime(2024, 11, 25, tzinfo=UTC), datetime(2024, 12, 3, tzinfo=UTC)
    )
    friday = datetime(2024, 11, 29, 17, 0, tzinfo=UTC)  # 12:00 New York, close at 13:00
    assert entry_cutoff(calendar, friday) == datetime(2024, 11, 29, 17, 30, tzinfo=UTC)
    late = entry("QQQ241129P00097000", when=datetime(2024, 11, 29, 17, 30, tzinfo=UTC))
    assert refused_entry(late, calendar, datetime(2024, 11, 29, 17, 30, tzinfo=UTC)) is not None


@dataclass
class FakeDesk:
    """The core's ContractDesk protocol (ours, not alpaca-py's): answers and marks on demand."""

    marks: dict[str, ContractQuote] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def quote_contract(self, request: RequestContract) -> ContractQuoted | ContractUnavailable:
        quote = ContractQuote(
            PUT, request.time, Decimal("0.50"), Decimal("0.54"), PremiumSource.BROKER, -0.4, 0.3
        )
        return ContractQuoted(request.time, request.request_id, quote)

    def quote(self, symbol: str, at: datetime) -> ContractQuote | None:
        self.asked.append(symbol)
        return self.marks.get(symbol)


@contextmanager
def shell_on(
    engine: Engine, tmp_path: Path, desk: FakeDesk | None
) -> Iterator[tuple[LiveShell, Canned, list[Seen]]]:
    canned = Canned()
    seen: list[Seen] = []
    with canned_alpaca(canned) as url:
        store = Store(tmp_path / "live.db")
        shell = LiveShell(
            engine,
            AlpacaBroker(KEY, SECRET, url_override=url, sleep=lambda s: None),
            store,
            StockHistoricalDataClient(KEY, SECRET, url_override=url),
            CALENDAR,
            api_key=KEY,
            secret_key=SECRET,
            endpoints=LiveEndpoints(rest_url=url),
            observer=seen.append,
            desk=desk,
        )
        try:
            yield shell, canned, seen
        finally:
            store.close()


def options_engine() -> Script:
    profile = StrategyProfile(
        "puts", Decimal("0.03"), instrument=InstrumentChoice.OPTION, option=OptionRules()
    )
    script = Script(config=EngineConfig(profiles=(profile,)))
    script.equity(100_000)
    return script


def posted(canned: Canned) -> list[str]:
    return [str(s.body["client_order_id"]) for s in canned.calls("/v2/orders") if s.body]


def test_an_option_entry_from_the_cutoff_is_refused_locally_and_an_exit_still_goes(
    tmp_path: Path,
) -> None:
    with shell_on(options_engine().engine, tmp_path, None) as (shell, canned, seen):
        shell.stats.last_bar = at(15, 30)  # the 15:30 bar is in: it is 15:31
        late = entry()
        shell.submit(late)
        assert posted(canned) == []
        [refused] = [e for e in seen if isinstance(e, OrderRejected)]
        assert refused.client_order_id == late.client_order_id
        assert "option entry cut-off" in refused.reason
        shell.store.commit()  # as the loop does after each pass
        with sqlite3.connect(tmp_path / "live.db") as db:
            (status,) = db.execute(
                "SELECT status FROM orders WHERE client_order_id = ?", (late.client_order_id,)
            ).fetchone()
        assert status == "rejected"  # recorded, and why, for the person reading the ledger
        shell.submit(entry(leg=Leg.EXIT))
        assert posted(canned) == ["ict-QQQ-202407291930s-puts-exit"]


def test_an_option_entry_before_the_cutoff_is_sent(tmp_path: Path) -> None:
    with shell_on(options_engine().engine, tmp_path, None) as (shell, canned, _):
        shell.stats.last_bar = at(15, 28)
        shell.submit(entry(when=at(15, 29)))
        assert posted(canned) == ["ict-QQQ-202407291930s-puts-entry"]


def test_the_engines_contract_request_is_answered_by_the_desk(tmp_path: Path) -> None:
    request = RequestContract(
        SIGNAL_CLOSE_TIME, "t", "QQQ", OptionRight.PUT, date(2024, 7, 29), "atm", Decimal(97)
    )
    with shell_on(options_engine().engine, tmp_path, None) as (shell, _, _):
        answer = shell.quote_contract(request)
        assert isinstance(answer, ContractUnavailable)
        assert answer.reason == "this live shell has no option contract desk"
    with shell_on(options_engine().engine, tmp_path, FakeDesk()) as (shell, _, _):
        answer = shell.quote_contract(request)
        assert isinstance(answer, ContractQuoted) and answer.quote.symbol == PUT


def test_held_contracts_are_marked_once_a_bar_with_the_desks_quote(tmp_path: Path) -> None:
    script = options_engine()
    [request] = [c for c in script.to_signal() if isinstance(c, RequestContract)]
    desk = FakeDesk()
    [order] = submitted(script.send(desk.quote_contract(request)))
    script.fill(order, order.qty, "0.52")
    assert script.engine.open_positions() == {PUT: order.qty}
    mark = ContractQuote(
        PUT, SIGNAL_CLOSE_TIME, Decimal("0.30"), Decimal("0.34"), PremiumSource.BROKER
    )
    desk.marks[PUT] = mark
    with shell_on(script.engine, tmp_path, desk) as (shell, _, seen):
        close = at(9, 40)
        shell._mark_contracts(close)
        shell._mark_contracts(close)  # a second symbol's bar of the same minute: no new call
        marked = [e for e in seen if isinstance(e, ContractMarked)]
        assert marked == [ContractMarked(close, mark)]
        assert desk.asked == [PUT]
        # status and the dashboard value the contract at the mark's mid
        assert shell.store.last_closes()[PUT] == Decimal("0.32")
        desk.marks.clear()  # no usable quote: nothing delivered, the last mark stands
        shell._mark_contracts(at(9, 41))
        assert desk.asked == [PUT, PUT]
        assert len([e for e in seen if isinstance(e, ContractMarked)]) == 1


def test_nothing_is_asked_while_no_contract_is_held(tmp_path: Path) -> None:
    desk = FakeDesk()
    with shell_on(options_engine().engine, tmp_path, desk) as (shell, _, seen):
        shell._mark_contracts(at(9, 40))
    assert desk.asked == []
    assert not [e for e in seen if isinstance(e, ContractMarked)]
