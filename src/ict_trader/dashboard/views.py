"""What the dashboard shows, as JSON-ready dicts built from the store alone.

The dashboard never talks to the engine or the broker: everything it shows was committed to the
SQLite store by the trading loop (account snapshots as the broker reported them, fills, trades),
so a page served by `ict-trader dashboard` on a stopped bot shows exactly what a running one
would. Money leaves here as decimal strings, never floats, so the page and the store agree to the
cent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ict_trader.core.bars import Bar
from ict_trader.core.calendar import NEW_YORK
from ict_trader.core.events import TradeView
from ict_trader.core.instruments import instrument_of
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book
from ict_trader.reporting.option_fields import option_fields
from ict_trader.reporting.status import collect_status

_CENT = Decimal("0.01")
_ONE_MINUTE = timedelta(minutes=1)
_EXIT_LEGS = ("target", "stop", "exit")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT))


def _now(status: dict[str, Any]) -> datetime | None:
    """The dashboard's "now": the close of the last processed bar (replay time in a replay)."""
    last = status.get("last_bar")
    if not last:
        return None
    return datetime.fromisoformat(str(last).replace("Z", "+00:00")) + _ONE_MINUTE


def _configured_symbols(store: Store) -> list[str]:
    run = store.last_run() or {}
    return [str(symbol) for symbol in run.get("config", {}).get("symbols", [])]


def _in_settings_order(symbols: list[str], configured: list[str]) -> list[str]:
    """The settings' order (`symbols = ["IWM", "DIA"]`: IWM first), then any other alphabetically
    (a symbol traded by an earlier run of the store)."""
    first = [symbol for symbol in configured if symbol in symbols]
    return first + sorted(set(symbols) - set(first))


def chart_symbols(store: Store) -> list[str]:
    """The symbols whose bars the store keeps, the first the chart shows by default."""
    return _in_settings_order(store.bar_symbols(), _configured_symbols(store))


def _max_hold_minutes(store: Store) -> int:
    run = store.last_run() or {}
    return int(run.get("config", {}).get("exits", {}).get("max_hold_minutes", 60))


def _profile_stats(book: Book, today: date | None) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for profile in book.profiles():
        closed = book.closed(profile=profile)
        wins = sum(1 for t in closed if t.pnl is not None and t.pnl > 0)
        stats[profile] = {
            "closed": len(closed),
            "wins": wins,
            "losses": len(closed) - wins,
            "open": len(book.unfinished(profile)),
            "win_rate": None if not closed else round(wins / len(closed), 4),
            "pnl_total": _money(book.realized(profile=profile)),
            "pnl_today": _money(book.realized(today, profile) if today else Decimal(0)),
        }
    return stats


def status_view(store: Store) -> dict[str, Any]:
    """Account, P&L (today, total, per profile), win rates, trading state, breakers."""
    book = Book.of(store)
    status = collect_status(store, book)
    account = store.latest_account()
    today = date.fromisoformat(status["session"]) if status["session"] else None
    profiles = _profile_stats(book, today)
    unrealized = Decimal(status["pnl_today"]["unrealized"])
    realized_today = Decimal(status["pnl_today"]["realized"])
    total = book.realized()
    for name, figures in status["pnl_today"]["per_profile"].items():
        mine = profiles.setdefault(name, {})
        mine["unrealized"] = figures["unrealized"]
        mine["instrument"] = figures["instrument"]  # shares, options or both
        mine["model_priced"] = figures["model_priced"]
    closed = sum(p.get("closed", 0) for p in profiles.values())
    wins = sum(p.get("wins", 0) for p in profiles.values())
    configured = _configured_symbols(store)
    return {
        "mode": status["mode"],
        "feed": status["feed"],
        "symbol": ", ".join(configured) or None,
        # Each symbol's position (net units, negative when short), last close, today's realized
        # and unrealized P&L, in the settings' order.
        "symbols": {
            symbol: status["symbols"][symbol]
            for symbol in _in_settings_order(list(status["symbols"]), configured)
        },
        "state": status["state"],
        "state_reason": status["state_reason"],
        "state_actor": status["state_actor"],
        "pending_requests": status["pending_requests"],  # what the bot applies next
        "last_bar": status["last_bar"],
        "session": status["session"],
        "account": None
        if account is None
        else {"time": _iso(account[0]), "equity": _money(account[1]), "cash": _money(account[2])},
        "pnl": {
            "today": _money(realized_today + unrealized),
            "today_realized": _money(realized_today),
            "today_unrealized": _money(unrealized),
            "total": _money(total + unrealized),
            "total_realized": _money(total),
        },
        "trades": {
            "closed": closed,
            "wins": wins,
            "win_rate": None if closed == 0 else round(wins / closed, 4),
        },
        "profiles": profiles,
        "breakers": status["breakers"],
        # Any option premium from the pricing model: the P&L and equity shown are modelled.
        "model_priced": status["model_priced"],
    }


def _orders_by_trade(store: Store) -> dict[str, list[dict[str, Any]]]:
    by_trade: dict[str, list[dict[str, Any]]] = {}
    for order in store.orders():
        by_trade.setdefault(order["trade_id"], []).append(order)
    return by_trade


def trades_view(store: Store) -> list[dict[str, Any]]:
    """Every trade, newest first, with the broker's order ids of its entry and exit."""
    orders = _orders_by_trade(store)
    rows: list[dict[str, Any]] = []
    for trade in store.trades():
        legs = orders.get(trade.trade_id, [])
        entry = next((o for o in legs if o["leg"] == "entry"), None)
        exits = [o for o in legs if o["leg"] in _EXIT_LEGS and o["filled_qty"] > 0]
        option = option_fields(trade)
        rows.append(
            {
                "trade_id": trade.trade_id,
                "profile": trade.profile,
                "symbol": trade.symbol,
                "direction": trade.direction,
                "status": trade.status,
                "shares": None if option else trade.qty,
                "contracts": trade.qty if option else None,
                "option": option,  # the contract, its premiums and greeks; None for shares
                "entry_time": _iso(trade.entry_time),
                "entry_price": None if trade.entry_price is None else str(trade.entry_price),
                "exit_time": _iso(trade.exit_time),
                "exit_price": None if trade.exit_price is None else str(trade.exit_price),
                "exit_reason": None if trade.exit_reason is None else trade.exit_reason.value,
                "pnl": None if trade.pnl is None else _money(trade.pnl),
                "entry_order": None if entry is None else entry["broker_order_id"],
                "exit_orders": [o["broker_order_id"] for o in exits],
            }
        )
    rows.sort(key=lambda row: row["entry_time"] or "", reverse=True)
    return rows


def positions_view(store: Store) -> list[dict[str, Any]]:
    """Open trades with unrealized P&L at the last close and the minutes left to the time exit."""
    status = collect_status(store)
    now = _now(status)
    hold = timedelta(minutes=_max_hold_minutes(store))
    positions = []
    for trade in status["open_trades"]:
        entry_time = datetime.fromisoformat(trade["entry_time"]) if trade["entry_time"] else None
        left = None
        if entry_time is not None and now is not None:
            left = max(0, round((entry_time + hold - now).total_seconds() / 60))
        positions.append(
            {
                **trade,
                "entry_time": _iso(entry_time),
                "mark": None if trade["mark"] is None else str(round(Decimal(trade["mark"]), 4)),
                "minutes_left": left,
            }
        )
    return positions


def session_day(store: Store, day: str | None) -> date | None:
    if day:
        return date.fromisoformat(day)
    session = collect_status(store)["session"]
    return None if session is None else date.fromisoformat(session)


def bars_view(store: Store, day: date | None, symbol: str | None = None) -> dict[str, Any]:
    """One session's candles of one symbol (by default the first of `chart_symbols`) with its
    signals and its trades' entries and exits to mark; `symbols` are those the chart can show."""
    symbols = chart_symbols(store)
    symbol = symbol or (symbols[0] if symbols else None)
    if day is None or symbol is None:
        return {
            "day": None if day is None else day.isoformat(),
            "symbol": symbol,
            "symbols": symbols,
            "bars": [],
            "signals": [],
            "entries": [],
            "exits": [],
        }
    start = datetime.combine(day, time(4, 0), NEW_YORK)
    end = datetime.combine(day, time(20, 0), NEW_YORK)
    bars = store.bars_between(start, end, symbol)
    in_day = [
        t
        for t in store.trades()
        if instrument_of(t.symbol).root == symbol
        and t.entry_time is not None
        and start <= t.entry_time < end
    ]
    return {
        "day": day.isoformat(),
        "symbol": symbol,
        "symbols": symbols,
        "bars": [
            {"t": _iso(b.time), "o": b.open, "h": b.high, "l": b.low, "c": b.close, "v": b.volume}
            for b in bars
        ],
        "signals": [
            {"t": s["time"], "direction": s["direction"], "close": s["close"]}
            for s in store.signals_between(start, end, symbol)
        ],
        "entries": [
            {
                "t": _iso(t.entry_time),
                "price": str(_on_chart(t, t.entry_price, t.entry_time, bars)),
                "profile": t.profile,
                "direction": t.direction,
                **_premium_mark(t, t.entry_price),
            }
            for t in in_day
        ],
        "exits": [
            {
                "t": _iso(t.exit_time),
                "price": str(_on_chart(t, t.exit_price, t.exit_time, bars)),
                "profile": t.profile,
                "reason": None if t.exit_reason is None else t.exit_reason.value,
                "pnl": None if t.pnl is None else _money(t.pnl),
                **_premium_mark(t, t.exit_price),
            }
            for t in in_day
            if t.exit_time is not None
        ],
    }


def _on_chart(
    trade: TradeView, price: Decimal | None, moment: datetime | None, bars: list[Bar]
) -> Decimal | float | None:
    """Where a trade's mark sits on its symbol's candles: a share trade at its fill price; an
    option trade (whose prices are premiums) at the underlying's price — the signal's close at
    entry, the close of the last bar done by the exit."""
    if trade.option is None:
        return price
    if moment == trade.entry_time:
        return trade.option.underlying_entry
    done = [b.close for b in bars if moment is not None and b.time + _ONE_MINUTE <= moment]
    return done[-1] if done else None


def _premium_mark(trade: TradeView, premium: Decimal | None) -> dict[str, Any]:
    """An option trade's mark also names the contract and the premium it was filled at."""
    if trade.option is None:
        return {}
    return {
        "contract": trade.symbol,
        "premium": None if premium is None else str(premium),
        "modelled": trade.option.source.modelled,
    }


def equity_view(store: Store, max_points: int = 2000) -> list[dict[str, str]]:
    """The equity curve, thinned evenly to at most `max_points` (keeping the last point)."""
    curve = store.equity_curve()
    if len(curve) > max_points:
        step = len(curve) / max_points
        curve = [curve[int(i * step)] for i in range(max_points - 1)] + [curve[-1]]
    return [{"t": _iso(moment) or "", "equity": _money(value)} for moment, value in curve]


def events_view(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    return store.audit_events(limit)
