"""Orders and fills: the store's ledger against Alpaca's order history and FILL activities.

Matched by client order id, ict-trader's deterministic id. An OCO's stop leg is the exception:
Alpaca names a leg itself, so the ledger's stop is found by the broker order id it recorded, or
as the leg under its take-profit. For each matched order, side, quantity, type, prices, status
and filled quantity are compared, and its fills — the ledger's against the FILL activities of
the order: shares, volume-weighted price and the time of the last execution.

What is an error line (`differences`): any field that disagrees; an order in the ledger that
Alpaca does not have; a FILL activity of no order in the history; and every order at Alpaca that
ict-trader did not place (`foreign`, listed in full). What is not: an order the ledger records as
refused at submission, or as never sent (Alpaca keeps no order for a refused POST), listed in
`notes`. The ledger's fills are built from Alpaca's cumulative order snapshots, so two executions
seen in one snapshot are one fill in the ledger: fills are compared per order, not one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ict_trader.audit.history import BrokerOrder, FillActivity
from ict_trader.core.ledger import FillRecord

# The ledger stamps a fill with Alpaca's own time of it (order `filled_at`, trade-update
# `timestamp`), kept to the second: anything further apart is a different execution.
FILL_TIME_TOLERANCE = timedelta(seconds=5)
# The ledger keeps each fill's price to 4 decimals (it is derived from cumulative averages).
PRICE_TOLERANCE = Decimal("0.0001")
# Alpaca's statuses, grouped as the ledger records them (adapters/alpaca/broker.py maps them
# the same way).
_WORKING = {
    "new",
    "accepted",
    "pending_new",
    "accepted_for_bidding",
    "partially_filled",
    "held",
    "pending_cancel",
    "pending_replace",
    "done_for_day",
    "calculated",
    "stopped",
    "suspended",
}
_LEDGER_STATUS = {
    "filled": "filled",
    "canceled": "canceled",
    "expired": "canceled",
    "replaced": "canceled",
    "rejected": "rejected",
}
# The ledger's reasons for an order Alpaca never received (live.py: held while disputed, an
# entry dropped after a restart).
_NEVER_SENT = ("never reached Alpaca", "held", "not sent")


@dataclass(frozen=True)
class OrderMatch:
    """One ledger order and Alpaca's, side by side."""

    client_order_id: str
    broker_order_id: str
    leg: str
    side: str
    qty: int
    ledger_status: str
    broker_status: str
    ledger_filled: int
    broker_filled: int
    ledger_fills: int
    broker_fills: int
    ledger_price: Decimal | None  # volume-weighted fill price
    broker_price: Decimal | None
    ledger_last_fill: datetime | None
    broker_last_fill: datetime | None
    problems: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "broker_order_id": self.broker_order_id,
            "leg": self.leg,
            "side": self.side,
            "qty": self.qty,
            "ledger_status": self.ledger_status,
            "broker_status": self.broker_status,
            "ledger_filled": self.ledger_filled,
            "broker_filled": self.broker_filled,
            "ledger_fills": self.ledger_fills,
            "broker_fills": self.broker_fills,
            "ledger_price": _text(self.ledger_price),
            "broker_price": _text(self.broker_price),
            "ledger_last_fill": _iso(self.ledger_last_fill),
            "broker_last_fill": _iso(self.broker_last_fill),
            "problems": list(self.problems),
        }


@dataclass
class OrdersAudit:
    matched: list[OrderMatch] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # error lines
    foreign: list[BrokerOrder] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fills_matched: int = 0  # executions at Alpaca accounted for by the ledger

    def as_json(self) -> dict[str, Any]:
        return {
            "orders_matched": sum(1 for m in self.matched if not m.problems),
            "orders_compared": len(self.matched),
            "fills_matched": self.fills_matched,
            "differences": list(self.differences),
            "foreign": [_foreign_json(o) for o in self.foreign],
            "notes": list(self.notes),
            "orders": [m.as_json() for m in self.matched],
        }


def compare_orders(
    ledger_orders: Sequence[dict[str, Any]],
    ledger_fills: Sequence[FillRecord],
    broker_orders: Sequence[BrokerOrder],
    activities: Sequence[FillActivity],
    *,
    in_period: Iterable[str],
) -> OrdersAudit:
    """Compare the ledger with Alpaca's records.

    `ledger_orders` are the store's order rows (all of them: an Alpaca order is ict-trader's if
    any row claims it); `in_period` names the client ids audited (those the ledger created in
    the period); `broker_orders` and `activities` are Alpaca's for the same period."""
    audit = OrdersAudit()
    by_client = {o.client_order_id: o for o in broker_orders}
    by_id = {o.id: o for o in broker_orders}
    rows = {str(r["client_order_id"]): r for r in ledger_orders}
    fills_of: dict[str, list[FillRecord]] = {}
    for fill in ledger_fills:
        fills_of.setdefault(fill.client_order_id, []).append(fill)
    executions_of: dict[str, list[FillActivity]] = {}
    for activity in activities:
        executions_of.setdefault(activity.order_id, []).append(activity)

    claimed: set[str] = set()  # Alpaca order ids the ledger accounts for
    for row in rows.values():
        found = _find(row, by_client, by_id)
        if found is not None:
            claimed.add(found.id)
    for client_order_id in in_period:
        row = rows[client_order_id]
        found = _find(row, by_client, by_id)
        if found is None:
            _missing_at_broker(audit, row)
            continue
        match = _compare_one(row, found, fills_of.get(client_order_id, []), executions_of)
        audit.matched.append(match)
        audit.differences.extend(f"{client_order_id}: {p}" for p in match.problems)
        if not any("fill" in p for p in match.problems):
            audit.fills_matched += len(executions_of.get(found.id, []))

    for order in broker_orders:
        if order.id not in claimed:
            audit.foreign.append(order)
            audit.differences.append(
                f"Alpaca order {order.id} ({order.client_order_id}: {order.side} {order.qty} "
                f"{order.symbol} {order.type}, {order.status}) was not placed by ict-trader"
            )
    known = {o.id for o in broker_orders}
    for activity in activities:
        if activity.order_id not in known:
            audit.differences.append(
                f"Alpaca FILL {activity.id} ({activity.side} {activity.qty} {activity.symbol} @ "
                f"{activity.price}) belongs to order {activity.order_id}, which is not in "
                "Alpaca's order history for the period"
            )
    return audit


def _find(
    row: dict[str, Any], by_client: dict[str, BrokerOrder], by_id: dict[str, BrokerOrder]
) -> BrokerOrder | None:
    found = by_client.get(str(row["client_order_id"]))
    if found is None and row.get("broker_order_id"):
        found = by_id.get(str(row["broker_order_id"]))
    if found is None and row.get("oco_group") and row["leg"] == "stop":
        # an OCO's stop travels as the leg of its take-profit, under a client id Alpaca chose
        parent_id = str(row["client_order_id"]).removesuffix("-stop") + "-target"
        parent = by_client.get(parent_id)
        if parent is not None:
            found = next((o for o in by_id.values() if o.parent_id == parent.id), None)
    return found


def _missing_at_broker(audit: OrdersAudit, row: dict[str, Any]) -> None:
    client_order_id = str(row["client_order_id"])
    status, reason = str(row["status"]), str(row.get("reason") or "")
    refused = status == "rejected" and not row.get("broker_order_id")
    never_sent = status == "canceled" and reason.startswith(_NEVER_SENT)
    if refused or never_sent:
        audit.notes.append(
            f"{client_order_id}: not at Alpaca, as the ledger says ({status}: {reason})"
        )
        return
    audit.differences.append(
        f"{client_order_id}: in the ledger ({row['side']} {row['qty']} {row['symbol']} "
        f"{row['type']}, {status}) but not in Alpaca's order history"
    )


def _compare_one(
    row: dict[str, Any],
    found: BrokerOrder,
    fills: Sequence[FillRecord],
    executions_of: dict[str, list[FillActivity]],
) -> OrderMatch:
    problems: list[str] = []
    executions = executions_of.get(found.id, [])

    def differ(what: str, ledger: object, broker: object) -> None:
        problems.append(f"{what}: ledger {ledger}, Alpaca {broker}")

    if str(row["side"]) != found.side:
        differ("side", row["side"], found.side)
    if str(row["symbol"]) != found.symbol:
        differ("symbol", row["symbol"], found.symbol)
    qty = int(row["qty"])
    # Alpaca shrinks the other exit of an OCO pair when one is partly filled.
    if found.qty != qty and not (row.get("oco_group") and found.qty < qty):
        differ("quantity", qty, found.qty)
    if str(row["type"]) != found.type:
        differ("type", row["type"], found.type)
    for name, broker_price in (
        ("limit_price", found.limit_price),
        ("stop_price", found.stop_price),
    ):
        ledger_price = _decimal(row.get(name))
        if ledger_price != broker_price:
            differ(name.replace("_", " "), ledger_price, broker_price)
    ledger_status = str(row["status"])
    if _status_class(found.status) != _ledger_class(ledger_status):
        differ("status", ledger_status, found.status)
    ledger_filled = int(row["filled_qty"])
    if ledger_filled != found.filled_qty:
        differ("filled quantity", ledger_filled, found.filled_qty)

    ledger_qty = sum(f.qty for f in fills)
    broker_qty = sum(e.qty for e in executions)
    ledger_price = _vwap((f.qty, f.price) for f in fills)
    broker_price = _vwap((e.qty, e.price) for e in executions)
    ledger_last = max((f.time for f in fills), default=None)
    broker_last = max((e.time for e in executions), default=None)
    if ledger_qty != broker_qty:
        differ("filled shares in fills", ledger_qty, f"{broker_qty} in its FILL activities")
    elif ledger_price is not None and broker_price is not None:
        if abs(ledger_price - broker_price) > PRICE_TOLERANCE:
            differ("fill price (volume-weighted)", ledger_price, broker_price)
        if (
            ledger_last is not None
            and broker_last is not None
            and abs(ledger_last - broker_last) > FILL_TIME_TOLERANCE
        ):
            differ("last fill time", _iso(ledger_last), _iso(broker_last))
    return OrderMatch(
        client_order_id=str(row["client_order_id"]),
        broker_order_id=found.id,
        leg=str(row["leg"]),
        side=found.side,
        qty=qty,
        ledger_status=ledger_status,
        broker_status=found.status,
        ledger_filled=ledger_filled,
        broker_filled=found.filled_qty,
        ledger_fills=len(fills),
        broker_fills=len(executions),
        ledger_price=ledger_price,
        broker_price=broker_price,
        ledger_last_fill=ledger_last,
        broker_last_fill=broker_last,
        problems=tuple(problems),
    )


def _status_class(status: str) -> str:
    if status in _WORKING:
        return "working"
    return _LEDGER_STATUS.get(status, status)


def _ledger_class(status: str) -> str:
    """The ledger's statuses: new, accepted, partially_filled (working), filled, canceled
    (expired orders are recorded as `expired`), rejected."""
    if status in {"new", "accepted", "partially_filled"}:
        return "working"
    return "canceled" if status == "expired" else status


def _vwap(pairs: Iterable[tuple[int, Decimal]]) -> Decimal | None:
    shares = value = Decimal(0)
    for qty, price in pairs:
        shares += qty
        value += qty * price
    if not shares:
        return None
    return (value / shares).quantize(Decimal("0.0001"))


def _decimal(value: object) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _foreign_json(order: BrokerOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "qty": order.qty,
        "type": order.type,
        "status": order.status,
        "filled_qty": order.filled_qty,
        "filled_avg_price": _text(order.filled_avg_price),
        "submitted_at": _iso(order.submitted_at),
    }
