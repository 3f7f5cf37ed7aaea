"""The kill switch and resume across processes and restarts, through the SQLite store.

`ict-trader kill` and `resume` (and the dashboard) do not talk to the running bot directly: they
append a numbered control request to the store, which the bot's shell reads every bar and every
clock tick and turns into engine events. The engine's trading state (active, reducing, halted) is
written back after every change, so a restarted bot starts in the state it left — a kill switch
holds until someone resumes with a reason.

The rules, so no request is ever lost or misread:

- A request is acknowledged (`request` returns its number) only once its row is committed.
- A running bot delivers every request it has not applied, in order, and records the last number
  it applied in the same transaction as the bar's work: a crash before that commit means the
  requests are delivered again on restart, never dropped.
- A stopped bot starts with the *latest* pending request: kill-then-resume while it was down
  starts it active without flattening anything; resume-then-kill starts it halted. Without a
  pending request it starts in the state it recorded. `pending` tells `status` which applies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from ict_trader.core.engine import Engine
from ict_trader.core.events import Event, KillSwitch, ReduceOnly, TradingState
from ict_trader.persistence.control_log import (
    APPLIED_KEY,
    KINDS,
    STATE_KEY,
    STATE_KINDS,
    Request,
    outlook,
    pending,
    recorded_state,
    request,
)
from ict_trader.persistence.store import Store

__all__ = [
    "KINDS",
    "Request",
    "apply_requests",
    "outlook",
    "pending",
    "persist_state",
    "recorded_state",
    "request",
    "restore_state",
]


def apply_requests(store: Store, deliver: Callable[[Event], None]) -> bool:
    """A running bot: deliver every request not applied yet, in order; True if there was one.

    The applied number is written in the caller's transaction, so it becomes durable with the
    work the requests caused (the shell commits after this).
    """
    todo = pending(store)
    for item in todo:
        deliver(item.event())
    if todo:
        store.set_state(APPLIED_KEY, str(todo[-1].number))
    return bool(todo)


def restore_state(store: Store, deliver: Callable[[Event], None], now: datetime) -> None:
    """At start: the latest pending kill/resume wins; without one, the state the bot recorded.
    A pending release (a dispute settled in the broker's favour) is always delivered."""
    everything = pending(store)
    for item in everything:
        if item.kind == "release":
            deliver(item.event(now))
    if everything:
        store.set_state(APPLIED_KEY, str(everything[-1].number))
    todo = [item for item in everything if item.kind in STATE_KINDS]
    if todo:
        latest = todo[-1]
        deliver(latest.event(now))
        if len(todo) > 1:
            store.audit(
                now,
                "request.superseded",
                "restart",
                f"requests {', '.join(f'#{r.number} {r.kind}' for r in todo[:-1])} were given "
                f"while the bot was stopped; the latest, #{latest.number} {latest.kind}, applies",
            )
        return
    saved = recorded_state(store)
    if saved["state"] == TradingState.HALTED:
        deliver(KillSwitch(now, saved["reason"] or "", saved.get("actor") or "restart"))
    elif saved["state"] == TradingState.REDUCING:
        deliver(ReduceOnly(now, saved["reason"] or "", saved.get("actor") or "restart"))


def persist_state(store: Store, engine: Engine, last: list[str]) -> None:
    """Write the engine's trading state when it differs from the store's (`last` keeps the
    value written, for callers that show it).

    Compared with the store, not with memory: a write rolled back by a failed commit (disk
    full, busy) is simply made again at the next pass.
    """
    current = json.dumps(
        {"state": engine.state, "reason": engine.state_reason, "actor": engine.state_actor}
    )
    if store.state(STATE_KEY) != current:
        store.set_state(STATE_KEY, current)
    last[:] = [current]
