"""GET /v2/account/activities and /v2/account/activities/{activity_type}, as the spec has them.

Ids are `"<New York time to the millisecond>::<uuid>"` (the spec's example pairs transaction_time
18:55:09.981Z with id `20220202135509981::…`); the uuid here counts up, so ids sort in execution
order and an id is a page token: the next page holds the activities past it in the requested
direction (newest first by default), `page_size` at most 100. Filters: `activity_types` (comma
list; the emulator records FILL, and for option contracts that reach their expiry close OPEXP,
OPEXC and the OPTRD of an exercise's shares), `category` (`trade_activity` is FILL, every other
type is a `non_trade_activity`), `order_id`, `date`, `after`, `until` (a fill's time is its
`transaction_time`, a non-trade activity's its `created_at`). A bad parameter is a
ValueError naming it, which the server answers as the trading API's validation error (422).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ict_trader.core.calendar import NEW_YORK

# ActivityType in the Trading API spec (trading-api.json, components.schemas.ActivityType)
ACTIVITY_TYPES = frozenset(
    [
        "FILL",
        "TRANS",
        "MISC",
        "ACATC",
        "ACATS",
        "CFEE",
        "CGD",
        "CSD",
        "CSW",
        "DIV",
        "DIVCGL",
        "DIVCGS",
        "DIVFEE",
        "DIVFT",
        "DIVNRA",
        "DIVROC",
        "DIVTW",
        "DIVTXEX",
        "FEE",
        "INT",
        "INTNRA",
        "INTTW",
        "JNL",
        "JNLC",
        "JNLS",
        "MA",
        "NC",
        "OPASN",
        "OPCA",
        "OPCSH",
        "OPEXC",
        "OPEXP",
        "OPTRD",
        "PTC",
        "PTR",
        "REO",
        "REORG",
        "SPIN",
        "SPLIT",
        "FOPT",
        "OCT",
    ]
)
MAX_PAGE_SIZE = 100


def activity_id(moment: datetime, sequence: int) -> str:
    """An activity id for an execution at `moment`, the `sequence`-th of the account."""
    local = moment.astimezone(NEW_YORK)
    stamp = local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"
    return f"{stamp}::{uuid.UUID(int=(0xAC << 120) | sequence)}"


@dataclass(frozen=True)
class ActivityQuery:
    """The query of one activities request, validated."""

    types: frozenset[str] | None
    trade: bool | None  # `category`: trade activities only (True), the others only (False)
    direction: str
    page_size: int
    page_token: str | None
    order_id: str | None
    after: datetime | None
    until: datetime | None


def parse_query(query: Mapping[str, str], path_type: str | None = None) -> ActivityQuery:
    """Validate the query string; ValueError names a bad parameter (the server answers 422)."""
    types: frozenset[str] | None = None
    if path_type is not None:
        types = _types(path_type, "activity_type")
    elif query.get("activity_types"):
        types = _types(query["activity_types"], "activity_types")
    category = query.get("category") or None
    if category not in {None, "trade_activity", "non_trade_activity"}:
        raise ValueError(f"invalid category {category!r}: trade_activity or non_trade_activity")
    direction = query.get("direction", "desc")
    if direction not in {"asc", "desc"}:
        raise ValueError(f"invalid direction {direction!r}: use asc or desc")
    text = query.get("page_size", str(MAX_PAGE_SIZE))
    try:
        page_size = int(text)
    except ValueError:
        raise ValueError(f"invalid page_size {text!r}") from None
    if page_size < 1:
        raise ValueError(f"invalid page_size {text!r}: must be at least 1")
    after = _moment(query, "after")
    until = _moment(query, "until")
    if query.get("date"):
        day = _moment(query, "date")
        assert day is not None
        after, until = day, day + timedelta(days=1)
    return ActivityQuery(
        types=types,
        trade=None if category is None else category == "trade_activity",
        direction=direction,
        page_size=min(page_size, MAX_PAGE_SIZE),
        page_token=query.get("page_token") or None,
        order_id=query.get("order_id") or None,
        after=after,
        until=until,
    )


def select(records: Sequence[dict[str, Any]], query: ActivityQuery) -> list[dict[str, Any]]:
    """One page of `records` (all of them, oldest first) for `query`."""
    chosen = [r for r in records if _matches(r, query)]
    chosen.sort(key=lambda r: str(r["id"]), reverse=query.direction == "desc")
    if query.page_token is not None:
        token = query.page_token
        if query.direction == "desc":
            chosen = [r for r in chosen if str(r["id"]) < token]
        else:
            chosen = [r for r in chosen if str(r["id"]) > token]
    return chosen[: query.page_size]


def _matches(record: dict[str, Any], query: ActivityQuery) -> bool:
    if query.types is not None and record["activity_type"] not in query.types:
        return False
    if query.trade is not None and (record["activity_type"] == "FILL") != query.trade:
        return False
    if query.order_id is not None and record.get("order_id") != query.order_id:
        return False
    stamp = record.get("transaction_time") or record["created_at"]
    moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    if query.after is not None and moment <= query.after:
        return False
    return query.until is None or moment < query.until


def _types(text: str, name: str) -> frozenset[str]:
    names = frozenset(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = sorted(names - ACTIVITY_TYPES)
    if unknown or not names:
        raise ValueError(f"invalid {name} {text!r}")
    return names


def _moment(query: Mapping[str, str], name: str) -> datetime | None:
    """RFC-3339 or YYYY-MM-DD (a date is New York midnight, as the account's day begins)."""
    text = query.get(name)
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(), NEW_YORK).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid {name} {text!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"invalid {name} {text!r}: no UTC offset")
    return moment.astimezone(UTC)
