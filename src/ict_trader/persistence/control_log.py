"""The log of kill, resume and release requests in the store, and the trading state recorded.

`ict-trader kill`/`resume`/`reconcile --accept-broker` and the dashboard append numbered
requests here; the running bot applies them (`runtime/control.py`); `status` and the dashboard
read here what the bot will do. Reading and writing the log is a matter of the store alone, so
a view never needs the runtimes to answer it. The rules are in `runtime/control.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ict_trader.core.events import (
    Event,
    KillSwitch,
    ReleaseTrades,
    Resume,
    TradingState,
)
from ict_trader.persistence.store import Store

APPLIED_KEY = "control_applied"
STATE_KEY = "trading_state"
KINDS = ("kill", "resume", "release")
STATE_KINDS = ("kill", "resume")  # `release` changes no trading state


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
        for row in store.control_requests(after=applied(store))
    ]


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
    todo = [item for item in everything if item.kind in STATE_KINDS]
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


def applied(store: Store) -> int:
    """The number of the last request the bot applied (0: none yet)."""
    raw = store.state(APPLIED_KEY)
    return int(raw) if raw else 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
