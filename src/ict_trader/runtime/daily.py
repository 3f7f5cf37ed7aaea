"""Sending the end-of-day summary: recorded, logged and sent like every other notice."""

from __future__ import annotations

from datetime import date, datetime

from ict_trader.core.events import Notify
from ict_trader.notify.notifier import Notifier
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book
from ict_trader.reporting.daily_summary import daily_summary
from ict_trader.runtime.decision_log import log_command


def send_daily_summary(
    store: Store, notifier: Notifier | None, day: date, at: datetime, audit: str | None = None
) -> Notify:
    """Record the summary in the audit log and send it (if notifications are on)."""
    notice = daily_summary(Book.of(store), day, at, audit)
    log_command(notice)
    store.record(notice)
    if notifier is not None:
        notifier.send(notice)
    return notice
