"""`ict-trader status` and `health`: what the bot is doing, read from its store (works while it
runs, and on a stopped bot says what it will do at start)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ict_trader.core.breakers import BREAKERS, tripped_by
from ict_trader.core.calendar import NEW_YORK
from ict_trader.notify.option_words import contracts_text
from ict_trader.persistence import control_log as control
from ict_trader.persistence.state_keys import (
    BROKER_CHECKED_KEY,
    BROKER_ERROR_KEY,
    BROKER_OK_KEY,
    HEARTBEAT_KEY,
    LAST_BAR_KEY,
)
from ict_trader.persistence.store import Store
from ict_trader.reporting.book import Book, TradeFigures
from ict_trader.reporting.option_fields import option_fields

DEFAULT_MAX_HEARTBEAT_AGE = 90.0
CENT = Decimal("0.01")  # seconds without a loop pass before the bot counts as stuck


def collect_status(store: Store, book: Book | None = None) -> dict[str, Any]:
    """`book`: the store's trades already read, for a caller that needs them too."""
    run = store.last_run()
    # What the bot is doing once it has applied the pending kill/resume requests — at its next
    # bar if it runs, at its start if it does not — so a resume given to a stopped bot shows.
    state = control.outlook(store)
    last_bar = store.state(LAST_BAR_KEY)
    marks = store.last_closes()
    book = book or Book.of(store)
    day = None
    if last_bar:
        day = datetime.fromisoformat(last_bar.replace("Z", "+00:00")).astimezone(NEW_YORK).date()
    open_trades = [
        _open_trade(f, marks)
        for f in book.unfinished()
        if f.trade.status != "pending" and f.trade.entry_price is not None
    ]
    equity_curve = store.equity_curve()
    risk = (run or {}).get("config", {}).get("risk", {})
    tripped = tripped_by(state.get("actor"))
    breakers = {
        spec.breaker.value: {
            "threshold": risk.get(spec.setting),
            "meaning": spec.meaning.format(risk.get(spec.setting)),
            "action": spec.action,
            "tripped": tripped is spec.breaker,
        }
        for spec in BREAKERS
    }
    return {
        "mode": (run or {}).get("mode"),
        "feed": (run or {}).get("config", {}).get("feed", "file"),
        "state": state["state"],
        "state_reason": state.get("reason"),
        "state_actor": state.get("actor"),
        "recorded_state": state["recorded"],
        "pending_requests": state["pending"],
        "last_bar": last_bar,
        "equity": str(equity_curve[-1][1]) if equity_curve else None,
        "session": day.isoformat() if day else None,
        "pnl_today": {
            "realized": str(book.realized(day) if day else Decimal(0)),
            "unrealized": str(book.unrealized(marks).quantize(Decimal("0.01"))),
            "per_profile": {
                p: {
                    "realized": str(book.realized(day, p) if day else Decimal(0)),
                    "unrealized": str(book.unrealized(marks, p).quantize(Decimal("0.01"))),
                    **_instrument_of_profile(book, p),
                }
                for p in book.profiles()
            },
        },
        # Each underlying: its net shares, the contracts held on it, and the P&L of both.
        "symbols": {
            symbol: {
                "last_close": str(marks[symbol]) if symbol in marks else None,
                "position": book.position(symbol),
                "contracts": book.contracts_on(symbol),
                "realized": str(
                    (book.realized(day, underlying=symbol) if day else Decimal(0)).quantize(CENT)
                ),
                "unrealized": str(book.unrealized(marks, underlying=symbol).quantize(CENT)),
                "model_priced": book.modelled(underlying=symbol),
            }
            for symbol in _symbols(run, book)
        },
        # True when any trade's premiums came from the pricing model: its P&L is modelled.
        "model_priced": book.modelled(),
        "open_trades": open_trades,
        "breakers": breakers,
    }


def _symbols(run: dict[str, Any] | None, book: Book) -> list[str]:
    """The settings' symbols in their order, then any other the book holds trades in (an
    option under the symbol it is on: contracts are not symbols of their own)."""
    configured = list((run or {}).get("config", {}).get("symbols", []))
    return configured + [s for s in book.underlyings() if s not in configured]


def _open_trade(figures: TradeFigures, marks: dict[str, Decimal]) -> dict[str, Any]:
    """An open trade as `status` and the dashboard show it: shares, or contracts with the
    contract spelled out and its premiums (`option`, see `option_fields`)."""
    trade = figures.trade
    option = option_fields(trade, figures.held) if figures.is_option else None
    return {
        "trade_id": trade.trade_id,
        "profile": trade.profile,
        "symbol": trade.symbol,
        "direction": trade.direction,
        "shares": None if figures.is_option else figures.held,
        "contracts": figures.held if figures.is_option else None,
        "entry_price": str(trade.entry_price),
        "entry_time": trade.entry_time.isoformat() if trade.entry_time else None,
        "target_price": str(trade.target_price),
        "realized": str(figures.realized().quantize(Decimal("0.01"))),
        "mark": str(marks[trade.symbol]) if trade.symbol in marks else None,
        "unrealized": str(figures.unrealized(marks).quantize(Decimal("0.01"))),
        "option": option,
    }


def _instrument_of_profile(book: Book, profile: str) -> dict[str, Any]:
    """What a profile traded: `shares`, `options` or both, and whether its option premiums
    are modelled — so a summary can tell a profile's option P&L from a share profile's."""
    kinds = {"options" if f.is_option else "shares" for f in book.of_profile(profile)}
    instrument = "both" if len(kinds) > 1 else kinds.pop() if kinds else "shares"
    return {"instrument": instrument, "model_priced": book.modelled(profile)}


def open_trade_line(trade: dict[str, Any]) -> str:
    """One open trade of `collect_status` as `ict-trader status` prints it: shares as before;
    contracts with the contract named, the premium paid and the model label when modelled."""
    if trade.get("option") is None:
        return (
            f"open: {trade['trade_id']} {trade['direction']} {trade['shares']} @ "
            f"{trade['entry_price']} target {trade['target_price']} · {trade['unrealized']}"
        )
    option = trade["option"]
    label = f" ({option['label']})" if option["label"] else ""
    target = (
        f"target {option['underlying']} {option['underlying_target']}"
        if option["underlying_target"] is not None
        else f"target premium {trade['target_price']}"
    )
    return (
        f"open: {trade['trade_id']} {contracts_text(trade['contracts'])} "
        f"{option['contract']} ({option['occ_symbol']}) @ {trade['entry_price']}{label} · "
        f"paid ${option['premium_paid']} · delta {_greek(option['delta'], '+.2f')}, "
        f"IV {_greek(option['iv'], '.1%')} · {target} · mark {trade['mark'] or '?'} · "
        f"{trade['unrealized']}{label}"
    )


def _greek(value: float | None, spec: str) -> str:
    return "?" if value is None else format(value, spec)


def collect_health(
    store: Store, now: datetime | None = None, max_heartbeat_age: float = DEFAULT_MAX_HEARTBEAT_AGE
) -> dict[str, Any]:
    """Is the bot alive and able to trade? For supervisors: `healthy` and the `problems` found.

    Unhealthy when the live loop's heartbeat is missing or older than `max_heartbeat_age`
    seconds, or when the broker's last check failed or never happened. Read only from the store
    keys the live loop writes: heartbeat (UTC ISO time of its last pass), broker_ok ("1"/"0"),
    broker_checked_at, broker_last_error (already masked).
    """
    moment = now or datetime.now(UTC)
    problems: list[str] = []
    recorded = control.recorded_state(store)
    last_bar = store.state(LAST_BAR_KEY)
    heartbeat = store.state(HEARTBEAT_KEY)
    heartbeat_age = _age(heartbeat, moment)
    if heartbeat is None:
        problems.append("no heartbeat recorded: the live loop has not run on this store")
    elif heartbeat_age is None:
        problems.append(f"heartbeat {heartbeat!r} is not a time")
    elif heartbeat_age > max_heartbeat_age:
        problems.append(f"no heartbeat for {heartbeat_age:.0f} s (limit {max_heartbeat_age:g} s)")
    broker_ok = store.state(BROKER_OK_KEY)
    error = store.state(BROKER_ERROR_KEY) or None
    if broker_ok is None:
        problems.append("the broker has not been checked")
    elif broker_ok != "1":
        problems.append(f"broker not ok: {error or 'no error recorded'}")
    return {
        "healthy": not problems,
        "problems": problems,
        "state": recorded["state"],
        "last_bar_time": last_bar,
        "last_bar_age_seconds": _age(last_bar, moment),
        "heartbeat": heartbeat,
        "heartbeat_age_seconds": heartbeat_age,
        "broker": {
            "ok": broker_ok == "1",
            "checked_at": store.state(BROKER_CHECKED_KEY),
            "last_error": error,
        },
    }


def _age(text: str | None, now: datetime) -> float | None:
    """Seconds from a stored UTC ISO time to `now` (None if missing or unreadable)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round((now - moment).total_seconds(), 1)
