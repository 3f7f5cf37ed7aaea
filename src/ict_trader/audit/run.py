"""`run_audit`: one paper or live store against Alpaca, for a period of New York dates.

1. Orders and fills (`audit.orders`): the ledger's orders created in the period against
   Alpaca's order history and FILL activities of the period.
2. Bars and signals (`audit.bars`, `audit.signals`): the live bars the bot recorded against SIP
   bars of the same minutes, fetched from Alpaca; the detector, with the run's own parameters,
   run on each over the same sessions — those the store has bars of, from the session before
   the first audited one (its warm-up) when the store has it — and the signals of the audited
   sessions paired up. Only sessions the bot has bars for are compared, and only up to the SIP
   cut-off (the free plan has no SIP for the latest 15 minutes).
3. Fills against the backtest (`audit.slippage`) and expectation (`audit.expectation`): the run's
   settings backtested on the SIP bars; each live trade's fills against the simulated ones; the
   live figures next to the backtest's for the same sessions and minutes.

Reading only: nothing is sent to Alpaca but reads, and the store is only read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Clock

from ict_trader.audit.bars import compare_bars
from ict_trader.audit.expectation import figures, weeks_of
from ict_trader.audit.history import HistoryError, fetch_fills, fetch_orders, fetch_sip_bars
from ict_trader.audit.orders import compare_orders
from ict_trader.audit.report import AuditReport
from ict_trader.audit.run_config import config_of_run
from ict_trader.audit.signals import compare_signals
from ict_trader.audit.slippage import slippage_of
from ict_trader.config import AppConfig
from ict_trader.core.calendar import NEW_YORK, NyseCalendar, Session
from ict_trader.core.engine import signal_id
from ict_trader.core.events import TradeView
from ict_trader.errors import ConfigError
from ict_trader.persistence.store import Store
from ict_trader.runtime.backtest import run_backtest
from ict_trader.signals import Signal, detect_signals


class AuditError(RuntimeError):
    """The audit cannot be made (no live run in the store, Alpaca unreachable or refusing)."""


@dataclass(frozen=True)
class Clients:
    """Alpaca's clients for the audit (the emulator's when `--alpaca-url` points at it)."""

    trading: TradingClient
    data: StockHistoricalDataClient


def run_audit(
    store: Store,
    clients: Clients,
    *,
    first_day: date | None = None,
    last_day: date | None = None,
    order_page: int = 500,
) -> AuditReport:
    """Audit `store` for [first_day, last_day] (New York dates; defaults: the store's first day
    with data, and Alpaca's today). Raises AuditError for what a person must fix."""
    run = store.last_run()
    if run is None or run["mode"] not in {"paper", "live"}:
        kind = "no run" if run is None else f"a {run['mode']} run"
        raise AuditError(
            f"{store.path} holds {kind}, not a paper or live one: nothing at Alpaca to audit"
        )
    try:
        config = config_of_run(run["config"])
    except ConfigError as exc:
        raise AuditError(f"{store.path}: {exc}") from None
    feed = str(run["config"].get("feed", "iex"))
    try:
        return _audit(
            store,
            clients,
            config,
            mode=run["mode"],
            feed=feed,
            first_day=first_day,
            last_day=last_day,
            order_page=order_page,
        )
    except APIError as exc:
        raise AuditError(broker_problem(exc)) from None
    except requests.RequestException as exc:
        raise AuditError(f"cannot reach Alpaca: {type(exc).__name__}") from None
    except HistoryError as exc:
        raise AuditError(str(exc)) from None


def broker_problem(exc: APIError) -> str:
    """Alpaca's refusal in one line, naming what to check."""
    if exc.status_code in {401, 403}:
        return (
            f"Alpaca refused the credentials (HTTP {exc.status_code}); check ALPACA_API_KEY/"
            "ALPACA_API_SECRET and that the store's run was paper or live as its keys are"
        )
    return f"Alpaca answered HTTP {exc.status_code}: {str(exc)[:200]}"


def _audit(
    store: Store,
    clients: Clients,
    config: AppConfig,
    *,
    mode: str,
    feed: str,
    first_day: date | None,
    last_day: date | None,
    order_page: int,
) -> AuditReport:
    if len(config.engine.symbols) != 1:
        raise AuditError(
            f"the audit compares one symbol's bars and signals; the settings trade "
            f"{', '.join(config.engine.symbols)}"
        )
    (symbol,) = config.engine.symbols
    clock = clients.trading.get_clock()
    assert isinstance(clock, Clock)
    now = clock.timestamp.astimezone(UTC)
    ledger = store.load_ledger()
    rows = store.orders()
    stored_days = [date.fromisoformat(day) for day in store.bar_days()]
    order_days = [_parse(str(r["created_at"])).astimezone(NEW_YORK).date() for r in rows]
    first = first_day or min([*stored_days, *order_days], default=now.astimezone(NEW_YORK).date())
    last = last_day or now.astimezone(NEW_YORK).date()
    if first > last:
        raise AuditError(f"--from {first} is after --to {last}")
    start = _midnight(first)
    day_after = _midnight(last + timedelta(days=1))  # orders: whole days (Alpaca's clock moves)
    end = min(day_after, now)  # bars: only completed minutes

    in_period = [
        str(r["client_order_id"]) for r in rows if start <= _parse(str(r["created_at"])) < day_after
    ]
    broker_orders = fetch_orders(clients.trading, start, day_after, page=order_page)
    activities = fetch_fills(clients.trading, start, day_after)
    orders = compare_orders(rows, ledger.fills, broker_orders, activities, in_period=in_period)
    report = AuditReport(
        generated_at=now,
        first_day=first,
        last_day=last,
        mode=mode,
        feed=feed,
        symbol=symbol,
        orders=orders,
    )

    calendar = NyseCalendar.covering(start - timedelta(days=10), end + timedelta(days=10))
    stored_set = set(stored_days)
    sessions = [
        s
        for s in calendar.sessions()
        if first <= s.day <= last and s.open < now and s.day in stored_set
    ]
    report.sessions = [s.day for s in sessions]
    profiles = [p.name for p in config.engine.profiles if p.enabled]
    if not sessions:
        report.notes.append("no live bars recorded in the period: bars and signals not compared")
        report.live = figures(0, 0.0, [], profiles)
        report.backtest = figures(0, 0.0, [], profiles)
        return report

    warm = _warm_up_start(calendar, sessions[0])
    live_bars = [b for b in store.bars_between(warm, end) if calendar.session_at(b.time)]
    if live_bars:  # both detectors start where the store's bars start: the same warm-up
        first_session = calendar.session_at(live_bars[0].time)
        assert first_session is not None
        warm = max(warm, first_session.open)

    def kept(moment: datetime) -> bool:
        """Regular hours of a session the store has bars of: both detectors see the same
        sessions (a bot down for a day has no bars of it, so neither does SIP's series)."""
        return (
            calendar.session_at(moment) is not None
            and moment.astimezone(NEW_YORK).date() in stored_set
        )

    sip = fetch_sip_bars(clients.data, symbol, warm, end, now, keep=kept)
    report.sip_until, report.sip_cut_short = sip.until, sip.cut_short
    if sip.cut_short:
        report.notes.append(
            f"bars from {sip.until.astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York on were not "
            "compared: Alpaca refuses SIP bars of the latest 15 minutes to this account"
        )
    audited_days = {s.day for s in sessions}

    def audited(moment: datetime) -> bool:
        return moment < sip.until and moment.astimezone(NEW_YORK).date() in audited_days

    report.bars = compare_bars(
        [b for b in live_bars if audited(b.time)], [b for b in sip.bars if audited(b.time)]
    )
    live_signals = [
        s for s in detect_signals(live_bars, calendar, config.signal) if audited(s.time)
    ]
    sip_signals = [s for s in detect_signals(sip.bars, calendar, config.signal) if audited(s.time)]
    report.signals = compare_signals(live_signals, sip_signals)
    recorded = {sid: s for sid, s in ledger.signals.items() if audited(s.time)}
    found_again = {signal_id(s) for s in live_signals}
    report.signals.unreproduced = [
        f"{sid}: recorded by the bot, not found again on the stored bars"
        for sid in sorted(recorded)
        if sid not in found_again
    ]

    backtest = run_backtest(sip.bars, calendar, config)
    live_trades = _of_signals(store.trades(), ledger.signals, audited)
    backtest_signals = {d.signal_id: d.signal for d in backtest.signals}
    backtest_trades = _of_signals(list(backtest.trades.values()), backtest_signals, audited)
    weeks = weeks_of([s.day for s in sessions])
    report.live = figures(len(live_signals), weeks, live_trades, profiles)
    report.backtest = figures(len(sip_signals), weeks, backtest_trades, profiles)
    report.slippage = slippage_of(
        live_trades,
        ledger.signals,
        sip.bars,
        {t.trade_id: t for t in backtest_trades},
        config.simulation.slippage_bps,
    )
    if report.signals.unreproduced:
        report.notes.append(
            f"{len(report.signals.unreproduced)} signal(s) the bot recorded are not found again "
            "on the stored bars (another warm-up, or bars missing from the store)"
        )
    return report


def _of_signals(
    trades: Sequence[TradeView], signals: dict[str, Signal], keep: Callable[[datetime], bool]
) -> list[TradeView]:
    """The trades whose signal `keep` accepts."""
    return [
        t for t in trades if (signal := signals.get(t.signal_id)) is not None and keep(signal.time)
    ]


def _warm_up_start(calendar: NyseCalendar, session: Session) -> datetime:
    """The open of the session before `session` (the detector's warm-up, as the bot's)."""
    if session.previous_day is not None:
        previous = calendar.session_on(session.previous_day)
        if previous is not None:
            return previous.open
    return session.open


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), NEW_YORK).astimezone(UTC)


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def connect(key: str, secret: str, *, paper: bool, url: str | None) -> Clients:
    """alpaca-py's clients on Alpaca (paper or live, as the store's run was) or an emulator."""
    return Clients(
        trading=TradingClient(key, secret, paper=paper, url_override=url),
        data=StockHistoricalDataClient(key, secret, url_override=url),
    )
