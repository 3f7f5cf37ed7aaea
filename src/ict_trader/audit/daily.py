"""The daily summary's audit line: the session's orders and fills against Alpaca's records.

Cheap on purpose — one day of orders and FILL activities, no bars — because it runs in the
live loop after the close. It never raises: whatever goes wrong (Alpaca unreachable, a store
read failing, a bug) becomes "audit unavailable: …", so neither the summary nor trading ever
waits on it. The full audit is `ict-trader audit`.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from alpaca.trading.client import TradingClient

from ict_trader.audit.history import fetch_fills, fetch_orders
from ict_trader.audit.orders import compare_orders
from ict_trader.core.calendar import NEW_YORK
from ict_trader.persistence.store import Store

log = logging.getLogger(__name__)


def daily_audit_line(store: Store, trading: TradingClient, day: date) -> str:
    """`audit: 4 of 4 orders and 4 fills match Alpaca, no differences`, or what differs, or why
    the audit could not be made."""
    try:
        start = datetime.combine(day, time(), NEW_YORK).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(), NEW_YORK).astimezone(UTC)
        rows = store.orders()
        in_period = [
            str(r["client_order_id"])
            for r in rows
            if start <= datetime.fromisoformat(str(r["created_at"]).replace("Z", "+00:00")) < end
        ]
        broker = fetch_orders(trading, start, end)
        fills = fetch_fills(trading, start, end)
        audit = compare_orders(rows, store.load_ledger().fills, broker, fills, in_period=in_period)
    except Exception as exc:  # never let the audit stop the summary or trading
        log.warning("daily audit failed: %s", exc, exc_info=True)
        return f"audit unavailable: {type(exc).__name__}: {str(exc)[:120]}"
    matched = sum(1 for m in audit.matched if not m.problems)
    line = (
        f"audit: {matched} of {len(audit.matched)} orders and {audit.fills_matched} fills match "
        "Alpaca"
    )
    if not audit.differences:
        return line + ", no differences"
    foreign = f" ({len(audit.foreign)} foreign)" if audit.foreign else ""
    count = len(audit.differences)
    return (
        f"{line}, {count} difference{'' if count == 1 else 's'}{foreign} — run `ict-trader audit`"
    )
