"""The live shell: Alpaca's streams and REST API around the same engine as the backtest.

One thread owns the engine and the store (they are not shared); the two alpaca-py streams run in
their own threads and only hand over data: bars go into a queue, order snapshots into the broker's
observer (which turns them into engine events exactly once). Per bar, the shell
1. drops duplicates and backfills any gap over REST, so the detector sees every bar once, in order;
2. polls the orders still working (the stream may have missed an update) and delivers the events;
3. refreshes the account, feeds the bar to the engine and executes its commands;
4. while option trades are open, marks the contracts held with Alpaca's quotes (loss limits);
5. commits the store.
Option contracts are picked and quoted by the contract desk (`adapters/alpaca/options.py`); an
option entry after Alpaca's expiry-day cut-off is refused here (`live_options.py`).
Between bars it sends clock ticks so time exits are not late by a bar. Time is the latest bar's
close advanced by the wall-clock time since it arrived, so the same code runs at any replay speed
against the emulator and at real time against Alpaca.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.stream import TradingStream

from ict_trader.core.bars import Bar
from ict_trader.core.breakers import Breaker
from ict_trader.core.broker import ContractDesk, StreamingBroker
from ict_trader.core.calendar import NyseCalendar
from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    BrokerError,
    ContractMarked,
    ContractUnavailable,
    Event,
    OrderCanceled,
    OrderRejected,
    Output,
    ReduceOnly,
    ReleaseTrades,
    RequestContract,
    Resume,
    Tick,
    TradingState,
)
from ict_trader.core.instruments import instrument_of
from ict_trader.core.orders import Leg, OrderRequest
from ict_trader.notify import texts
from ict_trader.notify.notifier import Notifier
from ict_trader.persistence.state_keys import (
    BROKER_CHECKED_KEY,
    BROKER_ERROR_KEY,
    BROKER_OK_KEY,
    HEARTBEAT_KEY,
    LAST_BAR_KEY,
)
from ict_trader.persistence.store import Store, StoreWriteError
from ict_trader.runtime import control
from ict_trader.runtime.kernel import Kernel, Observer
from ict_trader.runtime.live_options import refused_entry

log = logging.getLogger(__name__)
T = TypeVar("T")
_ONE_MINUTE = timedelta(minutes=1)
_WAKE = object()  # queued by the trade-updates stream: broker events are waiting
STALE_DATA = "stale data"
STORE_UNWRITABLE = "store cannot be written"
MAX_UNWRITTEN = 100_000
STORE_RETRY_SECONDS = 2.0
HEARTBEAT_EVERY_SECONDS = 5.0
RECONCILE_EVERY_BARS = 15  # and at start; only while no order is working (no transient gaps)


@dataclass
class LiveEndpoints:
    """Where the SDK connects: Alpaca itself by default, or the loopback emulator."""

    rest_url: str | None = None
    data_stream_url: str | None = None
    trade_stream_url: str | None = None
    feed: DataFeed = DataFeed.IEX


@dataclass
class LiveStats:
    bars: int = 0
    backfilled: int = 0
    duplicates: int = 0
    extended_hours: int = 0  # pre- and after-market bars received and ignored
    reconnects: int = 0
    last_bar: datetime | None = None
    errors: list[str] = field(default_factory=list)


class LiveShell:
    def __init__(
        self,
        engine: Engine,
        broker: StreamingBroker,
        store: Store,
        data: StockHistoricalDataClient,
        calendar: NyseCalendar,
        *,
        api_key: str,
        secret_key: str,
        endpoints: LiveEndpoints,
        observer: Observer | None = None,
        stale_after: timedelta = timedelta(seconds=90),
        stale_data_after: timedelta | None = timedelta(minutes=5),
        on_arrival: Callable[[Bar], None] | None = None,
        on_trade_update: Callable[[Any], None] | None = None,
        notifier: Notifier | None = None,
        desk: ContractDesk | None = None,
    ) -> None:
        self.engine = engine
        self.desk = desk  # option contracts and their quotes; None: no option trading
        self.notifier = notifier
        self.broker = broker
        self.store = store
        self.data = data
        self.calendar = calendar
        self.symbols = engine.symbols
        self.endpoints = endpoints
        self.observer = observer
        self.kernel = Kernel(
            engine, self, store=store, observer=observer, notifier=notifier, write=self._stored
        )
        self.stale_after = stale_after  # silence before the watchdog fetches bars over REST
        # silence (REST included) before entries stop; None: the breaker is off
        self.stale_data_after = stale_data_after
        self._last_processed = time.monotonic()
        self.on_arrival = on_arrival  # called in the stream thread as each bar arrives
        self.on_trade_update = on_trade_update  # likewise for each trade update (benchmarks)
        self._account_known = False
        self._key = api_key
        self._secret = secret_key
        # Bars, and `_WAKE` when the trade-updates stream reported something: the trading thread
        # reacts to a fill or a cancel at once (a target rests ms after its entry fills), not
        # at the next bar.
        self._bars: queue.Queue[Bar | object] = queue.Queue()
        self._stop = threading.Event()
        self._streams: list[Any] = []
        self._last_arrival = time.monotonic()
        self._cancels: set[str] = set()
        self._state_written: list[
            str
        ] = []  # cancels asked for, re-sent while the order still works
        self.stats = LiveStats()
        # Whether the session is on: between sessions a silent stream is normal, so neither the
        # REST watchdog nor the stale-data breaker may act on it.
        self._market_open = False
        self._beat_at = 0.0
        self._broker_ok: bool | None = None
        self._broker_error = ""
        # symbol -> why, while the broker's position in it differs from the ledger's
        self._disputes: dict[str, str] = {}
        # the last bar processed per symbol (`stats.last_bar` is the latest of them)
        self._last_by_symbol: dict[str, datetime] = {}
        self._store_broken: str | None = None  # the last store write failure, until one works
        self._unwritten: deque[Callable[[], object]] = deque()  # writes the failure kept out
        self._store_retried_at = 0.0
        self._held: dict[str, OrderRequest] = {}  # orders not sent while disputed
        # disputed symbols where the broker still holds all of the ledger's shares
        self._exits_covered: set[str] = set()
        self._marked_at: datetime | None = None  # the bar close held contracts were last marked

    # ------------------------------------------------------------------ lifecycle

    def warm_up(self, until: datetime) -> None:
        """Feed the detector the previous session and today's bars before `until` (no trading)."""
        session = self.calendar.session_at(until - _ONE_MINUTE) or self.calendar.session_on(
            until.date()
        )
        start = until - timedelta(days=5)
        if session is not None and session.previous_day is not None:
            previous = self.calendar.session_on(session.previous_day)
            if previous is not None:
                start = previous.open
        seen = self.stats.last_bar
        if seen is not None:
            # A bot running for days has fed the detector up to `seen` already; what came since
            # is a gap like any other, traded as the stream would have delivered it.
            for bar in self._history(self._oldest_seen(seen) + _ONE_MINUTE, until - _ONE_MINUTE):
                if self._is_new(bar):
                    self.stats.backfilled += 1
                    self._process(bar)
            self._last_arrival = self._last_processed = time.monotonic()
            return
        for bar in self._history(start, until - _ONE_MINUTE):
            self.engine.warm(bar)
            self._seen(bar)
            self.store.record_bar(bar)  # today's chart on the dashboard starts at the open
        if self.stats.last_bar is not None:  # the last bar seen, for status and health
            self.store.set_state(LAST_BAR_KEY, self.stats.last_bar.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._last_arrival = self._last_processed = time.monotonic()  # the night was not silence
        self.store.commit()

    def start_streams(self) -> None:
        data = StockDataStream(
            self._key,
            self._secret,
            feed=self.endpoints.feed,
            url_override=self.endpoints.data_stream_url,
        )
        trade_options: dict[str, Any] = {}
        if self.endpoints.trade_stream_url:
            trade_options["url_override"] = self.endpoints.trade_stream_url
        trades = TradingStream(self._key, self._secret, **trade_options)

        async def on_bar(message: Any) -> None:
            self._last_arrival = time.monotonic()
            bar = Bar(
                message.timestamp.astimezone(UTC),
                float(message.open),
                float(message.high),
                float(message.low),
                float(message.close),
                float(message.volume),
                str(message.symbol),
            )
            if self.on_arrival is not None:
                self.on_arrival(bar)
            self._bars.put(bar)

        async def on_update(update: Any) -> None:
            if self.on_trade_update is not None:
                self.on_trade_update(update)
            self.broker.observe(update.order, update.timestamp)
            self._bars.put(_WAKE)

        data.subscribe_bars(on_bar, *self.symbols)
        trades.subscribe_trade_updates(on_update)
        for stream in (data, trades):
            threading.Thread(target=stream.run, daemon=True, name=type(stream).__name__).start()
            self._streams.append(stream)

    def stop(self) -> None:
        self._stop.set()
        for stream in self._streams:
            try:
                stream.stop()
            except Exception:
                log.debug("stream stop failed", exc_info=True)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def idle(self, seconds: float) -> None:
        """Between sessions: for `seconds`, obey kill/resume requests, handle any order update,
        drop extended-hours bars and keep the heartbeat — but no staleness alarms."""
        self._market_open = False
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._bars.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                item = None
            try:
                if isinstance(item, Bar):
                    if self.stats.last_bar is not None:  # before a warm-up, it fetches them
                        self.on_bar(item)
                elif item is not None and self.stats.last_bar is not None:
                    self._pump()
                self.apply_control()
                self._beat()
                self.store.commit()
            except StoreWriteError as exc:
                self._store_failed(exc)

    def note_broker(self, ok: bool, error: str = "") -> None:
        """Broker connectivity for the health check: the latest call's outcome."""
        if ok == self._broker_ok and (ok or error == self._broker_error):
            return
        self._broker_ok, self._broker_error = ok, error
        self.store.set_state(BROKER_OK_KEY, "1" if ok else "0")
        self.store.set_state(BROKER_CHECKED_KEY, _utc_text(datetime.now(UTC)))
        if error:
            self.store.set_state(BROKER_ERROR_KEY, error)

    def _beat(self) -> None:
        if time.monotonic() - self._beat_at >= HEARTBEAT_EVERY_SECONDS:
            self._beat_at = time.monotonic()
            self.store.set_state(HEARTBEAT_KEY, _utc_text(datetime.now(UTC)))

    def run(self, until: Callable[[], bool]) -> None:
        """Process bars until `until()` says stop (or `stop()` is called)."""
        self._market_open = True
        while not self._stop.is_set() and not until():
            try:
                item = self._bars.get(timeout=0.2)
            except queue.Empty:
                item = None
            try:
                if item is None:
                    self._tick()
                elif isinstance(item, Bar):
                    self.on_bar(item)
                elif self.stats.last_bar is not None:  # a trade update: act on it now
                    self._pump()
                    self.store.commit()
            except StoreWriteError as exc:  # bookkeeping of this pass lost; orders went out
                self._store_failed(exc)

    def restore_state(self, now: datetime) -> None:
        """A kill switch or reduce-only state recorded before a restart applies again."""
        control.restore_state(self.store, self._deliver_control, now)
        self._pump()
        self.store.commit()

    def reconcile(self, now: datetime, unplaced: Sequence[OrderRequest] = ()) -> tuple[int, int]:
        """Ledger vs broker after a (re)start: (ledger's net position, broker's net position).

        Fills that happened while ict-trader was down are read from the adopted orders first.
        A difference blocks new entries (reduce-only) and holds every order for the disputed
        shares; nothing is traded to fix it. Orders the ledger recorded but Alpaca never
        received (`unplaced`) are then sent — exits only if the position is not disputed; an
        entry that never went out is dropped, its moment has passed.
        """
        self.broker.poll_working()
        self._pump()
        result = self._check_position(now)
        for order in unplaced:
            if order.leg is Leg.ENTRY:
                self._deliver(OrderCanceled(now, order.client_order_id, "never reached Alpaca"))
            else:
                self._send_or_hold(order)
        self.broker.flush()
        self._pump()
        self.store.commit()
        return result

    @property
    def disputed(self) -> str | None:
        """Why the broker's position and the ledger disagree, or None when they agree."""
        if not self._disputes:
            return None
        return "; ".join(self._disputes[symbol] for symbol in sorted(self._disputes))

    def _positions(self) -> tuple[dict[str, int], dict[str, int]]:
        """(ledger, broker) net units per symbol, for every symbol ict-trader trades or holds
        a trade in. The broker's positions in other symbols are someone else's: not compared."""
        expected = self.engine.open_positions()
        held = self.broker.positions()
        symbols = set(self.symbols) | set(expected)
        return (
            {symbol: expected.get(symbol, 0) for symbol in symbols},
            {symbol: held.get(symbol, 0) for symbol in symbols},
        )

    def _check_position(self, now: datetime) -> tuple[int, int]:
        """Ledger vs broker net position, symbol by symbol. A difference blocks entries, holds
        the orders for the disputed symbol's shares and is recorded; agreement (restored by a
        person at the broker, or by `ict-trader reconcile --accept-broker`) sends the held
        orders. Returns the totals over the symbols (ledger, broker)."""
        expected, actual = self._positions()
        for symbol in sorted(expected):
            ours, theirs = expected[symbol], actual[symbol]
            if ours != theirs:
                reason = (
                    f"broker position {theirs} {symbol} differs from ict-trader's ledger "
                    f"({ours}); positions ict-trader did not open are never touched, and no "
                    "order is sent for disputed shares until the two agree: restore the "
                    "position at the broker, or run `ict-trader reconcile --accept-broker`"
                )
                if symbol not in self._disputes:
                    self.store.audit(now, "reconcile.mismatch", "reconciliation", reason)
                    log.warning("%s", reason)
                self._disputes[symbol] = reason
                # The broker holding at least the ledger's shares, on the same side (someone
                # else's shares beside ours), lets ict-trader still close its own.
                if ours * theirs > 0 and abs(theirs) >= abs(ours):
                    self._exits_covered.add(symbol)
                else:
                    self._exits_covered.discard(symbol)
                if self.engine.state is TradingState.ACTIVE:
                    self._deliver(ReduceOnly(now, reason, "reconciliation"))
            elif symbol in self._disputes:
                del self._disputes[symbol]
                self._exits_covered.discard(symbol)
                self.store.audit(
                    now,
                    "reconcile.agreed",
                    "reconciliation",
                    f"broker and ledger agree on {theirs} {symbol}",
                )
                released = [o for o in self._held.values() if o.symbol == symbol]
                for order in released:
                    del self._held[order.client_order_id]
                    self.broker.submit(order)
                self.broker.flush()
                self._pump()
        return sum(expected.values()), sum(actual.values())

    # ------------------------------------------------------------------ per bar

    def on_bar(self, bar: Bar) -> None:
        if not self._regular_hours(bar.time):
            # Alpaca's bars stream also carries pre- and after-market bars; the signal is
            # defined on regular hours only, so they are counted and dropped.
            self.stats.extended_hours += 1
            log.debug("extended-hours bar %s ignored", bar.time.isoformat())
            return
        if not bar.symbol and len(self.symbols) == 1:
            bar = bar._replace(symbol=self.symbols[0])
        if bar.symbol not in self.symbols:
            log.debug("bar of %s ignored: not traded", bar.symbol)
            return
        last = self._last_by_symbol.get(bar.symbol)
        if last is not None and bar.time <= last:
            self.stats.duplicates += 1
            return
        if last is not None and bar.time - last > _ONE_MINUTE:
            # Minutes missed on the stream are fetched over REST. A thin symbol may simply
            # have had no trade in a minute: then there is nothing to fetch, and nothing lost.
            gap = self._safe(
                functools.partial(
                    self._history, last + _ONE_MINUTE, bar.time - _ONE_MINUTE, (bar.symbol,)
                ),
                "backfill",
            )
            if gap is None:
                return  # the next bar's backfill (or the watchdog) fetches this one too
            for missing in gap:
                if self._is_new(missing):
                    self.stats.backfilled += 1
                    self._process(missing)
        self._process(bar)

    def caught_up(self, moment: datetime) -> bool:
        """Whether every traded symbol's bar of `moment` (or a later one) has been processed."""
        return all(
            self._last_by_symbol.get(s, moment - _ONE_MINUTE) >= moment for s in self.symbols
        )

    def _is_new(self, bar: Bar) -> bool:
        last = self._last_by_symbol.get(bar.symbol)
        return last is None or bar.time > last

    def _seen(self, bar: Bar) -> None:
        self._last_by_symbol[bar.symbol] = bar.time
        if self.stats.last_bar is None or bar.time > self.stats.last_bar:
            self.stats.last_bar = bar.time

    def _oldest_seen(self, latest: datetime) -> datetime:
        """The earliest of the symbols' last bars: where a catch-up must start fetching."""
        return min((self._last_by_symbol.get(s, latest) for s in self.symbols), default=latest)

    def _process(self, bar: Bar) -> None:
        close_time = bar.time + _ONE_MINUTE
        self._pump()  # what the trade-updates stream reported since the last bar
        if not self._account_known:  # the first bar: decide with a fresh account
            self._refresh_account(close_time)
        self._last_processed = time.monotonic()
        reason = self.engine.state_reason
        if self.engine.state is TradingState.REDUCING and reason and reason.startswith(STALE_DATA):
            self._deliver(Resume(close_time, "bars are flowing again", Breaker.STALE_DATA.actor))
        self._dispatch(self.engine.on_bar(bar))
        self._pump()
        if self.broker.working():
            # The polling fallback for stream updates that never came — after this bar's orders
            # are out, so a signal never waits on it. A fill it finds is handled now; a decision
            # made meanwhile on the older state is one the engine already handles, since a fill
            # can race any cancel (e.g. a target filling while its time exit cancels it).
            self._safe(self.broker.poll_working, "poll orders")
            self._retry_cancels()
            self._pump()
        # The account for the next bar's decisions (sizing, buying power, drawdown), fetched now
        # that this bar's orders are out: a signal never waits on a REST round trip, which to
        # Alpaca over the internet costs tens of milliseconds.
        self._refresh_account(close_time)
        self._mark_contracts(close_time)
        self.apply_control()
        self.stats.bars += 1
        due = bool(self._disputes) or self.stats.bars % RECONCILE_EVERY_BARS == 0
        if due and not self.broker.working():
            self._safe(lambda: self._check_position(close_time), "reconcile")
        self._seen(bar)
        self._stored(lambda: self._record_bar(bar))

    def _record_bar(self, bar: Bar) -> None:
        self.store.record_bar(bar)  # and the symbol's last close, status's mark
        assert self.stats.last_bar is not None
        self.store.set_state(LAST_BAR_KEY, self.stats.last_bar.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.store.commit()

    def _regular_hours(self, moment: datetime) -> bool:
        try:
            return self.calendar.session_at(moment) is not None
        except ValueError:  # beyond the loaded calendar: not a session ict-trader knows
            return False

    def _refresh_account(self, when: datetime) -> None:
        account = self._safe(lambda: self.broker.account(when), "account")
        if account is not None:  # else the engine keeps the last known equity
            self.note_broker(True)
            self._account_known = True
            self._deliver(account)
            self.store.record_equity(when, account.equity, account.cash)

    def _mark_contracts(self, when: datetime) -> None:
        """Each held option contract's quote into the engine (its loss limits value option
        positions by them), once per bar close — after the bar's orders are out, like the
        account. A contract without a usable quote keeps its last mark."""
        if self.desk is None or self._marked_at == when:
            return
        held = sorted(s for s in self.engine.open_positions() if instrument_of(s).is_option)
        if not held:
            return
        self._marked_at = when
        desk = self.desk
        for symbol in held:
            quote = self._safe(functools.partial(desk.quote, symbol, when), f"quote {symbol}")
            if quote is not None:
                mark = float(quote.mid)  # status and the dashboard value the contract at it
                self._stored(functools.partial(self.store.set_last_close, symbol, mark))
                self._deliver(ContractMarked(when, quote))

    def _retry_cancels(self) -> None:
        working = set(self.broker.working())
        for client_order_id in sorted(self._cancels & working):
            self._safe(functools.partial(self.broker.cancel, client_order_id), "cancel")
        self._cancels &= set(self.broker.working())

    def _safe(self, call: Callable[[], T], what: str) -> T | None:
        """Run a broker call whose failure must not stop trading: record it, carry on."""
        try:
            return call()
        except (APIError, requests.RequestException) as exc:
            message = f"{what}: {exc}"[:300]
            self.note_broker(False, message)
            self.stats.errors.append(message)
            self.broker.errors.append(message)
            log.warning("broker call failed (%s); continuing", message)
            last = self.stats.last_bar
            if last is not None:  # the error-rate breaker counts these too
                self._deliver(BrokerError(last + _ONE_MINUTE, message))
            return None

    def _tick(self) -> None:
        self._beat()
        last = self.stats.last_bar
        if last is None or not self._market_open:
            return
        if time.monotonic() - self._last_arrival > self.stale_after.total_seconds():
            self._catch_up()
        silent = time.monotonic() - self._last_processed
        limit = self.stale_data_after
        if (
            limit is not None
            and silent > limit.total_seconds()
            and self.engine.state is TradingState.ACTIVE
        ):
            # Not even REST has a new bar: decisions would be blind. No new entries until bars
            # return; open trades keep their resting targets and time exits.
            reason = f"{STALE_DATA}: no new bar for {silent:.0f} s (last {last:%H:%M}Z)"
            self._deliver(ReduceOnly(last + _ONE_MINUTE, reason, Breaker.STALE_DATA.actor))
            self._pump()
        elapsed = min(time.monotonic() - self._last_arrival, 59.0)
        now = last + _ONE_MINUTE + timedelta(seconds=elapsed)
        if self.engine.open_trades:
            self._dispatch(self.engine.handle(Tick(now)))
            self._pump()
        self.apply_control()
        self.store.commit()

    def apply_control(self) -> None:
        """Obey a pending `ict-trader kill/resume`; record the engine's trading state."""
        if control.apply_requests(self.store, self._deliver_control):
            self._pump()
        control.persist_state(self.store, self.engine, self._state_written)

    def _catch_up(self) -> None:
        """Staleness watchdog: the data socket is silent (dropped, or "connected" but mute).

        Ask the broker's clock what time it is and fetch every completed bar since the last one
        over REST, so a dead stream costs latency, never a bar. The SDK reconnects the socket
        itself, with jittered exponential backoff.
        """
        self._last_arrival = time.monotonic()
        last = self.stats.last_bar
        if last is None:
            return
        clock = self._safe(self.broker.clock_now, "clock")
        if clock is None:
            return
        start = self._oldest_seen(last) + _ONE_MINUTE
        gap = self._safe(lambda: self._history(start, clock - _ONE_MINUTE), "backfill")
        missing = [b for b in gap or [] if self._is_new(b)]
        if missing:
            self.stats.reconnects += 1
            log.warning("no bar for a while: fetched %d missing bar(s) over REST", len(missing))
        for bar in missing:
            self.stats.backfilled += 1
            self._process(bar)

    # ------------------------------------------------------------------ plumbing

    def _history(
        self, start: datetime, end: datetime, symbols: Sequence[str] | None = None
    ) -> Sequence[Bar]:
        """Regular-hours bars of `symbols` (default: every traded one) in [start, end], in the
        order the stream would have sent them: by minute, then symbol."""
        if end < start:
            return []
        wanted = list(symbols or self.symbols)
        request = StockBarsRequest(
            symbol_or_symbols=wanted,
            timeframe=TimeFrame.Minute,
            start=start,
            end=end,
            feed=self.endpoints.feed,
        )
        answer = self.broker.read(lambda: self.data.get_stock_bars(request))
        found = answer.data if hasattr(answer, "data") else {}
        bars = []
        for symbol in wanted:
            for row in found.get(symbol, []):
                moment = row.timestamp.astimezone(UTC)
                if self.calendar.session_at(moment) is not None:  # regular hours only
                    bars.append(
                        Bar(
                            moment,
                            float(row.open),
                            float(row.high),
                            float(row.low),
                            float(row.close),
                            float(row.volume),
                            symbol,
                        )
                    )
        bars.sort(key=lambda bar: (bar.time, bar.symbol))
        return bars

    def _pump(self) -> None:
        self.broker.retry_deferred()
        events = self.broker.events()
        while events:
            for event in events:
                self._deliver(event)
            self.broker.retry_deferred()  # an entry's fill may free a deferred exit
            events = self.broker.events()

    def _deliver_control(self, event: Event) -> None:
        """A person's request. `reconcile --accept-broker` (ReleaseTrades) is applied only while
        the broker really disagrees with the ledger — asked now, never assumed: releasing
        trades whose shares the broker holds would leave them managed by nobody."""
        if isinstance(event, ReleaseTrades):
            both = self._safe(self._positions, "position")
            differing = (
                sorted(s for s in both[0] if both[0][s] != both[1][s]) if both is not None else []
            )
            if both is None or not differing:
                agreed = ", ".join(f"{both[1][s]} {s}" for s in sorted(both[1])) if both else ""
                why = (
                    "Alpaca's position could not be read; run the command again"
                    if both is None
                    else f"broker and ledger agree on {agreed}: nothing to release"
                )
                self.store.audit(event.time, "release.refused", event.actor, why)
                log.warning("release request not applied: %s", why)
                return
            expected, actual = both
            self.store.audit(
                event.time,
                "release.applied",
                event.actor,
                ", ".join(f"ledger {expected[s]}, broker {actual[s]} {s}" for s in differing)
                + f": {event.reason}",
            )
            # Only the trades in the disputed symbols: the others are still ict-trader's.
            event = ReleaseTrades(event.time, event.reason, event.actor, frozenset(differing))
        self._deliver(event)
        if isinstance(event, ReleaseTrades):
            self._safe(lambda: self._check_position(event.time), "reconcile")

    def _deliver(self, event: Event) -> None:
        self.kernel.deliver(event)
        self.broker.flush()  # an OCO half whose sibling never came goes out alone

    def _record_intent(self, order: OrderRequest) -> None:
        self.store.record_order(order)
        self.store.commit()

    def _stored(self, write: Callable[[], object]) -> bool:
        """Run a store write; if the store cannot be written (disk full, locked past every
        retry), trading goes on without it rather than leaving positions unmanaged: entries
        stop, the person is told, and the write is tried again with the next bar."""
        if self._store_broken is not None:
            # Writes stay in order: what the outage kept out goes first, or this one waits too.
            if time.monotonic() - self._store_retried_at >= STORE_RETRY_SECONDS:
                self._store_recovered()
            if self._store_broken is not None:
                if len(self._unwritten) < MAX_UNWRITTEN:
                    self._unwritten.append(write)
                return False
        try:
            write()
        except StoreWriteError as exc:
            # kept, in order, and written again once the store takes writes (bounded: a store
            # down for days would otherwise grow this without limit)
            if len(self._unwritten) < MAX_UNWRITTEN:
                self._unwritten.append(write)
            self._store_failed(exc)
            return False
        return True

    def _store_failed(self, exc: StoreWriteError) -> None:
        log.error("store write failed: %s", exc)
        if self._store_broken is not None:
            return
        self._store_broken = str(exc)
        moment = _now(self)
        if self.notifier is not None:  # told, not recorded: the store is what failed
            self.notifier.send(texts.store_unwritable(str(exc), moment))
        if self.engine.state is TradingState.ACTIVE:
            # straight to the engine: recording the event would fail the same way
            reason = f"{STORE_UNWRITABLE}: {exc}"
            self._dispatch(self.engine.handle(ReduceOnly(moment, reason, "store")))

    def _store_recovered(self) -> None:
        if self._store_broken is None:
            return
        self._store_retried_at = time.monotonic()
        try:
            while self._unwritten:  # what the outage kept from the ledger, in order
                self._unwritten[0]()
                self.store.commit()
                self._unwritten.popleft()
        except StoreWriteError as exc:
            self._store_failed(exc)
            return
        self._store_broken = None
        log.warning("the store can be written again")
        reason = self.engine.state_reason
        if (
            self.engine.state is TradingState.REDUCING
            and reason
            and reason.startswith(STORE_UNWRITABLE)
        ):
            self._deliver(Resume(_now(self), "the store can be written again", "store"))

    def _send_or_hold(self, order: OrderRequest) -> None:
        """Send an order — unless the position is disputed and the order would trade shares
        the broker may not hold: a hand-closed short "closed" again by the bot would open a
        long nobody manages. Entries are blocked by the engine's reduce-only state already."""
        dispute = self._disputes.get(order.symbol)
        if dispute is None or order.leg is Leg.ENTRY or order.symbol in self._exits_covered:
            self.broker.submit(order)
            return
        self._held[order.client_order_id] = order
        moment = order.created_at or _now(self)
        text = (
            f"{order.side.value} {order.qty} {order.symbol} ({order.client_order_id}) held: "
            f"{dispute}"
        )
        self.store.audit(moment, "order.held", "reconciliation", text)
        self.kernel.tell(texts.order_held(text, moment))

    def _dispatch(self, outputs: Sequence[Output]) -> None:
        self.kernel.dispatch(outputs)
        self.broker.flush()  # an OCO half whose sibling never came goes out alone

    # ------------------------------------------------------------------ executing commands

    def submit(self, order: OrderRequest) -> None:
        """The intent is durable before the order exists anywhere. If the store cannot be
        written, an entry is not sent; an exit or target still is — its client id is
        deterministic, so a restart finds it at Alpaca instead of sending it twice."""
        recorded = self._stored(functools.partial(self._record_intent, order))
        moment = order.created_at or _now(self)
        refusal = refused_entry(order, self.calendar, max(moment, _now(self)))
        if refusal is not None:
            log.warning("%s %s", order.client_order_id, refusal)
            self._deliver(OrderRejected(moment, order.client_order_id, refusal))
            return
        if not recorded and order.leg is Leg.ENTRY:
            self._deliver(
                OrderRejected(
                    _now(self), order.client_order_id, "not sent: the store cannot be written"
                )
            )
            return
        self._send_or_hold(order)

    def quote_contract(self, request: RequestContract) -> Event:
        """The contract desk's answer; without a desk, why there is no option trading."""
        if self.desk is None:
            return ContractUnavailable(
                request.time, request.request_id, "this live shell has no option contract desk"
            )
        return self.desk.quote_contract(request)

    def cancel(self, client_order_id: str) -> None:
        if self._held.pop(client_order_id, None) is not None:
            self._deliver(OrderCanceled(_now(self), client_order_id, "held"))
            return
        self._cancels.add(client_order_id)
        self._safe(functools.partial(self.broker.cancel, client_order_id), "cancel")


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(shell: LiveShell) -> datetime:
    """The shell's best idea of the time: the last bar's close (events need a time)."""
    last = shell.stats.last_bar
    return last + _ONE_MINUTE if last is not None else datetime.now(UTC)
