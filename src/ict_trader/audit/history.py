"""Alpaca's side of the audit: its order history, its FILL activities and its SIP bars.

Read through the official alpaca-py clients, as the bot trades, so what is compared is what the
broker says, in the broker's own words:

- orders: `TradingClient.get_orders` with `status=all`, `nested=true` (an OCO's stop leg is
  listed under its take-profit) and `direction=asc`, paged by submission time: the next page
  starts just before the last order seen (`after` is exclusive), and orders seen twice are
  dropped by id — two orders may share a timestamp;
- fills: `GET /v2/account/activities/FILL` (the installed alpaca-py has no method for account
  activities, so the client's own `get` is used), oldest first, paged by `page_token` (the id of
  the last activity seen), as the Trading API spec describes;
- bars: `StockHistoricalDataClient.get_stock_bars` with `feed=sip`, the consolidated tape the
  backtests are run on; one request for every traded symbol (Alpaca sorts the answer by symbol,
  then time, and pages across symbols; alpaca-py follows the pages and groups them by symbol).
  On the free plan Alpaca refuses SIP bars of the latest 15 minutes (HTTP 403):
  `fetch_sip_bars` then stops 15 minutes back and says so.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order
from alpaca.trading.requests import GetOrdersRequest

from ict_trader.core.bars import Bar

ORDER_PAGE = 500  # Alpaca's maximum `limit` for GET /v2/orders
ACTIVITY_PAGE = 100  # Alpaca's maximum `page_size` for account activities
RECENT_SIP_DELAY = timedelta(minutes=15)  # the free plan's SIP history stops this far back
_TICK = timedelta(microseconds=1)


class HistoryError(RuntimeError):
    """Alpaca's history cannot be read completely (a page that never advances)."""


@dataclass(frozen=True)
class BrokerOrder:
    """One order as Alpaca lists it (an OCO or bracket leg names its parent)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: int
    type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: int
    filled_avg_price: Decimal | None
    submitted_at: datetime
    order_class: str
    parent_id: str | None = None


@dataclass(frozen=True)
class FillActivity:
    """One execution as Alpaca's FILL activity records it."""

    id: str
    order_id: str
    time: datetime
    qty: int
    price: Decimal
    side: str
    symbol: str


def fetch_orders(
    client: TradingClient, start: datetime, end: datetime, *, page: int = ORDER_PAGE
) -> list[BrokerOrder]:
    """Every order submitted in [start, end), all statuses, legs included (after their parent).

    Paged by time: each page asks for orders after the last one seen minus a microsecond, so an
    order sharing that timestamp is not skipped; a full page of orders that all share one
    timestamp cannot be paged past by time, and is refused rather than silently cut short."""
    seen: dict[str, BrokerOrder] = {}
    after = start - _TICK
    while True:
        answer = client.get_orders(
            GetOrdersRequest(
                status=QueryOrderStatus.ALL,
                after=after,
                until=end,
                direction=Sort.ASC,
                limit=page,
                nested=True,
            )
        )
        assert isinstance(answer, list)
        fresh = 0
        for order in answer:
            assert isinstance(order, Order)
            for record in _flatten(order):
                if record.id not in seen:
                    seen[record.id] = record
                    fresh += 1
        if len(answer) < page:
            break
        times = sorted({_when(order) for order in answer if isinstance(order, Order)})
        if fresh == 0:  # the page before ended on the same timestamp: a tie as big as a page
            raise HistoryError(
                f"at least {page} orders share the submission time {times[0]}; Alpaca's "
                "history cannot be paged past them by time"
            )
        after = times[-1] - _TICK
    return sorted(seen.values(), key=lambda o: (o.submitted_at, o.parent_id is not None, o.id))


def _flatten(order: Order, parent: str | None = None) -> list[BrokerOrder]:
    record = BrokerOrder(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=order.side.value if order.side else "",
        qty=int(Decimal(str(order.qty or 0))),
        type=order.type.value if order.type else "",
        limit_price=_decimal(order.limit_price),
        stop_price=_decimal(order.stop_price),
        status=order.status.value,
        filled_qty=int(Decimal(str(order.filled_qty or 0))),
        filled_avg_price=_decimal(order.filled_avg_price),
        submitted_at=_when(order),
        order_class=order.order_class.value if order.order_class else "simple",
        parent_id=parent,
    )
    legs = [leg for item in order.legs or [] for leg in _flatten(item, record.id)]
    return [record, *legs]


def _when(order: Order) -> datetime:
    moment = order.submitted_at or order.created_at
    return moment.astimezone(UTC)


def _decimal(value: object) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def fetch_fills(
    client: TradingClient, start: datetime, end: datetime, *, page: int = ACTIVITY_PAGE
) -> list[FillActivity]:
    """Every FILL activity in [start, end), oldest first, through every page."""
    fills: list[FillActivity] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {
            # whole seconds, the spec's format (`after` is exclusive: a second before `start`)
            "after": _rfc3339(start - timedelta(seconds=1)),
            "until": _rfc3339(end),
            "direction": "asc",
            "page_size": page,
        }
        if token is not None:
            params["page_token"] = token
        answer = client.get("/account/activities/FILL", params)
        if not isinstance(answer, list):
            raise HistoryError(f"Alpaca's activities answer is not a list: {str(answer)[:80]}")
        for item in answer:
            fills.append(_activity(item))
        if len(answer) < page:
            return fills
        token = str(answer[-1]["id"])


def _activity(item: dict[str, Any]) -> FillActivity:
    return FillActivity(
        id=str(item["id"]),
        order_id=str(item["order_id"]),
        time=datetime.fromisoformat(str(item["transaction_time"]).replace("Z", "+00:00")),
        qty=int(Decimal(str(item["qty"]))),
        price=Decimal(str(item["price"])),
        side=str(item.get("side", "")),
        symbol=str(item.get("symbol", "")),
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SipBars:
    """The consolidated bars fetched, by symbol (each bar naming its symbol), and up to when
    (the free plan stops 15 minutes back)."""

    bars: dict[str, list[Bar]]
    until: datetime
    cut_short: bool

    def of(self, symbol: str) -> list[Bar]:
        """`symbol`'s bars, oldest first (none if Alpaca has none)."""
        return self.bars.get(symbol, [])

    def merged(self) -> list[Bar]:
        """Every symbol's bars in (time, symbol) order, as the backtest takes several symbols."""
        return list(heapq.merge(*self.bars.values(), key=lambda bar: (bar.time, bar.symbol)))


def fetch_sip_bars(
    client: StockHistoricalDataClient,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    keep: Callable[[str, datetime], bool],
) -> SipBars:
    """SIP minute bars of `symbols` opening in [start, end) that `keep(symbol, open time)`
    accepts (regular hours), in one request for every symbol (alpaca-py pages through it,
    across symbols); if Alpaca refuses recent SIP data (403, the free plan), the bars up to 15
    minutes before `now`."""
    until = min(end, now)
    try:
        return SipBars(_sip(client, symbols, start, until, keep), until, cut_short=False)
    except APIError as exc:
        if exc.status_code != 403:
            raise
    until = min(until, now - RECENT_SIP_DELAY)
    return SipBars(_sip(client, symbols, start, until, keep), until, cut_short=True)


def _sip(
    client: StockHistoricalDataClient,
    symbols: Sequence[str],
    start: datetime,
    until: datetime,
    keep: Callable[[str, datetime], bool],
) -> dict[str, list[Bar]]:
    bars: dict[str, list[Bar]] = {symbol: [] for symbol in symbols}
    if until <= start or not symbols:
        return bars
    request = StockBarsRequest(
        symbol_or_symbols=list(symbols),
        timeframe=TimeFrame.Minute,
        start=start,
        end=until - timedelta(minutes=1),  # inclusive: the last bar opening before `until`
        feed=DataFeed.SIP,
    )
    answer = client.get_stock_bars(request)
    data = answer.data if hasattr(answer, "data") else {}
    for symbol in symbols:
        for row in data.get(symbol, []):
            moment = row.timestamp.astimezone(UTC)
            if start <= moment < until and keep(symbol, moment):
                bars[symbol].append(
                    Bar(
                        moment,
                        float(row.open),
                        float(row.high),
                        float(row.low),
                        float(row.close),
                        float(row.volume),
                        symbol,
                    )
                )
        bars[symbol].sort(key=lambda bar: bar.time)
    return bars
