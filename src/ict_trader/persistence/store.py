"""SQLite persistence: the only module that writes SQL.

One file holds everything a run needs to be audited, resumed or shown on the dashboard:
signals, skipped entries, orders (client and broker ids), fills, trades, equity snapshots,
audit events and a small key/value state (e.g. the last processed bar). WAL mode lets the
dashboard read while the trading loop writes. Prices and P&L are stored as exact decimal strings
(fills can be sub-penny), equity snapshots as integer cents; never floats.

Concurrency, because a kill switch that fails on "database is locked" is no kill switch:

- One trading process per store: a writer `Store` holds an OS lock on `<store>.lock` (see
  `store_lock`), so a second `ict-trader run` refuses with "already running (pid N)".
- No transaction is held between units of work. A write transaction starts at the first write
  with `BEGIN IMMEDIATE` (it takes the write lock up front, so it can never fail half-way with a
  stale snapshot), waits `busy_timeout` for another writer, and is retried a few times with
  backoff; reads in between see every other connection's latest commit.
- A write that still cannot be made raises a `StoreError` subclass — `StoreBusyError`,
  `StoreFullError`, `StoreWriteError` — after rolling the transaction back, so the connection
  stays usable and the caller knows that nothing since its last commit was recorded.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ict_trader.core.bars import Bar
from ict_trader.core.contracts import OptionDetails, PremiumSource
from ict_trader.core.events import (
    EntrySkipped,
    ExitReason,
    Notify,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    SignalDetected,
    TradeUpdated,
    TradeView,
)
from ict_trader.core.ledger import FillRecord, Ledger, OrderRecord
from ict_trader.core.orders import Leg, OrderRequest, OrderStatus, OrderType, Side
from ict_trader.core.signal import Direction, Signal
from ict_trader.persistence.store_lock import AlreadyRunningError, WriterLock

SCHEMA_VERSION = 5
BUSY_TIMEOUT_SECONDS = 5.0  # how long one attempt waits for another connection's write lock
# Pauses between attempts to take the write lock once busy_timeout ran out (with jitter).
LOCK_RETRY_DELAYS: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0)
# The broker events a store records (the order's life); the others carry nothing to keep.
ORDER_EVENTS = (OrderAccepted, OrderFilled, OrderRejected, OrderCanceled)
pause = time.sleep  # between those attempts (a seam for tests)

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        mode TEXT NOT NULL,
        data_source TEXT,
        config TEXT NOT NULL
    );
    CREATE TABLE signals (
        signal_id TEXT PRIMARY KEY,
        time TEXT NOT NULL,
        direction TEXT NOT NULL,
        close TEXT NOT NULL,
        atr REAL NOT NULL,
        extreme TEXT NOT NULL,
        mss_level TEXT NOT NULL
    );
    CREATE TABLE skips (
        signal_id TEXT NOT NULL REFERENCES signals(signal_id),
        profile TEXT NOT NULL,
        reason TEXT NOT NULL,
        time TEXT NOT NULL,
        PRIMARY KEY (signal_id, profile)
    );
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        broker_order_id TEXT,
        trade_id TEXT NOT NULL,
        profile TEXT NOT NULL,
        leg TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty INTEGER NOT NULL,
        type TEXT NOT NULL,
        limit_price TEXT,
        stop_price TEXT,
        time_in_force TEXT NOT NULL,
        oco_group TEXT,
        status TEXT NOT NULL,
        filled_qty INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX orders_by_trade ON orders(trade_id);
    CREATE TABLE fills (
        execution_id TEXT PRIMARY KEY,
        client_order_id TEXT NOT NULL REFERENCES orders(client_order_id),
        broker_order_id TEXT NOT NULL,
        time TEXT NOT NULL,
        qty INTEGER NOT NULL,
        price TEXT NOT NULL,
        commission TEXT NOT NULL
    );
    CREATE TABLE trades (
        trade_id TEXT PRIMARY KEY,
        signal_id TEXT NOT NULL REFERENCES signals(signal_id),
        profile TEXT NOT NULL,
        direction TEXT NOT NULL,
        status TEXT NOT NULL,
        planned_qty INTEGER NOT NULL,
        qty INTEGER NOT NULL,
        entry_order_id TEXT NOT NULL,
        entry_price TEXT,
        entry_time TEXT,
        target_price TEXT,
        stop_price TEXT,
        exit_price TEXT,
        exit_time TEXT,
        exit_reason TEXT,
        pnl TEXT,
        commission TEXT NOT NULL,
        feed TEXT NOT NULL
    );
    CREATE TABLE equity (
        time TEXT PRIMARY KEY,
        equity_cents INTEGER NOT NULL,
        cash_cents INTEGER NOT NULL
    );
    CREATE TABLE audit (
        audit_id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # v2: the session's bars, so the dashboard can chart today's candles with the trades on them.
    2: """
    CREATE TABLE bars (
        time TEXT PRIMARY KEY,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL
    );
    """,
    # v3: every kill/resume/release request kept, in order, so none is overwritten before the
    # bot reads it; the single pending request of v2 (a state key) moves here.
    3: """
    CREATE TABLE control_requests (
        request_id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('kill', 'resume', 'release')),
        reason TEXT NOT NULL,
        actor TEXT NOT NULL
    );
    INSERT INTO control_requests (request_id, time, kind, reason, actor)
        SELECT json_extract(value, '$.id'), json_extract(value, '$.time'),
               json_extract(value, '$.kind'), json_extract(value, '$.reason'),
               json_extract(value, '$.actor')
        FROM state WHERE key = 'control_request';
    DELETE FROM state WHERE key = 'control_request';
    """,
    # v4: several symbols. Signals, trades, fills and bars name their symbol (orders always
    # did); the last close is kept per symbol; runs record `symbols`. Rows written before were
    # of the one symbol their run traded: a fill's and a trade's is their order's, a signal's
    # that of a trade on it, else the latest run's.
    4: """
    ALTER TABLE signals ADD COLUMN symbol TEXT NOT NULL DEFAULT '';
    ALTER TABLE trades ADD COLUMN symbol TEXT NOT NULL DEFAULT '';
    ALTER TABLE fills ADD COLUMN symbol TEXT NOT NULL DEFAULT '';
    UPDATE fills SET symbol = COALESCE(
        (SELECT o.symbol FROM orders o WHERE o.client_order_id = fills.client_order_id), '');
    UPDATE trades SET symbol = COALESCE(
        (SELECT o.symbol FROM orders o WHERE o.client_order_id = trades.entry_order_id), '');
    UPDATE signals SET symbol = COALESCE(
        (SELECT t.symbol FROM trades t WHERE t.signal_id = signals.signal_id AND t.symbol != ''
         LIMIT 1),
        (SELECT json_extract(r.config, '$.symbol') FROM runs r ORDER BY r.run_id DESC LIMIT 1),
        'QQQ');
    UPDATE trades SET symbol = (SELECT s.symbol FROM signals s WHERE s.signal_id = trades.signal_id)
        WHERE symbol = '';
    CREATE TABLE bars_v4 (
        symbol TEXT NOT NULL,
        time TEXT NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        PRIMARY KEY (symbol, time)
    );
    INSERT INTO bars_v4 (symbol, time, open, high, low, close, volume)
        SELECT COALESCE(
            (SELECT json_extract(r.config, '$.symbol') FROM runs r ORDER BY r.run_id DESC LIMIT 1),
            'QQQ'), time, open, high, low, close, volume FROM bars;
    DROP TABLE bars;
    ALTER TABLE bars_v4 RENAME TO bars;
    UPDATE state SET key = 'last_close.' || COALESCE(
        (SELECT json_extract(r.config, '$.symbol') FROM runs r ORDER BY r.run_id DESC LIMIT 1),
        'QQQ') WHERE key = 'last_close';
    UPDATE runs SET config = json_set(json_remove(config, '$.symbol'),
        '$.symbols', json_array(json_extract(config, '$.symbol')),
        '$.risk.max_symbol_shares', '0',
        '$.risk.max_symbol_notional', '0',
        '$.risk.max_symbol_equity_pct', '0',
        '$.risk.symbol_daily_loss_limit', '0')
        WHERE json_type(config, '$.symbol') = 'text' AND json_type(config, '$.risk') = 'object'
    """,
    # v5: options. An order keeps Alpaca's position_intent; an option trade keeps its contract's
    # quote, greeks and premium source at entry (JSON), so reports can say "modelled".
    5: """
    ALTER TABLE orders ADD COLUMN position_intent TEXT;
    ALTER TABLE trades ADD COLUMN option TEXT;
    """,
}
LAST_CLOSE_PREFIX = "last_close."  # + symbol: the mark for unrealized P&L in status


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, corrupt file, locked)."""


class StoreLockedError(StoreError):
    """Another live process is already trading on this store (it holds the writer lock)."""


class StoreWriteError(StoreError):
    """A write failed and its transaction was rolled back: nothing since the last commit is
    recorded. The store stays usable; the caller decides whether to retry or stop."""


class StoreBusyError(StoreWriteError):
    """Another connection kept the write lock through every retry."""


class StoreFullError(StoreWriteError):
    """The database or the disk holding it is full."""


_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def cents(amount: Decimal) -> int:
    """Dollars to integer cents, banker's rounding (amounts are already cent-exact in practice)."""
    return round(amount * 100)  # a Decimal's round() to an int is half-even, whatever the context


# A bar's minute as text, for `_iso`: "THH:MM:00Z" for each minute of the day, and the days
# seen so far as "YYYY-MM-DD".
_CLOCK = tuple(f"T{minute // 60:02d}:{minute % 60:02d}:00Z" for minute in range(1440))
_DAYS: dict[date, str] = {}


def _iso(moment: datetime) -> str:
    """UTC ISO-8601 with a Z, to the second.

    Nearly every moment written is a bar's minute in UTC (an equity snapshot for every minute
    in a position, the orders and fills of that minute); those are put together from the day's
    text and the minute's, about six times cheaper than `isoformat` of an aware datetime.
    """
    if moment.tzinfo is UTC and not moment.second and not moment.microsecond:
        day = moment.date()
        text = _DAYS.get(day)
        if text is None:
            text = _DAYS[day] = day.isoformat()
        return text + _CLOCK[moment.hour * 60 + moment.minute]
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    if moment.microsecond:
        moment = moment.replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class Store:
    """A connection to one ict-trader database; never used by two threads at once."""

    def __init__(
        self,
        path: Path | str,
        *,
        reader: bool = False,
        lock: bool | None = None,
        busy_timeout: float | None = None,
    ) -> None:
        """`reader=True` is for the dashboard and the command line's `status`: it never takes
        the writer lock. `lock` (default: not a reader) takes the store's one-writer-process lock;
        `ict-trader kill`/`resume` write a request without it (lock=False), next to the bot."""
        self.path = Path(path)
        self.reader = reader
        self._equity_rows: list[tuple[str, int, int]] = []
        self._trade_views: dict[str, TradeView] = {}  # the latest of each, until `_flush`
        self._audit_rows: list[tuple[str, str, str, str, str | None]] = []  # until `_flush`
        # Which bars the trades were decided on: "file" (backtest/replay data) or the live feed
        # ("iex", "sip"); IEX bars differ from the consolidated tape, so it is kept per trade.
        self.data_feed = "file"
        self._lock: WriterLock | None = None
        if lock if lock is not None else not reader:
            try:
                self._lock = WriterLock(self.path)
            except AlreadyRunningError as exc:
                raise StoreLockedError(
                    f"{self.path}: {exc}; stop it first, or use another --db"
                ) from None
            except OSError as exc:
                raise StoreError(f"{self.path}: {exc.strerror}") from None
        try:
            # Used by one thread at a time, but not always the one that opened it (a shell may be
            # built in one thread and run in another): hence check_same_thread=False.
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_SECONDS if busy_timeout is None else busy_timeout,
            )
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except StoreError:
            self._db.close()
            self._release_lock()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            self._release_lock()
            if _disk_full(self.path):  # SQLite says "disk I/O error" when it cannot map the WAL
                raise StoreFullError(
                    f"{self.path}: database or disk is full (cannot open it: {exc}); "
                    "nothing was recorded"
                ) from None
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ------------------------------------------------------------------ lifecycle

    def _migrate(self) -> None:
        version = self._user_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this ict-trader "
                f"({SCHEMA_VERSION}); upgrade ict-trader"
            )
        if version == SCHEMA_VERSION:
            return
        # Two processes may open a new store at once: the version is read again under the
        # write lock, so each migration runs exactly once.
        self._begin_write()
        try:
            version = self._user_version()
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(_MIGRATIONS[target]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _user_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ transactions

    def _begin_write(self) -> None:
        """Take the write lock now (BEGIN IMMEDIATE), retrying a busy store with backoff."""
        delays = iter(LOCK_RETRY_DELAYS)
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in _BUSY_CODES:
                    raise self._write_failed(exc) from None
                delay = next(delays, None)
                if delay is None:
                    raise StoreBusyError(
                        f"{self.path}: the store stayed locked by another connection; "
                        "nothing was recorded"
                    ) from None
                pause(delay * random.uniform(0.5, 1.5))  # jitter: waiters spread out

    def _write(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Every write goes through here: it opens the transaction and maps failures."""
        if not self._db.in_transaction:
            self._begin_write()
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise self._write_failed(exc) from None

    def _write_failed(self, exc: sqlite3.Error) -> StoreWriteError:
        """Roll back (SQLite may already have) and say what happened, naming the store."""
        self._equity_rows.clear()
        self._trade_views.clear()
        self._audit_rows.clear()
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back itself
                self._db.execute("ROLLBACK")
        code = getattr(exc, "sqlite_errorcode", None)
        lost = "nothing since the last commit was recorded"
        if code == sqlite3.SQLITE_FULL:
            return StoreFullError(f"{self.path}: database or disk is full; {lost}")
        if code in _BUSY_CODES:
            return StoreBusyError(f"{self.path}: the store is locked ({exc}); {lost}")
        return StoreWriteError(f"{self.path}: cannot write ({exc}); {lost}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """An atomic unit of work of its own: committed on success, rolled back on any error.

        For writers beside the bot (a kill request): the lock is taken first, so what is read
        inside is current, and the caller knows the work is durable once the block has ended.
        On a connection with uncommitted work already, that work is committed (or dropped) with
        the block, as one unit.
        """
        if not self._db.in_transaction:
            self._begin_write()
        try:
            yield
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        """Make everything recorded so far durable, atomically."""
        self._flush()
        if self._db.in_transaction:
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise self._write_failed(exc) from None

    def close(self) -> None:
        """Close, dropping anything not committed: only the shells know when a unit of work
        (a bar, a whole backtest) is complete, and they commit it explicitly."""
        self._equity_rows.clear()
        self._trade_views.clear()
        self._audit_rows.clear()
        try:
            # closing must not fail a shutdown; nothing uncommitted was wanted anyway
            with contextlib.suppress(sqlite3.Error):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._db.close()
        finally:
            self._release_lock()

    def begin(self) -> None:
        """Start a write transaction now if none is open (kept for callers that group writes)."""
        if not self._db.in_transaction:
            self._begin_write()

    def rollback(self) -> None:
        """Drop everything since the last commit (e.g. a bar interrupted half-way)."""
        self._equity_rows.clear()
        self._trade_views.clear()
        self._audit_rows.clear()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    def start_run(self, mode: str, data_source: str | None, config: dict[str, Any]) -> int:
        cursor = self._write(
            "INSERT INTO runs (started_at, mode, data_source, config) VALUES (?, ?, ?, ?)",
            (_iso(datetime.now(UTC)), mode, data_source, json.dumps(config, default=str)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def record_signal(self, detected: SignalDetected) -> None:
        s = detected.signal
        self._write(
            "INSERT OR IGNORE INTO signals (signal_id, time, direction, close, atr, extreme,"
            " mss_level, symbol) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                detected.signal_id,
                _iso(s.time),
                s.direction.value,
                repr(s.close),
                s.atr,
                repr(s.extreme),
                repr(s.mss_level),
                s.symbol,
            ),
        )

    def record_skip(self, skipped: EntrySkipped) -> None:
        self._write(
            "INSERT OR REPLACE INTO skips VALUES (?, ?, ?, ?)",
            (skipped.signal_id, skipped.profile, skipped.reason, _iso(skipped.time)),
        )

    def record_order(self, order: OrderRequest) -> None:
        assert order.created_at is not None
        created = _iso(order.created_at)
        self._write(
            "INSERT OR IGNORE INTO orders (client_order_id, trade_id, profile, leg, symbol, side,"
            " qty, type, limit_price, stop_price, time_in_force, oco_group, status, created_at,"
            " updated_at, position_intent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                order.client_order_id,
                order.trade_id,
                order.profile,
                order.leg.value,
                order.symbol,
                order.side.value,
                order.qty,
                order.type.value,
                _dec(order.limit_price),
                _dec(order.stop_price),
                order.time_in_force,
                order.oco_group,
                OrderStatus.NEW.value,
                created,
                created,
                order.position_intent,
            ),
        )

    def record_order_event(
        self, event: OrderAccepted | OrderFilled | OrderRejected | OrderCanceled
    ) -> None:
        when = _iso(event.time)
        order_id = event.client_order_id
        if isinstance(event, OrderAccepted):
            self._write(
                "UPDATE orders SET broker_order_id = ?, status = ?, updated_at = ?"
                " WHERE client_order_id = ? AND status = 'new'",
                (event.broker_order_id, OrderStatus.ACCEPTED.value, when, order_id),
            )
        elif isinstance(event, OrderFilled):
            self._write(
                "INSERT OR IGNORE INTO fills (execution_id, client_order_id, broker_order_id, time,"
                " qty, price, commission, symbol) VALUES (?, ?, ?, ?, ?, ?, ?,"
                " COALESCE((SELECT symbol FROM orders WHERE client_order_id = ?), ''))",
                (
                    event.execution_id,
                    order_id,
                    event.broker_order_id,
                    when,
                    event.qty,
                    str(event.price),
                    str(event.commission),
                    order_id,
                ),
            )
            status = OrderStatus.FILLED if event.order_complete else OrderStatus.PARTIALLY_FILLED
            self._write(
                "UPDATE orders SET broker_order_id = ?, status = ?, filled_qty = ?, updated_at = ?"
                " WHERE client_order_id = ?",
                (event.broker_order_id, status.value, event.cumulative_qty, when, order_id),
            )
        else:
            status = (
                OrderStatus.REJECTED
                if isinstance(event, OrderRejected)
                else (
                    OrderStatus.EXPIRED
                    if event.reason.startswith("expired")
                    else OrderStatus.CANCELED
                )
            )
            self._write(
                "UPDATE orders SET status = ?, reason = ?, updated_at = ?"
                " WHERE client_order_id = ?",
                (status.value, event.reason, when, order_id),
            )

    def record(self, command: TradeUpdated | SignalDetected | EntrySkipped | Notify) -> None:
        """Record an engine command that only needs remembering (every shell does the same)."""
        if isinstance(command, TradeUpdated):
            self.record_trade(command.trade)
        elif isinstance(command, SignalDetected):
            self.record_signal(command)
        elif isinstance(command, EntrySkipped):
            self.record_skip(command)
        else:
            self.audit(command.time, f"notify.{command.level.value}", "engine", command.message)

    def record_event(self, event: object) -> None:
        """Record a broker event about an order; other events carry nothing to store."""
        if isinstance(event, ORDER_EVENTS):
            self.record_order_event(event)

    def record_trade(self, trade: TradeView) -> None:
        """Buffered like the equity snapshots: a trade changes several times within a unit of
        work (a bar, a whole backtest) and only its state at the commit is ever read, so the
        latest view of each goes to SQLite in one executemany at the next commit or read."""
        self._trade_views[trade.trade_id] = trade

    def _trade_row(self, trade: TradeView) -> tuple[Any, ...]:
        return (
            trade.trade_id,
            trade.signal_id,
            trade.profile,
            trade.direction,
            trade.status,
            trade.planned_qty,
            trade.qty,
            trade.entry_order_id,
            _dec(trade.entry_price),
            _iso(trade.entry_time) if trade.entry_time else None,
            _dec(trade.target_price),
            _dec(trade.stop_price),
            _dec(trade.exit_price),
            _iso(trade.exit_time) if trade.exit_time else None,
            trade.exit_reason.value if trade.exit_reason else None,
            _dec(trade.pnl),
            str(trade.commission),
            self.data_feed,
            trade.symbol,
            option_json(trade.option),
        )

    def record_equity(self, moment: datetime, equity: Decimal, cash: Decimal) -> None:
        """Buffered: a snapshot every minute in a position is the most frequent write, so these
        go to SQLite in one executemany at the next commit (they are only durable then anyway).
        """
        self._equity_rows.append((_iso(moment), cents(equity), cents(cash)))

    def _flush(self) -> None:
        """Write the buffered rows (trades, equity snapshots, audit events) within the open
        transaction."""
        if not self._equity_rows and not self._trade_views and not self._audit_rows:
            return
        if not self._db.in_transaction:
            self._begin_write()
        try:
            if self._trade_views:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO trades ({', '.join(_TRADE_COLUMNS)})"
                    f" VALUES ({', '.join('?' * len(_TRADE_COLUMNS))})",
                    map(self._trade_row, self._trade_views.values()),
                )
            if self._equity_rows:
                self._db.executemany(
                    "INSERT OR REPLACE INTO equity VALUES (?, ?, ?)", self._equity_rows
                )
            if self._audit_rows:
                self._db.executemany(
                    "INSERT INTO audit (time, kind, actor, message, data) VALUES (?, ?, ?, ?, ?)",
                    self._audit_rows,
                )
        except sqlite3.OperationalError as exc:
            raise self._write_failed(exc) from None
        self._trade_views.clear()
        self._audit_rows.clear()
        self._equity_rows.clear()

    def audit(
        self, moment: datetime, kind: str, actor: str, message: str, data: Any = None
    ) -> None:
        """Buffered like the trades: appended in order at the next commit or read (every
        notice of a backtest is one)."""
        self._audit_rows.append(
            (_iso(moment), kind, actor, message, None if data is None else json.dumps(data))
        )

    def record_bar(self, bar: Bar) -> None:
        """Keep a bar for the dashboard's chart and the audit; it must name its symbol."""
        if not bar.symbol:
            raise ValueError(f"bar {bar.time.isoformat()} names no symbol")
        self._write(
            "INSERT OR REPLACE INTO bars (symbol, time, open, high, low, close, volume)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bar.symbol, _iso(bar.time), bar.open, bar.high, bar.low, bar.close, bar.volume),
        )
        self._write(
            "INSERT OR REPLACE INTO state VALUES (?, ?)",
            (LAST_CLOSE_PREFIX + bar.symbol, repr(bar.close)),
        )

    def set_last_close(self, symbol: str, close: float) -> None:
        """The mark `status` values `symbol`'s open trades at (bars not kept, e.g. a backtest)."""
        self.set_state(LAST_CLOSE_PREFIX + symbol, repr(close))

    def last_closes(self) -> dict[str, Decimal]:
        """The last close recorded per symbol."""
        rows = self._db.execute(
            "SELECT key, value FROM state WHERE key LIKE ? ESCAPE '\\'",
            (LAST_CLOSE_PREFIX.replace("_", "\\_") + "%",),
        )
        return {str(key)[len(LAST_CLOSE_PREFIX) :]: Decimal(value) for key, value in rows}

    def set_state(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def add_control_request(self, moment: datetime, kind: str, reason: str, actor: str) -> int:
        """Append a kill/resume request; its number orders it after every earlier one."""
        cursor = self._write(
            "INSERT INTO control_requests (time, kind, reason, actor) VALUES (?, ?, ?, ?)",
            (_iso(moment), kind, reason, actor),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def control_requests(self, after: int = 0) -> list[dict[str, Any]]:
        """The requests numbered above `after`, oldest first."""
        cursor = self._db.execute(
            "SELECT request_id, time, kind, reason, actor FROM control_requests"
            " WHERE request_id > ? ORDER BY request_id",
            (after,),
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    # ------------------------------------------------------------------ reads

    def state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def trades(self, status: str | None = None) -> list[TradeView]:
        self._flush()
        query = f"SELECT {', '.join(_TRADE_COLUMNS)} FROM trades"
        params: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        query += " ORDER BY entry_order_id"
        return [_trade_from_row(row) for row in self._db.execute(query, params)]

    def exit_fills(self) -> list[tuple[str, datetime, int, Decimal, Decimal]]:
        """Every fill of an exit order (target, stop, market exit): (trade id, time, qty, price,
        commission), oldest first — what a partly exited trade has realized so far."""
        rows = self._db.execute(
            "SELECT o.trade_id, f.time, f.qty, f.price, f.commission FROM fills f"
            " JOIN orders o ON o.client_order_id = f.client_order_id"
            " WHERE o.leg != 'entry' ORDER BY f.time, f.rowid"
        ).fetchall()
        return [
            (str(r[0]), _parse_time(r[1]), int(r[2]), Decimal(r[3]), Decimal(r[4])) for r in rows
        ]

    def orders(self) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT * FROM orders ORDER BY created_at, client_order_id")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def bars_between(self, start: datetime, end: datetime, symbol: str | None = None) -> list[Bar]:
        """Bars in [start, end), of `symbol` or of every symbol, in time then symbol order."""
        query = (
            "SELECT time, open, high, low, close, volume, symbol FROM bars"
            " WHERE time >= ? AND time < ?"
        )
        params: tuple[str, ...] = (_iso(start), _iso(end))
        if symbol is not None:
            query += " AND symbol = ?"
            params += (symbol,)
        rows = self._db.execute(query + " ORDER BY time, symbol", params)
        return [Bar(_parse_time(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def bar_symbols(self) -> list[str]:
        """The symbols with bars kept, alphabetically."""
        rows = self._db.execute("SELECT DISTINCT symbol FROM bars ORDER BY 1")
        return [str(row[0]) for row in rows]

    def bar_days(self) -> list[str]:
        """The dates (YYYY-MM-DD) with bars, oldest first; regular-hours bars (13:30-20:00 UTC)
        fall on the same date in New York and in UTC."""
        rows = self._db.execute("SELECT DISTINCT substr(time, 1, 10) FROM bars ORDER BY 1")
        return [str(row[0]) for row in rows]

    def signals_between(
        self, start: datetime, end: datetime, symbol: str | None = None
    ) -> list[dict[str, Any]]:
        """Signals in [start, end), of `symbol` or of every symbol, in time then symbol order."""
        query = (
            "SELECT signal_id, time, direction, close, atr, extreme, mss_level, symbol"
            " FROM signals WHERE time >= ? AND time < ?"
        )
        params: tuple[str, ...] = (_iso(start), _iso(end))
        if symbol is not None:
            query += " AND symbol = ?"
            params += (symbol,)
        cursor = self._db.execute(query + " ORDER BY time, symbol", params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def skips(self) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT * FROM skips ORDER BY time, profile")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def audit_events(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` audit events, newest first."""
        self._flush()
        cursor = self._db.execute(
            "SELECT audit_id, time, kind, actor, message FROM audit ORDER BY audit_id DESC LIMIT ?",
            (limit,),
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def latest_account(self) -> tuple[datetime, Decimal, Decimal] | None:
        """The last account snapshot: (time, equity, cash) as the broker reported them."""
        self._flush()
        row = self._db.execute(
            "SELECT time, equity_cents, cash_cents FROM equity ORDER BY time DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return (_parse_time(row[0]), Decimal(row[1]) / 100, Decimal(row[2]) / 100)

    def data_version(self) -> int:
        """Changes whenever another connection commits: the dashboard's cheap change check."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def equity_curve(self) -> list[tuple[datetime, Decimal]]:
        self._flush()
        rows = self._db.execute("SELECT time, equity_cents FROM equity ORDER BY time")
        return [(_parse_time(row[0]), Decimal(row[1]) / 100) for row in rows]

    def last_run(self) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT run_id, started_at, mode, data_source, config FROM runs"
            " ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {
            "run_id": row[0],
            "started_at": row[1],
            "mode": row[2],
            "data_source": row[3],
            "config": json.loads(row[4]),
        }

    def load_ledger(self) -> Ledger:
        """Everything needed to resume: trades, their signals, orders and fills."""
        signals = {
            row[0]: Signal(
                time=_parse_time(row[1]),
                direction=Direction(row[2]),
                close=float(row[3]),
                atr=float(row[4]),
                extreme=float(row[5]),
                mss_level=float(row[6]),
                symbol=row[7],
            )
            for row in self._db.execute(
                "SELECT signal_id, time, direction, close, atr, extreme, mss_level, symbol"
                " FROM signals"
            )
        }
        orders = [
            OrderRecord(
                request=OrderRequest(
                    client_order_id=row["client_order_id"],
                    symbol=row["symbol"],
                    side=Side(row["side"]),
                    qty=int(row["qty"]),
                    type=OrderType(row["type"]),
                    trade_id=row["trade_id"],
                    profile=row["profile"],
                    leg=Leg(row["leg"]),
                    limit_price=_opt_dec(row["limit_price"]),
                    stop_price=_opt_dec(row["stop_price"]),
                    time_in_force=row["time_in_force"],
                    oco_group=row["oco_group"],
                    created_at=_parse_time(row["created_at"]),
                    position_intent=row["position_intent"],
                ),
                broker_order_id=row["broker_order_id"],
                status=OrderStatus(row["status"]),
                filled_qty=int(row["filled_qty"]),
            )
            for row in self.orders()
        ]
        fills = [
            FillRecord(
                execution_id=row[0],
                client_order_id=row[1],
                time=_parse_time(row[2]),
                qty=int(row[3]),
                price=Decimal(row[4]),
                commission=Decimal(row[5]),
            )
            for row in self._db.execute(
                "SELECT execution_id, client_order_id, time, qty, price, commission FROM fills"
                " ORDER BY time, execution_id"
            )
        ]
        return Ledger(trades=self.trades(), signals=signals, orders=orders, fills=fills)


def _disk_full(path: Path) -> bool:
    """True when the file system holding `path` has (almost) no space left."""
    try:
        return shutil.disk_usage(path.resolve().parent).free < 64 * 1024
    except OSError:
        return False


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (executescript would commit the transaction)."""
    return [part.strip() for part in script.split(";") if part.strip()]


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _opt_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


_TRADE_COLUMNS = (
    "trade_id",
    "signal_id",
    "profile",
    "direction",
    "status",
    "planned_qty",
    "qty",
    "entry_order_id",
    "entry_price",
    "entry_time",
    "target_price",
    "stop_price",
    "exit_price",
    "exit_time",
    "exit_reason",
    "pnl",
    "commission",
    "feed",
    "symbol",
    "option",
)


def _trade_from_row(row: tuple[Any, ...]) -> TradeView:
    return TradeView(
        trade_id=row[0],
        signal_id=row[1],
        profile=row[2],
        symbol=row[18],
        direction=row[3],
        status=row[4],
        planned_qty=row[5],
        qty=row[6],
        entry_order_id=row[7],
        entry_price=_opt_dec(row[8]),
        entry_time=_parse_time(row[9]) if row[9] else None,
        target_price=_opt_dec(row[10]),
        stop_price=_opt_dec(row[11]),
        exit_price=_opt_dec(row[12]),
        exit_time=_parse_time(row[13]) if row[13] else None,
        exit_reason=ExitReason(row[14]) if row[14] else None,
        pnl=_opt_dec(row[15]),
        commission=Decimal(row[16]),
        option=option_of(row[19]),
    )


def option_json(details: OptionDetails | None) -> str | None:
    """An option trade's contract details as JSON text (prices as exact decimal strings)."""
    if details is None:
        return None
    return json.dumps(
        {
            "source": details.source.value,
            "bid": str(details.bid),
            "ask": str(details.ask),
            "delta": details.delta,
            "iv": details.iv,
            "underlying_entry": str(details.underlying_entry),
            "underlying_target": _dec(details.underlying_target),
        },
        sort_keys=True,
    )


def option_of(text: str | None) -> OptionDetails | None:
    if not text:
        return None
    raw = json.loads(text)
    return OptionDetails(
        source=PremiumSource(raw["source"]),
        bid=Decimal(raw["bid"]),
        ask=Decimal(raw["ask"]),
        delta=raw["delta"],
        iv=raw["iv"],
        underlying_entry=Decimal(raw["underlying_entry"]),
        underlying_target=_opt_dec(raw["underlying_target"]),
    )
