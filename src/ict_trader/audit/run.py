"""`run_audit`: one paper or live store against Alpaca, for a period of New York dates.

1. Orders and fills (`audit.orders`): the ledger's orders created in the period against
   Alpaca's order history and FILL activities of the period, every symbol's at once.
2. Bars and signals (`audit.bars`, `audit.signals`), for each symbol the run trades: the live
   bars the bot recorded against SIP bars of the same symbol and minutes, fetched from Alpaca
   (one request for every symbol); the detector, with the run's own parameters, run on each
   over the same sessions — those the store has the symbol's bars of, from the session before
   the first audited one (its warm-up) when the store has it — and the signals of the audited
   sessions paired up, symbol by symbol. Only sessions the bot has the symbol's bars for are
   compared, and only up to the SIP cut-off (the free plan has no SIP for the latest 15
   minutes).
3. Fills against the backtest (`audit.slippage`) and expectation (`audit.expectation`): the run's
   settings backtested on every symbol's SIP bars together (merged in time then symbol order,
   as the bot trades them: equity and limits are shared); each live trade's fills against the
   simulated ones on its own symbol's bars; the live figures next to the backtest's for the same
   sessions and minutes, in all and per symbol.

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

from ict_trader.audit.bars import BarsAudit, compare_bars
from ict_trader.audit.expectation import figures, weeks_of
from ict_trader.audit.history import HistoryError, fetch_fills, fetch_orders, fetch_sip_bars
from ict_trader.audit.orders import compare_orders
from ict_trader.audit.report import AuditReport, SymbolAudit
from ict_trader.audit.run_config import config_of_run
from ict_trader.audit.signals import compare_signals
from ict_trader.audit.slippage import slippage_of
from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
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
    symbols = tuple(config.engine.symbols)
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

    # 1. Orders and fills: every symbol's at once (an order names its symbol).
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
        symbols=symbols,
        orders=orders,
    )
    others = [s for s in store.bar_symbols() if s not in symbols]
    if others:
        report.notes.append(
            f"bars of {', '.join(others)} in the store are not compared: the run trades "
            f"{', '.join(symbols)}"
        )

    # 2. Bars and signals, each symbol on its own over the sessions the store has its bars of.
    calendar = NyseCalendar.covering(start - timedelta(days=10), end + timedelta(days=10))
    stored_set = set(stored_days)
    candidates = [
        s
        for s in calendar.sessions()
        if first <= s.day <= last and s.open < now and s.day in stored_set
    ]
    profiles = [p.name for p in config.engine.profiles if p.enabled]
    feeds = _live_feeds(store, calendar, symbols, candidates, end) if candidates else {}
    report.sessions = sorted({day for f in feeds.values() for day in f.days})
    for symbol in symbols:  # the bot was up (other symbols' bars), this symbol's bars missing
        own = feeds.get(symbol)
        gaps = [] if own is None else [str(d) for d in report.sessions if d not in own.days]
        if own is None and candidates:
            report.notes.append(f"{symbol}: no live bars recorded in the period: not compared")
        elif gaps:
            report.notes.append(
                f"{symbol}: no live bars recorded on {', '.join(gaps)}, when other symbols have "
                f"some: not compared on {'that day' if len(gaps) == 1 else 'those days'}"
            )
    if not feeds:
        report.notes.append("no live bars recorded in the period: bars and signals not compared")
        report.live = figures(0, 0.0, [], profiles)
        report.backtest = figures(0, 0.0, [], profiles)
        return report

    sip = fetch_sip_bars(
        clients.data,
        list(feeds),
        min(f.warm for f in feeds.values()),
        end,
        now,
        keep=lambda symbol, moment: feeds[symbol].keeps(calendar, moment),
    )
    report.sip_until, report.sip_cut_short = sip.until, sip.cut_short
    if sip.cut_short:
        report.notes.append(
            f"bars from {sip.until.astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York on were not "
            "compared: Alpaca refuses SIP bars of the latest 15 minutes to this account"
        )

    def audited(symbol: str, moment: datetime) -> bool:
        """A minute of an audited session of `symbol`'s, before the SIP cut-off."""
        live = feeds.get(symbol)
        return (
            live is not None
            and moment < sip.until
            and moment.astimezone(NEW_YORK).date() in live.days
        )

    live_signals: dict[str, list[Signal]] = {}
    sip_signals: dict[str, list[Signal]] = {}
    bars_of: dict[str, BarsAudit] = {}
    for symbol, live in feeds.items():
        sip_bars = sip.of(symbol)
        bars_of[symbol] = compare_bars(
            [b for b in live.bars if audited(symbol, b.time)],
            [b for b in sip_bars if audited(symbol, b.time)],
        )
        live_signals[symbol] = [
            s for s in detect_signals(live.bars, calendar, config.signal) if audited(symbol, s.time)
        ]
        sip_signals[symbol] = [
            s for s in detect_signals(sip_bars, calendar, config.signal) if audited(symbol, s.time)
        ]
    every_live = [s for found in live_signals.values() for s in found]
    every_sip = [s for found in sip_signals.values() for s in found]
    report.signals = compare_signals(every_live, every_sip)
    found_again = {signal_id(s) for s in every_live}
    report.signals.unreproduced = [
        f"{sid}: recorded by the bot, not found again on the stored bars"
        for sid, s in sorted(ledger.signals.items(), key=lambda item: item[0])
        if audited(s.symbol, s.time) and sid not in found_again
    ]

    # 3. Fills against the backtest of every symbol's SIP bars together, and expectation.
    backtest = run_backtest(sip.merged(), calendar, config)
    modelled = [
        p.name
        for p in config.engine.profiles
        if p.enabled and p.trades_options and config.options.source.modelled
    ]
    if modelled:
        report.notes.append(
            f"the backtest's option figures ({', '.join(modelled)}) are model-priced: its "
            "premiums come from the pricing model, the live ones from Alpaca's fills"
        )
    live_trades = _of_signals(store.trades(), ledger.signals, audited)
    backtest_signals = {d.signal_id: d.signal for d in backtest.signals}
    backtest_trades = _of_signals(list(backtest.trades.values()), backtest_signals, audited)
    weeks = weeks_of(report.sessions)
    report.live = figures(len(every_live), weeks, live_trades, profiles)
    report.backtest = figures(len(every_sip), weeks, backtest_trades, profiles)
    for symbol, live in feeds.items():
        own_weeks = weeks_of(live.sessions)
        report.by_symbol[symbol] = SymbolAudit(
            sessions=live.sessions,
            bars=bars_of[symbol],
            live=figures(
                len(live_signals[symbol]),
                own_weeks,
                [t for t in live_trades if _symbol_of(t, ledger.signals) == symbol],
                profiles,
            ),
            backtest=figures(
                len(sip_signals[symbol]),
                own_weeks,
                [t for t in backtest_trades if _symbol_of(t, backtest_signals) == symbol],
                profiles,
            ),
        )
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


@dataclass(frozen=True)
class _LiveFeed:
    """One symbol's live bars as the store kept them, and what of them is audited."""

    bars: list[Bar]  # regular hours, from `warm` on: the detector's series
    warm: datetime  # where both of its detectors start (its first stored bar's session)
    stored: frozenset[date]  # the sessions the store has its bars of, warm-up included
    sessions: list[date]  # of those, the audited ones (in the period)

    @property
    def days(self) -> frozenset[date]:
        return frozenset(self.sessions)

    def keeps(self, calendar: NyseCalendar, moment: datetime) -> bool:
        """Regular hours of a session the store has this symbol's bars of: both detectors see
        the same sessions (a bot down for a day has no bars of it, so neither does SIP's
        series)."""
        return (
            moment >= self.warm
            and calendar.session_at(moment) is not None
            and moment.astimezone(NEW_YORK).date() in self.stored
        )


def _live_feeds(
    store: Store,
    calendar: NyseCalendar,
    symbols: Sequence[str],
    candidates: Sequence[Session],
    end: datetime,
) -> dict[str, _LiveFeed]:
    """Each traded symbol's stored bars from the warm-up of the first session with bars (the
    session before it, when the store has it), for the symbols with bars in an audited session."""
    warm = _warm_up_start(calendar, candidates[0])
    grouped: dict[str, list[Bar]] = {}
    for bar in store.bars_between(warm, end):
        if bar.symbol in symbols and calendar.session_at(bar.time):
            grouped.setdefault(bar.symbol, []).append(bar)
    feeds = {}
    for symbol in symbols:
        bars = grouped.get(symbol, [])
        stored = frozenset(b.time.astimezone(NEW_YORK).date() for b in bars)
        sessions = [s.day for s in candidates if s.day in stored]
        if not sessions:
            continue
        first_session = calendar.session_at(bars[0].time)
        assert first_session is not None
        # both detectors start where the store's bars start: the same warm-up
        start = max(warm, first_session.open)
        feeds[symbol] = _LiveFeed(bars, start, stored, sessions)
    return feeds


def _symbol_of(trade: TradeView, signals: dict[str, Signal]) -> str:
    return trade.symbol or signals[trade.signal_id].symbol


def _of_signals(
    trades: Sequence[TradeView],
    signals: dict[str, Signal],
    keep: Callable[[str, datetime], bool],
) -> list[TradeView]:
    """The trades whose signal `keep(symbol, time)` accepts."""
    return [
        t
        for t in trades
        if (signal := signals.get(t.signal_id)) is not None and keep(signal.symbol, signal.time)
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
