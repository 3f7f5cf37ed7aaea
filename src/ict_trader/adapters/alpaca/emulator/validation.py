"""Request checks for the emulator's REST routes: bad input gets the 4xx Alpaca sends, never a 500.

Alpaca's OpenAPI specs (shipped in the `alpaca-mcp-server` package; tests/test_emulator_spec.py
validates the emulator against them) list the query parameters of each route with their types and
enums. A value of the wrong type is refused the way Alpaca refuses it: the trading API answers
422 `{"code": 40010001, "message": ...}` (its validation error), a body that is not a JSON object
of the right field types 400 `{"code": 40010000, "message": "request body format is invalid"}`,
and the market-data API and the calendar answer 400, the status their specs list. Keeping these
checks here, apart from the handlers, lets the server stay a thin mapping from routes to the
paper account. Two kinds of parameter are parsed where they are modelled: `timeframe` by
`emulator.feed.parse_timeframe` and the activities query by `emulator.activities.parse_query`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from ict_trader.adapters.alpaca.emulator.errors import ApiError

BODY_FORMAT_INVALID = "request body format is invalid"


@dataclass(frozen=True)
class Refusal:
    """How one API refuses a bad parameter: the status and the error code of its body."""

    status: int
    code: int | None

    def error(self, message: str) -> ApiError:
        return ApiError(self.status, self.code, message)


TRADING = Refusal(422, 40010001)  # Alpaca's trading-API validation error
CALENDAR = Refusal(400, 40010000)  # GET /v2/calendar lists 400
MARKET_DATA = Refusal(400, None)  # the market-data spec lists 400; its bodies carry no code


def text(query: Mapping[str, str], name: str, refusal: Refusal, *, required: bool = False) -> str:
    """A string parameter; `required` ones missing or empty are refused."""
    value = query.get(name, "")
    if required and not value:
        raise refusal.error(f"{name} is required")
    return value


def choice(
    query: Mapping[str, str], name: str, choices: Collection[str], default: str, refusal: Refusal
) -> str:
    """An enum parameter (the spec's `enum`), `default` when absent."""
    value = query.get(name, default)
    if value not in choices:
        raise refusal.error(f"invalid {name}: {value!r} (one of {', '.join(sorted(choices))})")
    return value


def integer(
    query: Mapping[str, str], name: str, default: int, refusal: Refusal, *, low: int, high: int
) -> int:
    """An integer parameter within [low, high] (the spec's `minimum` and `maximum`)."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise refusal.error(f"invalid {name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise refusal.error(f"invalid {name}: {value} (between {low} and {high})")
    return value


def boolean(query: Mapping[str, str], name: str, refusal: Refusal) -> bool:
    """A boolean parameter, written `true` or `false` as Alpaca's Go server parses them."""
    raw = query.get(name, "false").lower()
    if raw not in {"true", "false", "1", "0"}:
        raise refusal.error(f"invalid {name}: {raw!r} (true or false)")
    return raw in {"true", "1"}


def moment(query: Mapping[str, str], name: str, refusal: Refusal) -> datetime | None:
    """An RFC 3339 timestamp parameter (a plain date means its midnight UTC, as Alpaca reads
    `start=2024-07-29`); naive times are refused because their zone would be a guess."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), UTC)
        parsed = _time(raw)
    except ValueError:
        raise refusal.error(f"invalid {name}: {raw!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise refusal.error(f"invalid {name}: {raw!r} has no time zone")
    return parsed


def day(query: Mapping[str, str], name: str, refusal: Refusal) -> date | None:
    """A date parameter given as a date or an RFC 3339 time (the calendar accepts both)."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10]) if len(raw) == 10 else _time(raw).date()
    except ValueError:
        raise refusal.error(f"invalid {name}: {raw!r} is not a date") from None


def order_payload(body: Any) -> dict[str, Any]:
    """The JSON body of POST /v2/orders, checked for the field types of the spec's
    CreateOrderRequest: wrong JSON types are a malformed body (400), numbers that are not finite
    decimals a validation error (422)."""
    if not isinstance(body, dict):
        raise ApiError(400, 40010000, BODY_FORMAT_INVALID)
    for name in _STRING_FIELDS:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise ApiError(400, 40010000, BODY_FORMAT_INVALID)
    if body.get("extended_hours") is not None and not isinstance(body["extended_hours"], bool):
        raise ApiError(400, 40010000, BODY_FORMAT_INVALID)
    _decimals(body, _DECIMAL_FIELDS, "")
    for nested, fields in (("take_profit", ("limit_price",)), ("stop_loss", _STOP_FIELDS)):
        inner = body.get(nested)
        if inner is None:
            continue
        if not isinstance(inner, dict):
            raise ApiError(400, 40010000, BODY_FORMAT_INVALID)
        _decimals(inner, fields, f"{nested}.")
    return body


def calendar_date(query: Mapping[str, str], name: str, refusal: Refusal) -> date | None:
    """A date parameter written YYYY-MM-DD, as the option routes take them."""
    raw = query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise refusal.error(f"invalid {name}: {raw!r} is not a date (YYYY-MM-DD)") from None


def number(query: Mapping[str, str], name: str, refusal: Refusal) -> Decimal | None:
    """An optional query parameter that must be a finite number (a strike bound)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise refusal.error(f"invalid {name}: {raw!r} is not a number") from None
    if not value.is_finite():
        raise refusal.error(f"invalid {name}: {raw!r} is not a number")
    return value


def body_decimal(value: Any, name: str) -> Decimal | None:
    """An order body's number (JSON number or string) as a Decimal; None when absent."""
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise TRADING.error(f"invalid {name}") from None


def positive_decimal(raw: str, name: str, refusal: Refusal) -> Decimal:
    """A query parameter that must be a finite number above zero (`qty`, `percentage`)."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise refusal.error(f"invalid {name}: {raw!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise refusal.error(f"{name} must be > 0")
    return value


_STRING_FIELDS = (
    "symbol",
    "side",
    "type",
    "time_in_force",
    "order_class",
    "client_order_id",
    "position_intent",
)
_DECIMAL_FIELDS = ("qty", "notional", "limit_price", "stop_price", "trail_price", "trail_percent")
_STOP_FIELDS = ("stop_price", "limit_price")


def _decimals(body: Mapping[str, Any], fields: tuple[str, ...], prefix: str) -> None:
    """Decimal fields may be JSON strings or numbers (Alpaca reads both), and must be finite."""
    for name in fields:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ApiError(400, 40010000, BODY_FORMAT_INVALID)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise TRADING.error(f"invalid {prefix}{name}: {value!r}") from None
        if not number.is_finite() or abs(number) >= _TOO_LARGE:
            raise TRADING.error(f"invalid {prefix}{name}: {value!r}")


def _time(raw: str) -> datetime:
    """Python's ISO parser reads RFC 3339 once a trailing `Z` is spelled as an offset."""
    return datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in {"Z", "z"} else raw)


_TOO_LARGE = Decimal("1e15")  # beyond any price or share count; keeps int() and money exact
