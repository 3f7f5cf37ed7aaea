"""One log line per engine decision and notice, with the fields to find it again.

Written through the shared JSON-lines logger (`ict_trader.logs`), so every shell's decisions
land in the same log in the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from ict_trader.core.events import (
    CancelOrder,
    EntrySkipped,
    Notify,
    RequestContract,
    SignalDetected,
    SubmitOrder,
    TradeUpdated,
)

decisions = logging.getLogger("ict_trader.decisions")


# What the decision log writes a line for: commands, facts, and notices in their words.
Logged = (
    SubmitOrder
    | CancelOrder
    | RequestContract
    | SignalDetected
    | EntrySkipped
    | TradeUpdated
    | Notify
)


def log_command(command: Logged) -> None:
    """One line per engine decision, with the fields to find it again (shared by all shells)."""
    if not decisions.isEnabledFor(logging.INFO):
        return
    if isinstance(command, SubmitOrder):
        order = command.order
        fields: dict[str, Any] = {
            "event": "submit",
            "client_order_id": order.client_order_id,
            "side": order.side.value,
            "qty": order.qty,
            "type": order.type.value,
            "limit_price": order.limit_price,
            "stop_price": order.stop_price,
            "profile": order.profile,
            "leg": order.leg.value,
        }
        if order.position_intent is not None:
            fields["position_intent"] = order.position_intent
        message = f"submit {order.leg.value} {order.side.value} {order.qty} {order.symbol}"
    elif isinstance(command, RequestContract):
        fields = {
            "event": "request_contract",
            "request_id": command.request_id,
            "right": command.right.value,
            "strike_rule": command.strike_rule,
        }
        message = (
            f"ask for a {command.expiry} {command.underlying} {command.right.value} "
            f"({command.strike_rule}) at {command.spot}"
        )
    elif isinstance(command, CancelOrder):
        fields = {"event": "cancel", "client_order_id": command.client_order_id}
        message = f"cancel {command.client_order_id}: {command.reason}"
    elif isinstance(command, SignalDetected):
        signal = command.signal
        fields = {"event": "signal", "signal_id": command.signal_id, "atr": signal.atr}
        message = f"signal {signal.direction.value} close {signal.close}"
    elif isinstance(command, EntrySkipped):
        fields = {"event": "skip", "signal_id": command.signal_id, "profile": command.profile}
        message = f"{command.profile} skipped: {command.reason}"
    elif isinstance(command, Notify):
        fields = {"event": "notify", "level": command.level.value, "title": command.title}
        message = command.message
    else:
        view = command.trade
        fields = {
            "event": "trade",
            "trade_id": view.trade_id,
            "status": view.status,
            "pnl": view.pnl,
            "exit_reason": view.exit_reason,
        }
        message = f"trade {view.trade_id} {view.status}"
    decisions.info(message, extra={"fields": fields})
