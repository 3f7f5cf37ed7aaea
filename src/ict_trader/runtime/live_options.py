"""The live shell's option rules that Alpaca enforces by refusing: kept here, ahead of it.

On a contract's expiry day Alpaca refuses new orders on it from 15:30 New York for QQQ and SPY
(15:15 for single stocks) and liquidates expiring positions from 15:45. The engine already
flattens option trades before its `flatten_at` (15:20 by default, never after 15:30) and takes no
entry whose time limit would pass it; this is the shell's backstop for an entry that still
reaches the broker late (a quote answered just before the cut-off, a slow restart): it is
refused locally, with the rule named, instead of becoming Alpaca's rejection after a round trip.
Exits are never refused here: closing an expiring contract is exactly what must still go out,
and Alpaca's own refusal of a late exit is a fact to report, not to pre-empt.

On an early-close day the cut-off is taken as the same 30 minutes before the close (the engine's
flatten moves with the close in the same way); Alpaca documents only the full-day times.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from ict_trader.core.calendar import NEW_YORK, NyseCalendar
from ict_trader.core.instruments import instrument_of
from ict_trader.core.orders import Leg, OrderRequest

CUTOFF_BEFORE_CLOSE = timedelta(minutes=30)  # 15:30 on a full day (QQQ, SPY)
FULL_DAY_CUTOFF = time(15, 30)
CUTOFF_RULE = "option entry cut-off"


def entry_cutoff(calendar: NyseCalendar, moment: datetime) -> datetime:
    """When Alpaca stops taking new orders on options expiring on `moment`'s New York day."""
    day = moment.astimezone(NEW_YORK).date()
    try:
        session = calendar.session_on(day)
    except ValueError:  # beyond the loaded calendar
        session = None
    if session is not None:
        return session.close - CUTOFF_BEFORE_CLOSE
    return datetime.combine(day, FULL_DAY_CUTOFF, tzinfo=NEW_YORK)


def refused_entry(order: OrderRequest, calendar: NyseCalendar, now: datetime) -> str | None:
    """Why `order` must not be sent (None: send it): an option entry on a contract expiring
    today, at or after the cut-off."""
    if order.leg is not Leg.ENTRY:
        return None
    instrument = instrument_of(order.symbol)
    if not instrument.is_option or instrument.expiry != now.astimezone(NEW_YORK).date():
        return None
    cutoff = entry_cutoff(calendar, now)
    if now < cutoff:
        return None
    return (
        f"not sent ({CUTOFF_RULE}): Alpaca refuses new orders on an option expiring today "
        f"from {cutoff.astimezone(NEW_YORK):%H:%M} New York; it is "
        f"{now.astimezone(NEW_YORK):%H:%M:%S}"
    )
