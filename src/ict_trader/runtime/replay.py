"""`ict-trader run` without broker credentials: real bars replayed through the live machinery.

The same engine, simulated broker and SQLite store as a backtest, but paced like a market
(`speed` market minutes per wall-clock minute; 0 = as fast as possible), narrating every signal,
order, fill and exit as it happens, committing the store after every bar and resuming from it.
"""

from __future__ import annotations

import hashlib
import signal as os_signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from types import FrameType

from rich.console import Console

from ict_trader.adapters.simulated import SimulatedBroker
from ict_trader.config import AppConfig
from ict_trader.core.bars import Bar
from ict_trader.core.broker import SimulatedDesk
from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    EntrySkipped,
    Level,
    Notify,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SignalDetected,
    SubmitOrder,
)
from ict_trader.notify.notifier import Notifier
from ict_trader.persistence.state_keys import LAST_BAR_KEY
from ict_trader.persistence.store import Store, StoreError
from ict_trader.runtime import control
from ict_trader.runtime.backtest import simulated_market
from ict_trader.runtime.daily import send_daily_summary
from ict_trader.runtime.kernel import Observer, Seen
from ict_trader.runtime.simulation import SimulationShell
from ict_trader.signals import IctDetector

REPLAY_MODE = "replay"
SUMMARY_DAY_KEY = "summary_day"  # the last session whose daily summary went out
_ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class ReplayOutcome:
    bars_done: int
    bars_total: int
    resumed_after: datetime | None
    interrupted: bool
    last_bar: datetime | None


def data_fingerprint(path: Path) -> str:
    """Identifies the replayed data so a resume never continues on a different file."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{path.name} sha256:{digest}"


class Narrator:
    """Prints what happens, one line per event, in New York time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._session: str | None = None

    def bar(self, bar: Bar) -> None:
        day = f"{bar.time.astimezone(NEW_YORK):%a %Y-%m-%d}"
        if day != self._session:
            self._session = day
            self.console.rule(f"session {day}")

    def __call__(self, item: Seen) -> None:
        line = self._describe(item)
        if line is not None:
            self.console.print(line, highlight=False, soft_wrap=True)

    def _describe(self, item: Seen) -> str | None:
        if isinstance(item, SignalDetected):
            s = item.signal
            colour = "green" if s.direction == "long" else "red"
            return (
                f"{_ny(s.time)}  [bold {colour}]SIGNAL {s.symbol} {s.direction.value.upper()}[/]"
                f" close {s.close:.2f} · ATR {s.atr:.3f} · MSS level {s.mss_level:.2f}"
            )
        if isinstance(item, EntrySkipped):
            return f"{_ny(item.time)}  [yellow]skip[/] {item.profile}: {item.reason}"
        if isinstance(item, SubmitOrder):
            o = item.order
            kind = o.type.value
            if o.limit_price is not None:
                kind = f"limit {o.limit_price}"
            elif o.stop_price is not None:
                kind = f"stop {o.stop_price}"
            when = _ny(o.created_at) if o.created_at else ""
            return (
                f"{when}  order {o.profile} {o.leg.value}: {o.side.value} {o.qty} {o.symbol}"
                f" {kind} [dim]{o.client_order_id}[/]"
            )
        if isinstance(item, OrderFilled):
            return (
                f"{_ny(item.time)}  [cyan]fill[/] {item.qty} @ {item.price}"
                f" [dim]{item.client_order_id} · broker id {item.broker_order_id}[/]"
            )
        if isinstance(item, OrderRejected):
            return f"{_ny(item.time)}  [red]rejected[/] {item.client_order_id}: {item.reason}"
        if isinstance(item, OrderCanceled):
            return f"{_ny(item.time)}  [dim]{item.reason}: {item.client_order_id}[/]"
        if isinstance(item, Notify):
            if item.level is not Level.INFO:
                colour = "red" if item.level is Level.CRITICAL else "yellow"
                return f"{_ny(item.time)}  [bold {colour}]{item.title}[/]: {item.message}"
            if " exit" in item.title:
                return f"{_ny(item.time)}  [bold]{item.message}[/]"
            if item.title.startswith("Daily summary"):
                return f"{_ny(item.time)}  [bold]{item.title}[/] — {item.message}"
        return None


def _ny(moment: datetime) -> str:
    return f"{moment.astimezone(NEW_YORK):%H:%M}"


class Pacer:
    """Sleeps so that bar i is handled at start + i * (60 / speed) seconds."""

    def __init__(
        self,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / speed if speed > 0 else 0.0
        self.clock = clock
        self.sleep = sleep
        self.start = clock()
        self.count = 0

    def wait(self) -> None:
        """Block until the next bar is due; a slow bar is caught up, never skipped."""
        if self.interval:
            delay = self.start + self.count * self.interval - self.clock()
            if delay > 0:
                self.sleep(delay)
        self.count += 1


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so a service manager's stop is a clean shutdown too."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = os_signal.signal(os_signal.SIGTERM, handler)
    except ValueError:  # not in the main thread
        yield
        return
    try:
        yield
    finally:
        os_signal.signal(os_signal.SIGTERM, previous)


def run_replay(
    bars: Sequence[Bar],
    calendar: NyseCalendar,
    config: AppConfig,
    store: Store,
    source: str,
    *,
    speed: float,
    console: Console,
    quiet: bool = False,
    notifier: Notifier | None = None,
    desk: SimulatedDesk | None = None,
) -> ReplayOutcome:
    """Replay `bars`, resuming after the store's last committed bar if it holds this replay.

    `desk`: the option desk (by default the one `config.options` describes when a profile
    trades options); on a resume it is shown the bars already replayed, so the realized
    volatility is the one an uninterrupted replay would have."""
    engine = Engine(
        config.engine,
        {symbol: IctDetector(calendar, config.signal) for symbol in config.engine.symbols},
    )
    broker, desk = simulated_market(config, calendar, desk)
    narrator = Narrator(console)
    resumed_after = _prepare(bars, config, store, source, engine=engine, broker=broker)
    todo = [bar for bar in bars if resumed_after is None or bar.time > resumed_after]
    if desk is not None and resumed_after is not None:
        for bar in bars:
            if bar.time > resumed_after:
                break
            symbol = bar.symbol or config.engine.symbols[0]
            desk.see_open(bar, symbol)
            desk.see_close(bar, symbol)
    if resumed_after is not None:
        console.print(
            f"resuming after {_ny(resumed_after)} New York on "
            f"{resumed_after.astimezone(NEW_YORK):%Y-%m-%d}: "
            f"{len(engine.open_trades)} open trade(s)"
        )
    shell = SimulationShell(
        engine,
        broker,
        store=store,
        observer=None if quiet else narrator,
        commit_every_bar=True,
        notifier=notifier,
        desk=desk,
    )
    first = todo[0].time if todo else bars[-1].time
    pacer = Pacer(speed)
    done = 0
    interrupted = False
    with sigterm_as_interrupt():
        try:
            # A day whose last bar was committed but whose summary was not (stopped between).
            owed = _owed_summary(store, resumed_after)
            if owed is not None and (not todo or _session_day(todo[0]) != owed[0]):
                _close_day(store, notifier, owed, shell.observer)
            if todo and not quiet:
                narrator.bar(todo[0])  # the session's header before what a restart does in it
            broker.resume_at(first)  # a kill applied now cancels now, not at the orders' time
            control.restore_state(store, shell.deliver, first)  # a kill switch survives restarts
            shell.apply_control()
            minutes = [list(group) for _, group in groupby(todo, key=_time_of)]
            for index, minute in enumerate(minutes):
                pacer.wait()  # a minute of the market at a time, every symbol's bar of it
                if not quiet:
                    for bar in minute:
                        narrator.bar(bar)
                shell.step_minute(minute)
                done += len(minute)
                bar = minute[-1]
                day = _session_day(bar)
                following = minutes[index + 1][0] if index + 1 < len(minutes) else None
                if following is None or _session_day(following) != day:
                    # The session's last bar is done: its summary now, before the next
                    # session's header (and without waiting for that session's first bar).
                    _close_day(store, notifier, (day, bar.time + _ONE_MINUTE), shell.observer)
        except KeyboardInterrupt:
            interrupted = True
            store.rollback()  # a bar interrupted half-way is redone on resume
    last = shell.last_bar.time if shell.last_bar is not None else resumed_after
    return ReplayOutcome(done, len(todo), resumed_after, interrupted, last)


def _time_of(bar: Bar) -> datetime:
    return bar.time


def _session_day(bar: Bar) -> date:
    return bar.time.astimezone(NEW_YORK).date()


def _owed_summary(store: Store, resumed_after: datetime | None) -> tuple[date, datetime] | None:
    """The day of the last committed bar and its close, unless that day's summary was sent."""
    if resumed_after is None:
        return None
    day = resumed_after.astimezone(NEW_YORK).date()
    if store.state(SUMMARY_DAY_KEY) == day.isoformat():
        return None
    return day, resumed_after + _ONE_MINUTE


def _close_day(
    store: Store,
    notifier: Notifier | None,
    day_and_close: tuple[date, datetime],
    observer: Observer | None,
) -> None:
    """A session's last bar is done: its summary goes out, committed with a note that it did
    (a replay stopped between the two sends it on resume, once)."""
    day, close = day_and_close
    notice = send_daily_summary(store, notifier, day, close)
    if observer is not None:
        observer(notice)
    store.set_state(SUMMARY_DAY_KEY, day.isoformat())
    store.commit()


def _prepare(
    bars: Sequence[Bar],
    config: AppConfig,
    store: Store,
    source: str,
    *,
    engine: Engine,
    broker: SimulatedBroker,
) -> datetime | None:
    run = store.last_run()
    last_text = store.state(LAST_BAR_KEY)
    if run is None:
        store.start_run(REPLAY_MODE, source, config.describe())
        store.commit()
        return None
    if run["mode"] != REPLAY_MODE or run["data_source"] != source:
        raise StoreError(
            f"{store.path} holds a {run['mode']} run of {run['data_source']}; "
            "use another --db for this replay"
        )
    if run["config"] != config.describe():
        raise StoreError(
            f"{store.path}: the settings changed since this replay started; "
            "use another --db or restore the settings"
        )
    if last_text is None:
        return None
    last = datetime.strptime(last_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    warm = [bar for bar in bars if bar.time <= last]
    for bar in warm:
        engine.warm(bar)
    ledger = store.load_ledger()
    engine.restore(ledger)
    broker.restore(ledger)
    return last
