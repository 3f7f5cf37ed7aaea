"""The kill switch and resume across processes and restarts, through the SQLite store.

`ict-trader kill` and `resume` (and later the dashboard) do not talk to the running bot directly:
they write a numbered control request into the store, which the bot's shell reads every bar and
every clock tick and turns into an engine event. The engine's trading state (active, reducing,
halted) is written back after every change, so a restarted bot starts in the state it left —
a kill switch holds until someone resumes with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from ict_trader.engine import Engine
from ict_trader.events import Event, KillSwitch, ReduceOnly, Resume
from ict_trader.store import Store

REQUEST_KEY = "control_request"
APPLIED_KEY = "control_applied"
STATE_KEY = "trading_state"


def request(store: Store, kind: str, reason: str, actor: str, now: datetime | None = None) -> int:
    """Queue a kill or resume for the bot; returns its number. Also takes effect on next start."""
    if kind not in {"kill", "resume"}:
        raise ValueError(f"unknown control request {kind!r}")
    moment = now or datetime.now(UTC)
    store.begin()
    previous = store.state(REQUEST_KEY)
    number = json.loads(previous)["id"] + 1 if previous else 1
    payload = {"id": number, "kind": kind, "reason": reason, "actor": actor, "time": _iso(moment)}
    store.set_state(REQUEST_KEY, json.dumps(payload))
    store.audit(moment, f"request.{kind}", actor, reason)
    if kind == "kill":  # a bot that is not running starts halted
        store.set_state(
            STATE_KEY, json.dumps({"state": "halted", "reason": reason, "actor": actor})
        )
    store.commit()
    return number


def apply_requests(store: Store, deliver: Callable[[Event], None]) -> bool:
    """Deliver a control request the engine has not seen yet; True if there was one."""
    raw = store.state(REQUEST_KEY)
    if raw is None:
        return False
    pending = json.loads(raw)
    applied = store.state(APPLIED_KEY)
    if applied is not None and int(applied) >= pending["id"]:
        return False
    moment = datetime.fromisoformat(pending["time"].replace("Z", "+00:00"))
    kind = KillSwitch if pending["kind"] == "kill" else Resume
    deliver(kind(moment, pending["reason"], pending["actor"]))
    store.set_state(APPLIED_KEY, str(pending["id"]))
    return True


def restore_state(store: Store, deliver: Callable[[Event], None], now: datetime) -> None:
    """At start: put the engine back in the state the store recorded (kill switch survives)."""
    raw = store.state(STATE_KEY)
    if raw is None:
        return
    saved = json.loads(raw)
    if saved["state"] == "halted":
        deliver(KillSwitch(now, saved["reason"], saved.get("actor", "restart")))
    elif saved["state"] == "reducing":
        deliver(ReduceOnly(now, saved["reason"], saved.get("actor", "restart")))
    # mark any request already reflected in the state as applied
    raw_request = store.state(REQUEST_KEY)
    if raw_request is not None and store.state(APPLIED_KEY) is None:
        store.set_state(APPLIED_KEY, str(json.loads(raw_request)["id"]))


def persist_state(store: Store, engine: Engine, last: list[str]) -> None:
    """Write the engine's trading state when it changed (`last` holds the previous value)."""
    current = json.dumps(
        {"state": engine.state, "reason": engine.state_reason, "actor": engine.state_actor}
    )
    if last and last[0] == current:
        return
    last[:] = [current]
    store.set_state(STATE_KEY, current)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
