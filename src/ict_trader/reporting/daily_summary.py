"""The end-of-day message: what each profile did in the session that just closed.

Built from the store's trades (the same figures the dashboard shows); the shells send it once
the session's last bar is processed (`runtime/daily.py`), so it reaches the phone in replay and
live alike.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from ict_trader.core.events import Level, Notify
from ict_trader.notify.option_words import MODEL_PRICED, any_modelled
from ict_trader.reporting.book import Book


def daily_summary(book: Book, day: date, at: datetime, audit: str | None = None) -> Notify:
    """`at`: when the summary is made (the session's last bar close); `audit`: the day's audit
    line, live only (`audit.daily`: the session's orders and fills against Alpaca's). The P&L is
    what was realized on `day` — the trades closed that day and any partial exit of a trade still
    open — the same figure `status` and the dashboard show."""
    closed = book.closed(day)
    total = book.realized(day)
    wins = sum(1 for t in closed if t.pnl is not None and t.pnl > 0)
    # A P&L that modelled option premiums made says so, in the total and in its profile's part.
    label = f" {MODEL_PRICED}" if any_modelled(closed) else ""
    parts = [f"{_count(len(closed), 'trade')}, {_count(wins, 'win')}, P&L {total:+.2f}{label}"]
    for profile in sorted({t.profile for t in closed}):
        mine = [t for t in closed if t.profile == profile]
        pnl = sum((t.pnl or Decimal(0) for t in mine), Decimal(0))
        reasons = ", ".join(t.exit_reason.value for t in mine if t.exit_reason is not None)
        options = " options" if any(t.option is not None for t in mine) else ""
        mark = f" {MODEL_PRICED}" if any_modelled(mine) else ""
        parts.append(
            f"{profile}{options} {_count(len(mine), 'trade')} {pnl:+.2f}{mark} ({reasons})"
        )
    still_open = book.unfinished()
    if still_open:
        partly = sum((f.realized(day) for f in still_open), Decimal(0))
        realized = f" ({partly:+.2f} realized by partial exits)" if partly else ""
        parts.append(f"{_count(len(still_open), 'trade')} still open{realized}")
    if audit:
        parts.append(audit)
    return Notify(Level.INFO, f"Daily summary {day.isoformat()}", " · ".join(parts), at)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
