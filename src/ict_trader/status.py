"""`ict-trader status`: what the bot is doing, read from its store (works while it runs)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from ict_trader.calendar import NEW_YORK
from ict_trader.control import STATE_KEY
from ict_trader.simulation import LAST_BAR_KEY, LAST_CLOSE_KEY
from ict_trader.store import Store

BREAKERS = {
    "daily_loss": ("daily_loss_limit", "session P&L (realized + unrealized) at or below -{}"),
    "rapid_loss": ("rapid_loss", "{} lost within rapid_loss_minutes"),
    "error_rate": ("max_errors", "{} order errors within error_window_minutes"),
    "drawdown": ("max_drawdown_pct", "{}% below the equity peak"),
    "stale_data": ("stale_data_minutes", "no new bar for {} minutes (live; entries pause)"),
}


def collect_status(store: Store) -> dict[str, Any]:
    run = store.last_run()
    raw_state = store.state(STATE_KEY)
    state = json.loads(raw_state) if raw_state else {"state": "active", "reason": None}
    last_bar = store.state(LAST_BAR_KEY)
    mark = Decimal(store.state(LAST_CLOSE_KEY) or "0")
    trades = store.trades()
    day = None
    if last_bar:
        day = datetime.fromisoformat(last_bar.replace("Z", "+00:00")).astimezone(NEW_YORK).date()
    realized: dict[str, Decimal] = {}
    unrealized: dict[str, Decimal] = {}
    open_trades = []
    for trade in trades:
        realized.setdefault(trade.profile, Decimal(0))
        unrealized.setdefault(trade.profile, Decimal(0))
        if trade.status == "closed" and trade.exit_time and trade.pnl is not None:
            if day is not None and trade.exit_time.astimezone(NEW_YORK).date() == day:
                realized[trade.profile] += trade.pnl
        elif trade.status in {"open", "exiting"} and trade.entry_price is not None and mark:
            sign = 1 if trade.direction == "long" else -1
            value = sign * (mark - trade.entry_price) * trade.qty
            unrealized[trade.profile] += value
            open_trades.append(
                {
                    "trade_id": trade.trade_id,
                    "profile": trade.profile,
                    "direction": trade.direction,
                    "shares": trade.qty,
                    "entry_price": str(trade.entry_price),
                    "entry_time": trade.entry_time.isoformat() if trade.entry_time else None,
                    "target_price": str(trade.target_price),
                    "unrealized": str(value.quantize(Decimal("0.01"))),
                }
            )
    equity_curve = store.equity_curve()
    risk = (run or {}).get("config", {}).get("risk", {})
    tripped = str(state.get("actor") or "")
    breakers = {
        name: {
            "threshold": risk.get(key),
            "meaning": meaning.format(risk.get(key)),
            "tripped": tripped == f"breaker:{name}",
        }
        for name, (key, meaning) in BREAKERS.items()
    }
    return {
        "mode": (run or {}).get("mode"),
        "feed": (run or {}).get("config", {}).get("feed", "file"),
        "state": state["state"],
        "state_reason": state.get("reason"),
        "state_actor": state.get("actor"),
        "last_bar": last_bar,
        "equity": str(equity_curve[-1][1]) if equity_curve else None,
        "session": day.isoformat() if day else None,
        "pnl_today": {
            "realized": str(sum(realized.values(), Decimal(0))),
            "unrealized": str(sum(unrealized.values(), Decimal(0)).quantize(Decimal("0.01"))),
            "per_profile": {
                p: {
                    "realized": str(realized[p]),
                    "unrealized": str(unrealized[p].quantize(Decimal("0.01"))),
                }
                for p in sorted(realized)
            },
        },
        "open_trades": open_trades,
        "breakers": breakers,
    }
