"""The audit's parts on their own: Alpaca's history paged by time (and the emulator's `after` and
`until` it relies on), the side-by-side signals, the intervals, the run's settings read back,
the daily summary line, and the command's refusals (one line, exit code 2, no traceback)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alpaca.common.enums import Sort
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from typer.testing import CliRunner

from ict_trader.adapters.alpaca.emulator.paper import EmulatorOptions
from ict_trader.adapters.alpaca.emulator.server import EmulatorServer
from ict_trader.audit.bars import combine_bars, compare_bars
from ict_trader.audit.history import HistoryError, fetch_fills, fetch_orders
from ict_trader.audit.run_config import config_of_run
from ict_trader.audit.signals import compare_signals
from ict_trader.audit.stats import poisson_interval, rate_interval
from ict_trader.cli.app import app
from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.exits import StopMode
from ict_trader.core.strategy import ExitRules
from ict_trader.marketdata.barfile import BarFile, load_bars
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book
from ict_trader.reporting.daily_summary import daily_summary
from ict_trader.signals import Direction, Signal, detect_signals
from tests.alpaca_emulator import running_emulator, trading_client

START = 100  # 2024-07-29 11:10 New York: the market is open
runner = CliRunner()


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> BarFile:
    return load_bars(sample_csv)


def buy(client_order_id: str) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="QQQ",
        qty=1,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id=client_order_id,
    )


def place(server: EmulatorServer, ids: list[str], *, minute_apart: bool) -> list[datetime]:
    """Market orders filled at once; one a minute, or all in one minute."""
    client = trading_client(server)
    times = []
    for client_order_id in ids:
        order = client.submit_order(buy(client_order_id))
        assert isinstance(order, Order) and order.submitted_at is not None
        times.append(order.submitted_at)
        server.call(server.settle())
        if minute_apart:
            server.call(server.advance(1))
    return times


def test_orders_are_listed_by_submission_time_and_paged_past_every_one(sample: BarFile) -> None:
    """GET /v2/orders `after` and `until` are exclusive bounds on the submission time (the
    Trading API spec); the audit pages through the history with them, a page at a time."""
    options = EmulatorOptions(partial_fill_rate=0.0)
    with running_emulator(sample, start_bar=START, options=options) as server:
        ids = [f"minute-{n}" for n in range(7)]
        times = place(server, ids, minute_apart=True)
        client = trading_client(server)
        between = client.get_orders(
            GetOrdersRequest(
                status=QueryOrderStatus.ALL, after=times[2], until=times[5], direction=Sort.ASC
            )
        )
        paged = fetch_orders(client, times[0], times[-1] + timedelta(minutes=1), page=3)
        fills = fetch_fills(client, times[0], times[-1] + timedelta(minutes=1), page=2)
        later = fetch_orders(client, times[3], times[-1] + timedelta(minutes=1), page=3)
        tied = place(server, [f"tied-{n}" for n in range(4)], minute_apart=False)
        with pytest.raises(HistoryError, match="at least 3 orders share the submission time"):
            fetch_orders(client, tied[0], tied[0] + timedelta(minutes=1), page=3)
        whole_page = fetch_orders(client, tied[0], tied[0] + timedelta(minutes=1), page=5)
        activities = server.account.fill_activities()
    assert [o.client_order_id for o in between if isinstance(o, Order)] == ids[3:5]
    assert [o.client_order_id for o in paged] == ids  # every order once, oldest first
    assert [o.status for o in paged] == ["filled"] * 7
    assert [o.client_order_id for o in later] == ids[3:]  # `start` itself is inside the period
    assert [f.id for f in fills] == [a["id"] for a in activities[:7]]
    assert [f.order_id for f in fills] == [o.id for o in paged]
    assert sorted(o.client_order_id for o in whole_page) == [f"tied-{n}" for n in range(4)]


def signal(minute: int, direction: Direction = Direction.SHORT) -> Signal:
    moment = datetime(2024, 7, 30, 15, 0, tzinfo=UTC) + timedelta(minutes=minute)
    return Signal(moment, direction, 460.0, 0.4, 461.0, 459.5)


def test_signals_side_by_side() -> None:
    live = [signal(1), signal(30), signal(90, Direction.LONG), signal(200)]
    sip = [signal(1), signal(33), signal(90), signal(120, Direction.LONG)]
    audit = compare_signals(live, sip)
    rows = [(p.status, p.direction, p.live, p.sip) for p in audit.pairs]
    assert rows == [
        ("same", "short", signal(1).time, signal(1).time),
        ("shifted", "short", signal(30).time, signal(33).time),
        ("missing", "short", None, signal(90).time),
        ("extra", "long", signal(90).time, None),  # another direction is another signal
        ("missing", "long", None, signal(120).time),
        ("extra", "short", signal(200).time, None),
    ]
    assert audit.as_json()["missing"] == 2 and audit.as_json()["extra"] == 2
    assert audit.differ and not compare_signals([signal(5)], [signal(5)]).differ


def test_signals_pair_only_within_their_symbol() -> None:
    """Two symbols' signals compared in one go: a DIA signal never pairs with IWM's, even at
    the same bar and in the same direction."""
    iwm = replace(signal(1), symbol="IWM")
    dia = replace(signal(1), symbol="DIA")
    audit = compare_signals([iwm], [dia, replace(signal(3), symbol="IWM")])
    assert [(p.symbol, p.status, p.live, p.sip) for p in audit.pairs] == [
        ("DIA", "missing", None, dia.time),
        ("IWM", "shifted", iwm.time, signal(3).time),
    ]
    assert audit.counts("DIA") == {"same": 0, "shifted": 0, "missing": 1, "extra": 0}
    assert audit.differ_on("IWM") and audit.as_json()["pairs"][0]["symbol"] == "DIA"


def test_bars_of_several_symbols_add_up() -> None:
    at = datetime(2024, 7, 30, 15, 0, tzinfo=UTC)

    def bar(minute: int, close: float, volume: float) -> Bar:
        return Bar(at + timedelta(minutes=minute), close, close + 1, close - 1, close, volume)

    one = compare_bars([bar(0, 10.0, 1)], [bar(0, 10.5, 10), bar(1, 10.0, 10)])
    other = compare_bars([bar(0, 20.0, 3), bar(1, 20.0, 3)], [bar(0, 20.1, 100), bar(1, 20.0, 100)])
    total = combine_bars([one, other])
    assert total is not None
    assert (total.minutes, total.missing_live, total.different) == (4, 1, 2)
    assert total.max_close_difference == pytest.approx(0.5)
    assert total.mean_close_difference == pytest.approx((0.5 + 0.1 + 0.0) / 3)
    assert total.volume_share == pytest.approx((1 + 3 + 3) / (10 + 100 + 100))
    assert combine_bars([one]) is one and combine_bars([]) is None


def test_a_swing_high_iex_did_not_print_loses_the_signal_sip_has(sample: BarFile) -> None:
    """A synthetic IEX/SIP difference, the kind the emulator's IEX model makes: the 2024-07-30
    11:01 short starts when the 10:46 bar sweeps the 10:40 swing high (462.48 on SIP) and closes
    back below it. If IEX's highest print in the 10:40 minute was five cents lower (inside SIP's
    range, as an IEX bar always is), that level is taken without a close back below it, and the
    setup never starts on the live feed."""
    bars = sample.bars[: 390 * 2]
    at = datetime(2024, 7, 30, 14, 40, tzinfo=UTC)
    sip_signals = [s for s in detect_signals(bars, sample.calendar) if s.time.day == 30]
    assert [(s.time, s.direction) for s in sip_signals] == [
        (datetime(2024, 7, 30, 15, 1, tzinfo=UTC), Direction.SHORT)
    ]
    live = [b._replace(high=462.43) if b.time == at else b for b in bars]
    (original,) = [b for b in bars if b.time == at]
    assert original.high == 462.48 and max(original.open, original.close) < 462.43
    live_signals = [s for s in detect_signals(live, sample.calendar) if s.time.day == 30]
    audit = compare_signals(live_signals, sip_signals)
    assert [(p.status, p.live, p.sip) for p in audit.pairs] == [
        ("missing", None, sip_signals[0].time)
    ]


def test_garwoods_exact_poisson_interval() -> None:
    # the published values (e.g. Garwood 1936; any table of exact Poisson limits)
    for count, low, high in ((0, 0.0, 3.689), (1, 0.0253, 5.572), (10, 4.795, 18.390)):
        got = poisson_interval(count)
        assert got[0] == pytest.approx(low, abs=5e-4) and got[1] == pytest.approx(high, abs=5e-4)
    assert rate_interval(2, 2.0) == pytest.approx((0.1211, 3.6123), abs=5e-4)
    assert rate_interval(2, 0.0) is None


def test_the_runs_settings_are_read_back_as_they_were() -> None:
    base = AppConfig()
    changed = replace(
        base,
        signal=base.signal.with_overrides({"require_fvg": False, "displacement_atr": 0.8}),
        engine=replace(base.engine, exits=ExitRules(stop=StopMode.ATR, max_hold_minutes=45)),
    )
    recorded = json.loads(json.dumps(changed.describe()))  # as the store keeps it
    assert config_of_run(recorded).describe() == changed.describe()


def test_the_audit_line_ends_the_daily_summary() -> None:
    at = datetime(2024, 7, 30, 20, 0, tzinfo=UTC)
    line = "audit: 4 of 4 orders and 4 fills match Alpaca, no differences"
    assert daily_summary(Book(()), date(2024, 7, 30), at, line).message == (
        "0 trades, 0 wins, P&L +0.00 · " + line
    )
    assert daily_summary(Book(()), date(2024, 7, 30), at).message == "0 trades, 0 wins, P&L +0.00"


def stores(tmp_path: Path) -> tuple[Path, Path]:
    replayed, paper = tmp_path / "replay.db", tmp_path / "paper.db"
    for path, mode in ((replayed, "replay"), (paper, "paper")):
        store = Store(path)
        store.start_run(mode, None, AppConfig().describe())
        store.commit()
        store.close()
    return replayed, paper


def test_the_command_refuses_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    replayed, paper = stores(tmp_path)
    none = {"ALPACA_API_KEY": "", "ALPACA_API_SECRET": ""}
    attempts = [
        (["--db", str(tmp_path / "missing.db"), "--alpaca-url", "http://127.0.0.1:9"], "no such"),
        (["--db", str(replayed), "--alpaca-url", "http://127.0.0.1:9"], "holds a replay run"),
        (["--db", str(paper), "--from", "2024-08-02", "--to", "2024-08-01"], "is after --to"),
        (["--db", str(paper)], "needs Alpaca credentials"),
        (["--db", str(paper), "--alpaca-url", "ftp://nowhere"], "--alpaca-url"),
        (["--db", str(paper), "--alpaca-url", "http://127.0.0.1:9"], "cannot reach Alpaca"),
        (["--db", str(paper), "--from", "yesterday"], "--from"),
        (["--db", str(paper), "--json", str(tmp_path / "no" / "a.json")], "--json"),
    ]
    for args, said in attempts:
        result = runner.invoke(app, ["audit", *args], env=none)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
        assert said in lines[0], (args, lines[0])
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "missing.db").exists()
