"""The words of every notification, next to the notifiers that send them.

The engine reports what happened as facts (`core.events.Notice`: a trade closed, the kill switch
engaged…); this module turns each into the `Notify` a person reads — in the push message, the
replay narration, the log and the store's audit trail alike. Changing a text is a change here
only, and the engine's tests assert facts, not wording.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from functools import singledispatch

from ict_trader.core.events import (
    BrokerTrouble,
    EntryFilled,
    EntryReduced,
    Level,
    Notice,
    Notify,
    OrderRefused,
    TradeClosed,
    TradeReleased,
    TradeView,
    TradingState,
    TradingStateChanged,
    UnknownFill,
)
from ict_trader.notify.option_words import (
    MODEL_PRICED,
    contract_label,
    contracts_text,
    greeks_text,
    is_option,
    modelled,
    premium_text,
    underlying,
)

CENT = Decimal("0.01")


def price_text(value: Decimal | None) -> str:
    """A price as people write it: cents, or more digits only when the fill was sub-penny."""
    if value is None:
        return "?"
    cents = value.quantize(CENT)
    return str(cents if cents == value else value.normalize())


def render(notice: Notice) -> Notify:
    """The notification a person reads for `notice`."""
    return _render(notice)


@singledispatch
def _render(notice: object) -> Notify:
    raise TypeError(f"no text for {type(notice).__name__}")


@_render.register
def _(notice: BrokerTrouble) -> Notify:
    return Notify(Level.WARNING, "Broker error", notice.message, notice.time)


@_render.register
def _(notice: TradingStateChanged) -> Notify:
    if notice.state is TradingState.HALTED:
        return Notify(
            Level.CRITICAL,
            "Kill switch engaged",
            f"Kill switch engaged by {notice.actor}: {notice.reason} · "
            f"closing {notice.closing} trade(s), no new entries",
            notice.time,
        )
    if notice.state is TradingState.REDUCING:
        return Notify(
            Level.CRITICAL,
            "Entries blocked",
            f"No new entries ({notice.actor}): {notice.reason}; open trades still managed",
            notice.time,
        )
    return Notify(
        Level.WARNING,
        "Trading resumed",
        f"Kill switch lifted by {notice.actor}: {notice.reason}",
        notice.time,
    )


@_render.register
def _(notice: TradeReleased) -> Notify:
    trade = notice.trade
    held = (
        f"{contracts_text(notice.held)} {contract_label(trade.symbol)}"
        if is_option(trade.symbol)
        else f"{notice.held} share(s)"
    )
    return Notify(
        Level.WARNING,
        f"{trade.profile.upper()} trade released",
        f"{trade.trade_id}: {held} no longer managed by ict-trader "
        f"({notice.actor}: {notice.reason}); no P&L booked",
        notice.time,
    )


@_render.register
def _(notice: EntryReduced) -> Notify:
    return Notify(
        Level.WARNING,
        f"{notice.profile.upper()} entry reduced",
        f"{notice.profile} entry reduced from {notice.wanted} to {notice.qty} {notice.unit}: "
        + ", ".join(notice.cuts),
        notice.time,
    )


@_render.register
def _(notice: UnknownFill) -> Notify:
    return Notify(
        Level.WARNING,
        "Unknown fill",
        f"fill for order {notice.client_order_id} that ict-trader did not place",
        notice.time,
    )


@_render.register
def _(notice: OrderRefused) -> Notify:
    return Notify(
        Level.WARNING,
        f"{notice.profile.upper()} {notice.leg.value} order rejected",
        f"order {notice.client_order_id} rejected: {notice.reason}",
        notice.time,
    )


@_render.register
def _(notice: EntryFilled) -> Notify:
    trade = notice.trade
    profile = trade.profile.upper()
    if trade.option is not None:
        return Notify(Level.INFO, f"{profile} entry", _option_entry(notice), notice.time)
    return Notify(
        Level.INFO,
        f"{profile} entry",
        f"{profile} entry — {trade.direction.upper()} {trade.qty} {trade.symbol} @ "
        f"{price_text(notice.price)} · order {notice.order} · "
        f"target {price_text(trade.target_price)}",
        notice.time,
    )


def _option_entry(notice: EntryFilled) -> str:
    """An option entry: the contract bought, its premium per contract and in total, the
    greeks it was bought at, what closes it, and whether the premium is the model's."""
    trade = notice.trade
    option = trade.option
    assert option is not None
    if option.underlying_target is not None:
        target = f"target {underlying(trade.symbol)} {price_text(option.underlying_target)}"
    else:
        target = f"target premium {price_text(trade.target_price)}"
    return (
        f"{trade.profile.upper()} entry — BUY {contracts_text(trade.qty)} "
        f"{contract_label(trade.symbol)} @ {price_text(notice.price)}{_label(trade)} · "
        f"paid {premium_text(notice.price, trade.qty, trade.symbol)} · "
        f"{greeks_text(option)} · {trade.direction} signal at "
        f"{price_text(option.underlying_entry)} · {target} · order {notice.order}"
    )


def _label(trade: TradeView) -> str:
    return f" ({MODEL_PRICED})" if modelled(trade) else ""


@_render.register
def _(notice: TradeClosed) -> Notify:
    trade = notice.trade
    profile = trade.profile.upper()
    reason = trade.exit_reason.value.replace("_", " ") if trade.exit_reason else "exit"
    orders = ", ".join(notice.exit_orders) or "?"
    if trade.option is not None:
        return Notify(
            Level.INFO,
            f"{profile} {reason} exit",
            f"{profile} {reason} exit — SELL {contracts_text(trade.qty)} "
            f"{contract_label(trade.symbol)} {price_text(trade.entry_price)} → "
            f"{price_text(trade.exit_price)}{_label(trade)} · {_premiums(trade)} · "
            f"P&L {trade.pnl:+.2f}{_label(trade)} · {greeks_text(trade.option)} at entry · "
            f"order {orders} (entry {notice.entry_order})",
            notice.time,
        )
    return Notify(
        Level.INFO,
        f"{profile} {reason} exit",
        f"{profile} {reason} exit — {trade.direction.upper()} {trade.qty} {trade.symbol} "
        f"{price_text(trade.entry_price)} → {price_text(trade.exit_price)} · "
        f"P&L {trade.pnl:+.2f} · order {orders} (entry {notice.entry_order})",
        notice.time,
    )


def _premiums(trade: TradeView) -> str:
    """`paid $52.00 a contract, $520.00 for 10 · received $78.00 a contract, $780.00 for 10`."""
    parts = []
    if trade.entry_price is not None:
        parts.append(f"paid {premium_text(trade.entry_price, trade.qty, trade.symbol)}")
    if trade.exit_price is not None:
        parts.append(f"received {premium_text(trade.exit_price, trade.qty, trade.symbol)}")
    return " · ".join(parts)


def store_unwritable(problem: str, moment: datetime) -> Notify:
    """The live loop's store cannot be written (disk full, locked past every retry)."""
    return Notify(
        Level.CRITICAL,
        "Store cannot be written",
        f"{problem}. No new entries; open trades are still managed (their exits are sent); "
        "free space or stop the bot.",
        moment,
    )


def order_held(text: str, moment: datetime) -> Notify:
    """An order kept back while the broker's position in its symbol is disputed."""
    return Notify(Level.CRITICAL, "Order held: position disputed", text, moment)
