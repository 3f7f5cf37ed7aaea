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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ict_trader.core.engine import Engine
from ict_trader.core.events import (
    Event,
    KillSwitch,
    ReduceOnly,
    ReleaseTrades,
    Resume,
    TradingState,
)
from ict_trader.persistence.store import Store

APPLIED_KEY = "control_applied"
STATE_KEY = "trading_state"
KINDS = ("kill", "resume", "release")
_STATE_KINDS = ("kill", "resume")  # `release` changes no trading state


@dataclass(frozen=True)
class Request:
    number: int
    time: datetime
    kind: str
    reason: str
    actor: str

    def event(self, moment: datetime | None = None) -> Event:
        kinds: dict[str, type[KillSwitch | Resume | ReleaseTrades]] = {
            "kill": KillSwitch,
            "resume": Resume,
            "release": ReleaseTrades,
        }
        return kinds[self.kind](moment or self.time, self.reason, self.actor)

    def describe(self) -> dict[str, Any]:
        return {
            "request": self.number,
            "kind": self.kind,
            "reason": self.reason,
            "actor": self.actor,
            "time": _iso(self.time),
        }


def request(store: Store, kind: str, reason: str, actor: str, now: datetime | None = None) -> int:
    """Record a kill, resume or release for the bot; return its number once it is committed.

    Raises `StoreError` (busy after retries, disk full) with nothing recorded: the caller must
    then tell the user the request failed, never that it was accepted.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown control request {kind!r}")
    moment = now or datetime.now(UTC)
    with store.transaction():
        number = store.add_control_request(moment, kind, reason, actor)
        store.audit(moment, f"request.{kind}", actor, reason, {"request": number})
    return number


def pending(store: Store) -> list[Request]:
    """The requests the bot has not applied yet, oldest first."""
    return [
        Request(
            number=int(row["request_id"]),
            time=datetime.fromisoformat(str(row["time"]).replace("Z", "+00:00")),
            kind=str(row["kind"]),
            reason=str(row["reason"]),
            actor=str(row["actor"]),
        )
        for row in store.control_requests(after=_applied(store))
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
    todo = [item for item in everything if item.kind in _STATE_KINDS]
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


def recorded_state(store: Store) -> dict[str, Any]:
    """The trading state the bot last wrote (active if it never wrote one)."""
    raw = store.state(STATE_KEY)
    saved: dict[str, Any] = json.loads(raw) if raw else {}
    return {
        "state": TradingState(saved.get("state", TradingState.ACTIVE)),
        "reason": saved.get("reason"),
        "actor": saved.get("actor"),
    }


def outlook(store: Store) -> dict[str, Any]:
    """The state the bot is in once it has applied what is pending (at its next bar or start).

    `pending` lists the requests not applied yet; `state` is the recorded one with the latest
    request on top (a kill halts; a resume lifts halted and reducing alike).
    """
    state = recorded_state(store)
    everything = pending(store)
    todo = [item for item in everything if item.kind in _STATE_KINDS]
    result = dict(state)
    if todo:
        latest = todo[-1]
        if latest.kind == "kill":
            result = {"state": TradingState.HALTED, "reason": latest.reason, "actor": latest.actor}
        else:
            result = {"state": TradingState.ACTIVE, "reason": None, "actor": latest.actor}
    result["recorded"] = state
    result["pending"] = [item.describe() for item in everything]
    return result


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


def _applied(store: Store) -> int:
    raw = store.state(APPLIED_KEY)
    return int(raw) if raw else 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
