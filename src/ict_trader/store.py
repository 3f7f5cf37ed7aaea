"""SQLite persistence: the only module that writes SQL.

One file holds everything a run needs to be audited, resumed or shown on the dashboard:
signals, skipped entries, orders (client and broker ids), fills, trades, equity snapshots,
audit events and a small key/value state (e.g. the last processed bar). WAL mode lets the
dashboard read while the trading loop writes. Prices and P&L are stored as exact decimal strings
(fills can be sub-penny), equity snapshots as integer cents; never floats.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from ict_trader.bars import Bar
from ict_trader.events import (
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
from ict_trader.ledger import FillRecord, Ledger, OrderRecord
from ict_trader.orders import Leg, OrderRequest, OrderStatus, OrderType, Side
from ict_trader.signals import Direction, Signal

SCHEMA_VERSION = 2

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
}


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, corrupt file, locked)."""


def cents(amount: Decimal) -> int:
    """Dollars to integer cents, banker's rounding (amounts are already cent-exact in practice)."""
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_EVEN))


def _iso(moment: datetime) -> str:
    """UTC ISO-8601 with a Z, to the second (isoformat is several times cheaper than strftime)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    if moment.microsecond:
        moment = moment.replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class Store:
    """A connection to one ict-trader database; never used by two threads at once."""

    def __init__(self, path: Path | str, *, reader: bool = False) -> None:
        """`reader=True` is for the dashboard: no long-lived transaction, so every query sees the
        latest commit of the trading loop (a writer's open transaction would pin a snapshot)."""
        self.path = Path(path)
        self.reader = reader
        self._equity_rows: list[tuple[str, int, int]] = []
        # Which bars the trades were decided on: "file" (backtest/replay data) or the live feed
        # ("iex", "sip"); IEX bars differ from the consolidated tape, so it is kept per trade.
        self.data_feed = "file"
        try:
            # Used by one thread at a time, but not always the one that opened it (a shell may be
            # built in one thread and run in another): hence check_same_thread=False.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None
        if not reader:
            self._db.execute("BEGIN")

    # ------------------------------------------------------------------ lifecycle

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this ict-trader "
                f"({SCHEMA_VERSION}); upgrade ict-trader"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.executescript(
                f"BEGIN; {_MIGRATIONS[target]}; PRAGMA user_version = {target}; COMMIT;"
            )

    def commit(self) -> None:
        """Make everything recorded so far durable, atomically, and start a new transaction."""
        self._flush()
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        if not self.reader:
            self._db.execute("BEGIN")

    def close(self) -> None:
        """Close, dropping anything not committed: only the shells know when a unit of work
        (a bar, a whole backtest) is complete, and they commit it explicitly."""
        self._equity_rows.clear()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.close()

    def begin(self) -> None:
        """Start a transaction if none is open (a reader's writes are then atomic too)."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")

    def rollback(self) -> None:
        """Drop everything since the last commit (e.g. a bar interrupted half-way)."""
        self._equity_rows.clear()
        self._db.execute("ROLLBACK")
        self._db.execute("BEGIN")

    def start_run(self, mode: str, data_source: str | None, config: dict[str, Any]) -> int:
        cursor = self._db.execute(
            "INSERT INTO runs (started_at, mode, data_source, config) VALUES (?, ?, ?, ?)",
            (_iso(datetime.now(UTC)), mode, data_source, json.dumps(config, default=str)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def record_signal(self, detected: SignalDetected) -> None:
        s = detected.signal
        self._db.execute(
            "INSERT OR IGNORE INTO signals VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                detected.signal_id,
                _iso(s.time),
                s.direction.value,
                repr(s.close),
                s.atr,
                repr(s.extreme),
                repr(s.mss_level),
            ),
        )

    def record_skip(self, skipped: EntrySkipped) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO skips VALUES (?, ?, ?, ?)",
            (skipped.signal_id, skipped.profile, skipped.reason, _iso(skipped.time)),
        )

    def record_order(self, order: OrderRequest) -> None:
        assert order.created_at is not None
        created = _iso(order.created_at)
        self._db.execute(
            "INSERT OR IGNORE INTO orders (client_order_id, trade_id, profile, leg, symbol, side,"
            " qty, type, limit_price, stop_price, time_in_force, oco_group, status, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )

    def record_order_event(
        self, event: OrderAccepted | OrderFilled | OrderRejected | OrderCanceled
    ) -> None:
        when = _iso(event.time)
        order_id = event.client_order_id
        if isinstance(event, OrderAccepted):
            self._db.execute(
                "UPDATE orders SET broker_order_id = ?, status = ?, updated_at = ?"
                " WHERE client_order_id = ? AND status = 'new'",
                (event.broker_order_id, OrderStatus.ACCEPTED.value, when, order_id),
            )
        elif isinstance(event, OrderFilled):
            self._db.execute(
                "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    event.execution_id,
                    order_id,
                    event.broker_order_id,
                    when,
                    event.qty,
                    str(event.price),
                    str(event.commission),
                ),
            )
            status = OrderStatus.FILLED if event.order_complete else OrderStatus.PARTIALLY_FILLED
            self._db.execute(
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
            self._db.execute(
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
        if isinstance(event, OrderAccepted | OrderFilled | OrderRejected | OrderCanceled):
            self.record_order_event(event)

    def record_trade(self, trade: TradeView) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO trades VALUES ({', '.join('?' * 18)})",
            (
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
            ),
        )

    def record_equity(self, moment: datetime, equity: Decimal, cash: Decimal) -> None:
        """Buffered: a snapshot every minute in a position is the most frequent write, so these
        go to SQLite in one executemany at the next commit (they are only durable then anyway).
        """
        self._equity_rows.append((_iso(moment), cents(equity), cents(cash)))

    def _flush(self) -> None:
        if self._equity_rows:
            self._db.executemany(
                "INSERT OR REPLACE INTO equity VALUES (?, ?, ?)", self._equity_rows
            )
            self._equity_rows.clear()

    def audit(
        self, moment: datetime, kind: str, actor: str, message: str, data: Any = None
    ) -> None:
        self._db.execute(
            "INSERT INTO audit (time, kind, actor, message, data) VALUES (?, ?, ?, ?, ?)",
            (_iso(moment), kind, actor, message, None if data is None else json.dumps(data)),
        )

    def record_bar(self, bar: Bar) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO bars VALUES (?, ?, ?, ?, ?, ?)",
            (_iso(bar.time), bar.open, bar.high, bar.low, bar.close, bar.volume),
        )

    def set_state(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ reads

    def state(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def trades(self, status: str | None = None) -> list[TradeView]:
        query = "SELECT * FROM trades"
        params: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        query += " ORDER BY entry_order_id"
        return [_trade_from_row(row) for row in self._db.execute(query, params)]

    def orders(self) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT * FROM orders ORDER BY created_at, client_order_id")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def bars_between(self, start: datetime, end: datetime) -> list[Bar]:
        rows = self._db.execute(
            "SELECT * FROM bars WHERE time >= ? AND time < ? ORDER BY time",
            (_iso(start), _iso(end)),
        )
        return [Bar(_parse_time(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def bar_days(self) -> list[str]:
        """The dates (YYYY-MM-DD) with bars, oldest first; regular-hours bars (13:30-20:00 UTC)
        fall on the same date in New York and in UTC."""
        rows = self._db.execute("SELECT DISTINCT substr(time, 1, 10) FROM bars ORDER BY 1")
        return [str(row[0]) for row in rows]

    def signals_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            "SELECT signal_id, time, direction, close, atr, extreme, mss_level FROM signals"
            " WHERE time >= ? AND time < ? ORDER BY time",
            (_iso(start), _iso(end)),
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def skips(self) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT * FROM skips ORDER BY time, profile")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def audit_events(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` audit events, newest first."""
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
            )
            for row in self._db.execute("SELECT * FROM signals")
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


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _opt_dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _trade_from_row(row: tuple[Any, ...]) -> TradeView:
    return TradeView(
        trade_id=row[0],
        signal_id=row[1],
        profile=row[2],
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
    )
