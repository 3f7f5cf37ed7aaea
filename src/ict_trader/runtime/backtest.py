"""Backtests: historical bars through the same engine, simulated broker and store as live.

`run_backtest` is the library entry point (the CLI, the benchmark and the cross-check test all
use it); it returns everything a report needs (`reporting.backtest_result.BacktestResult`):
trades, signals, skips, the equity curve and the metrics per profile, per symbol and overall.

With an option profile the run needs option prices: a desk (`options/desk.py`), given or built
from the settings' `[options]` table, and the result's `config.describe()["options"]` says where
the premiums came from (`premium_source`: model or file, and `pricing`, a line to show).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from operator import itemgetter

from ict_trader.adapters.simulated import OptionFills, SimulatedBroker
from ict_trader.collector import paused_collector
from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.broker import SimulatedDesk
from ict_trader.core.calendar import NEW_YORK, NyseCalendar, Session
from ict_trader.core.engine import Engine
from ict_trader.core.events import AccountUpdated, EntrySkipped, SignalDetected, TradeUpdated
from ict_trader.core.signal import Detector
from ict_trader.options.desk import build_desk
from ict_trader.persistence.store import Store
from ict_trader.reporting.backtest_result import BacktestResult, all_metrics
from ict_trader.runtime.kernel import Seen
from ict_trader.runtime.simulation import SimulationShell
from ict_trader.signals import IctDetector, detect_signals
from ict_trader.signals.detector import SignalReplay


def select_bars(bars: Sequence[Bar], start: date | None, end: date | None) -> list[Bar]:
    """Bars whose New York session date lies in [start, end] (both optional, inclusive)."""
    if start is None and end is None:
        return list(bars)
    return [
        bar
        for bar in bars
        if (start is None or bar.time.astimezone(NEW_YORK).date() >= start)
        and (end is None or bar.time.astimezone(NEW_YORK).date() <= end)
    ]


def run_backtest(
    bars: Sequence[Bar],
    calendar: NyseCalendar,
    config: AppConfig,
    *,
    store: Store | None = None,
    on_bar: Callable[[Bar], None] | None = None,
    detector: Detector | Mapping[str, Detector] | None = None,
    desk: SimulatedDesk | None = None,
    equity_curve: bool = True,
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Trade `bars` — of every symbol in `config.engine.symbols`, in (time, symbol) order, each
    naming its symbol; or of the one symbol, with or without its name.

    `detector`: a fresh one to use instead of `IctDetector(calendar, config.signal)` (one per
    symbol with several), e.g. a `SignalReplay` of signals detected earlier with
    `config.signal`. `desk`: the option desk (by default the one `config.options` describes,
    when a profile trades options). `equity_curve=False` (a sweep): the result keeps no equity
    curve, and the engine sees the account only when it may use it (the same trades, faster;
    without a store only). `on_bar` is called after every bar, so the engine is shown every
    bar (nothing detected first, nothing skipped); `progress` is told how many bars are done
    every few thousand, for a progress bar."""
    sessions = _sessions_of(bars, calendar)
    result = BacktestResult(config=config, bars=bars, sessions=sessions)
    symbols = config.engine.symbols
    broker, desk = simulated_market(config, calendar, desk)
    if detector is None and on_bar is None and desk is None:
        detector = _detected_first(bars, calendar, config)
    if detector is not None:
        engine = Engine(config.engine, detector)
    else:
        engine = Engine(
            config.engine, {symbol: IctDetector(calendar, config.signal) for symbol in symbols}
        )

    def observe(item: Seen) -> None:
        if isinstance(item, AccountUpdated):  # the most frequent: every minute in a position
            if equity_curve:
                result.equity_curve.append((item.time, item.equity))
        elif isinstance(item, TradeUpdated):
            result.trades[item.trade.trade_id] = item.trade
        elif isinstance(item, SignalDetected):
            result.signals.append(item)
        elif isinstance(item, EntrySkipped):
            result.skips.append(item)

    shell = SimulationShell(
        engine,
        broker,
        store=store,
        observer=observe,
        desk=desk,
        account_every_minute=equity_curve,
    )
    if store is not None:
        store.start_run("backtest", None, config.describe())
    with paused_collector():  # about a million short-lived objects, none in a cycle
        shell.run(bars, on_bar=on_bar, progress=progress)
    result.metrics = all_metrics(result)
    return result


def _detected_first(
    bars: Sequence[Bar], calendar: NyseCalendar, config: AppConfig
) -> dict[str, Detector] | None:
    """Each symbol's signals, detected before any trading, as replays for the engine; None
    when a bar names a symbol not traded (the engine then refuses it, at that bar, as ever).

    Detection depends on the bars alone, and a detector that knows its signals ahead lets the
    shell skip every bar the engine is flat through (`SimulationShell._run_skipping`)."""
    symbols = config.engine.symbols
    named = set(map(_symbol_of, bars))
    if len(symbols) == 1:
        if not named <= {"", symbols[0]}:
            return None
        return {symbols[0]: SignalReplay(calendar, detect_signals(bars, calendar, config.signal))}
    if not named <= set(symbols):
        return None
    return {
        symbol: SignalReplay(
            calendar,
            detect_signals([b for b in bars if b.symbol == symbol], calendar, config.signal),
        )
        for symbol in symbols
    }


def simulated_market(
    config: AppConfig, calendar: NyseCalendar, desk: SimulatedDesk | None = None
) -> tuple[SimulatedBroker, SimulatedDesk | None]:
    """The simulated broker of a backtest or replay, and its option desk: `desk` if given, else
    the one `config.options` describes when a profile trades options (a quote file is read and
    checked here), else none (shares only: nothing of options runs)."""
    options = config.options
    fills = OptionFills(options.slippage, options.commission_per_contract)
    return SimulatedBroker(config.simulation, fills), desk or option_desk(config, calendar)


def option_desk(config: AppConfig, calendar: NyseCalendar) -> SimulatedDesk | None:
    """The desk `config.options` describes when an enabled profile trades options, else None.
    Raises ConfigError (file pricing without a file) or QuoteDataError (a bad quote file), each
    one line, so a command can refuse before it runs."""
    return build_desk(config.options, calendar) if config.trades_options else None


def _sessions_of(bars: Sequence[Bar], calendar: NyseCalendar) -> list[Session]:
    """The sessions `bars` (in time order, regular hours, as the loader checks them) have a bar
    in: a binary search per session of the calendar rather than a look at every bar, which a
    sweep would repeat for every configuration."""
    if not bars:
        return []
    first, last = bars[0].time, bars[-1].time
    found = []
    for session in sorted(calendar.sessions(), key=_day_of):
        if session.close <= first or session.open > last:
            continue
        index = bisect_left(bars, session.open, key=_time_of)
        if index < len(bars) and bars[index].time < session.close:
            found.append(session)
    return found


def _day_of(session: Session) -> date:
    return session.day


def _time_of(bar: Bar) -> datetime:
    return bar.time


_symbol_of = itemgetter(6)  # Bar.symbol, without an attribute lookup per bar
