"""Alpaca's own OpenAPI specs as an oracle: does an HTTP answer follow the spec of its route?

The specs (Trading API and Market Data API, OpenAPI 3.1) ship inside Alpaca's `alpaca-mcp-server`
package, a dev dependency, so CI needs nothing outside the repository's lock file. An answer is
checked for:

- its status: documented for the operation, or one of the errors Alpaca answers on every route of
  its kind although the spec does not list them (`Spec._unlisted_error_allowed`);
- its body: JSON valid against the response schema of that status (types, required fields, enums,
  `date-time`/`uuid`/`date` formats and the spec's `decimal` strings), an error body of Alpaca's
  shape for errors, nothing for a 204;
- its keys: every top-level key the schema declares, or one of the few extras Alpaca itself sends
  (`EXTRA_KEYS`), so a misspelt field cannot hide behind `additionalProperties`.

Validation is `jsonschema` (Draft 2020-12, the dialect of OpenAPI 3.1) with the whole spec as a
`referencing` resource, so `$ref`s resolve as the spec wrote them. OpenAPI 3.0's `nullable` is not
JSON Schema; a 3.0 document would be rewritten to 3.1's `type: [..., "null"]` first
(`nullable_as_null_type`), so a nullable field neither rejects null nor lets it through unchecked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import metadata, resources
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

PACKAGE = "alpaca-mcp-server"
TRADING = "trading-api"
MARKET_DATA = "market-data-api"

# Top-level keys Alpaca sends beyond a schema's `properties`, per schema, each with its witness.
EXTRA_KEYS: Mapping[str, frozenset[str]] = {
    "Order": frozenset({"subtag", "source"}),  # in the spec's own EquityOrderResponse example
    "Assets": frozenset({"easy_to_borrow"}),  # alpaca-py's Asset model requires it
    "CanceledOrderResponse": frozenset({"body"}),  # alpaca-py's CancelOrderResponse reads it
    "Account": frozenset({"position_market_value"}),  # in Alpaca's answers since 2024
}

# Where a spec contradicts its own words, the words win; each correction says why.
_ACTIVITY_ITEMS = {
    # "Will be one of a TradingActivity or NonTradeActivity based on activity_type": a `oneOf`
    # fails every FILL (NonTradeActivities requires nothing, so both branches match); choose the
    # branch by `activity_type` as the description says.
    "if": {"properties": {"activity_type": {"const": "FILL"}}, "required": ["activity_type"]},
    "then": {"$ref": "#/components/schemas/TradingActivities"},
    "else": {"$ref": "#/components/schemas/NonTradeActivities"},
}
_CLOSED_ITEMS = {
    # PositionClosedResponse types `body` as an Order, but "a response will be provided for each
    # order that is attempted": a close Alpaca refuses carries its error there, e.g. 403 with
    # `available`/`held_for_orders` (alpaca_api.md, DELETE /v2/positions; alpaca-py's
    # ClosePositionResponse.body is FailedClosePositionDetails | Order). Check it as the Error
    # schema when the item's status is an error.
    "if": {"properties": {"status": {"minimum": 400}}, "required": ["status"]},
    "then": {
        "type": "object",
        "required": ["symbol", "status", "body"],
        "properties": {
            "symbol": {"type": "string"},
            "status": {"type": "integer"},
            "body": {"$ref": "#/components/schemas/Error"},
        },
    },
    "else": {"$ref": "#/components/schemas/PositionClosedResponse"},
}
_ACTIVITY_DATE = {
    # NonTradeActivities types `date` as a `date-time`, but its own example writes "2019-08-01",
    # Alpaca's page on option events writes "2023-07-21" for OPEXC (alpaca_options.md §4), and
    # alpaca-py's NonTradeActivity.date is a `date`: the day, as the description says.
    "description": "The date on which the activity occurred or settled.",
    "format": "date",
    "type": "string",
}
ERRATA: Mapping[str, tuple[tuple[str, Any], ...]] = {
    "trading-api": (
        ("/components/schemas/NonTradeActivities/properties/date", _ACTIVITY_DATE),
        (
            "/paths/~1v2~1positions/delete/responses/207/content/application~1json/schema/items",
            _CLOSED_ITEMS,
        ),
        (
            "/paths/~1v2~1account~1activities~1{activity_type}/get/responses/200/content"
            "/application~1json/schema/items",
            _ACTIVITY_ITEMS,
        ),
        (
            "/paths/~1v2~1account~1activities/get/responses/200/content"
            "/application~1json/schema/items",
            _ACTIVITY_ITEMS,
        ),
    ),
}


def _decimal(instance: object) -> bool:
    """The spec's `format: decimal`: a string holding a finite decimal number."""
    if not isinstance(instance, str):
        return True
    try:
        return Decimal(instance).is_finite()
    except InvalidOperation:
        return False


FORMATS = FormatChecker()
FORMATS.checks("decimal")(_decimal)
# jsonschema checks date-time only when rfc3339-validator is installed (a dev dependency); never
# let that check vanish silently.
assert {"date-time", "date", "uuid", "decimal"} <= set(FORMATS.checkers)


def nullable_as_null_type(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` rewritten as JSON Schema (3.1): `null` joins the `type`
    (and the `enum`), or, beside a `$ref`/composition without a type, an `anyOf` with null."""
    if isinstance(node, list):
        return [nullable_as_null_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: nullable_as_null_type(value) for key, value in node.items()}
    if out.pop("nullable", False) is not True:
        return out
    if "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its answer, as seen on the wire."""

    method: str
    path: str  # as sent (percent-encoded), without the query
    status: int
    content_type: str
    body: bytes
    query: str = ""

    def describe(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status}"


@dataclass
class Spec:
    """One of Alpaca's API specs, ready to judge answers."""

    name: str
    document: dict[str, Any]
    _registry: Registry[Any] = field(init=False, repr=False)
    _routes: list[tuple[re.Pattern[str], str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if str(self.document.get("openapi", "")).startswith("3.0"):
            self.document = nullable_as_null_type(self.document)
        for pointer, replacement in ERRATA.get(self.name, ()):
            parent, _, key = pointer.rpartition("/")
            self._at(parent, copy=False)[key] = replacement
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(self.uri, resource)
        # literal segments before parameters: /v2/orders:by_client_order_id is not an order id
        templates = sorted(self.document["paths"], key=lambda t: (t.count("{"), t))
        self._routes = [(_template_pattern(t), t) for t in templates]

    @property
    def uri(self) -> str:
        return f"urn:alpaca:{self.name}"

    def template(self, path: str) -> str | None:
        """The spec's path template that a concrete path (percent-encoded) falls under."""
        return next((t for pattern, t in self._routes if pattern.fullmatch(path)), None)

    def operation(self, method: str, template: str) -> dict[str, Any]:
        return dict(self.document["paths"][template][method.lower()])

    def problems(self, exchange: Exchange) -> list[str]:
        """What in this answer does not follow the spec (empty: it conforms)."""
        where = exchange.describe()
        template = self.template(exchange.path)
        if template is None or exchange.method.lower() not in self.document["paths"][template]:
            return [f"{where}: no such operation in the {self.name} spec"]
        operation = self.operation(exchange.method, template)
        responses = operation["responses"]
        code = str(exchange.status)
        if code in responses:
            pointer = f"/paths/{_escape(template)}/{exchange.method.lower()}/responses/{code}"
            response = self._resolve(responses[code])
            if "$ref" in responses[code]:
                pointer = responses[code]["$ref"].removeprefix("#")
            schema_pointer = (
                f"{pointer}/content/application~1json/schema"
                if "schema" in response.get("content", {}).get("application/json", {})
                else None
            )
        elif self._unlisted_error_allowed(exchange.status, exchange.method, template, operation):
            schema_pointer = None
        else:
            listed = ", ".join(sorted(responses))
            return [f"{where}: status {code} is not in the spec of {template} (lists {listed})"]
        if exchange.status == 204:
            return [f"{where}: a 204 carries no body"] if exchange.body else []
        if schema_pointer is None and exchange.status < 400:
            return []
        if not exchange.content_type.startswith("application/json"):
            return [f"{where}: content type {exchange.content_type!r}, not application/json"]
        try:
            body = json.loads(exchange.body)
        except ValueError:
            return [f"{where}: the body is not JSON: {exchange.body[:80]!r}"]
        if schema_pointer is None:
            return [f"{where}: {p}" for p in _error_problems(body)]
        found = [f"{where}: {p}" for p in self.schema_problems(body, schema_pointer)]
        return found + [f"{where}: {p}" for p in self.undeclared_keys(body, schema_pointer)]

    def schema_problems(self, body: Any, pointer: str) -> Iterator[str]:
        validator = Draft202012Validator(
            {"$ref": f"{self.uri}#{pointer}"}, registry=self._registry, format_checker=FORMATS
        )
        for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            at = "/".join(str(p) for p in error.absolute_path) or "(body)"
            yield f"{at}: {error.message}"

    def undeclared_keys(self, body: Any, pointer: str) -> Iterator[str]:
        """Top-level keys of the answer's object(s) that the schema does not declare."""
        schema, name = self._follow(self._at(pointer))
        objects = body if isinstance(body, list) else [body]
        if schema.get("type") == "array" or "items" in schema:
            schema, name = self._follow(schema.get("items", {}))
        declared = set(schema.get("properties", {}))
        if not declared:
            return
        allowed = declared | EXTRA_KEYS.get(name, frozenset())
        for item in objects:
            if isinstance(item, dict):
                for key in sorted(set(item) - allowed):
                    yield f"key {key!r} is not declared by {name or 'the schema'}"

    def _follow(self, schema: dict[str, Any]) -> tuple[dict[str, Any], str]:
        name = ""
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self._at(schema["$ref"].removeprefix("#"))
        return schema, name

    def _at(self, pointer: str, *, copy: bool = True) -> dict[str, Any]:
        node: Any = self.document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return dict(node) if copy else node

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        return self._follow(node)[0]

    def _unlisted_error_allowed(
        self, status: int, method: str, template: str, operation: dict[str, Any]
    ) -> bool:
        trading = self.name == TRADING
        has_parameters = bool(operation.get("parameters")) or bool(
            self.document["paths"][template].get("parameters")
        )
        has_body = "requestBody" in operation
        places_orders = (method.upper(), template) in {
            ("POST", "/v2/orders"),
            ("DELETE", "/v2/positions/{symbol_or_asset_id}"),
        }
        # Errors Alpaca answers on routes whose spec entry does not list them (the specs mostly
        # document success answers):
        return {
            401: True,  # every route requires the APCA-API-KEY-ID/-SECRET-KEY headers
            429: True,  # the rate limit applies to every route
            # the order, asset or position named (in the path or by client order id) is unknown
            404: trading and ("{" in template or template.endswith(":by_client_order_id")),
            422: trading and (has_parameters or has_body),  # validation error, code 40010001
            400: trading and has_body,  # a body that is not JSON of the right types, 40010000
            403: trading and places_orders,  # buying power or shares not sufficient
        }.get(status, False)


def _error_problems(body: Any) -> Iterator[str]:
    """Alpaca's error bodies: an object with a `message` string and, when present, a numeric
    `code` (the trading spec's `Error` schema; market-data errors may carry only the message)."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        yield f"an error body needs a string 'message': {body!r}"
    elif "code" in body and (
        not isinstance(body["code"], int | float) or isinstance(body["code"], bool)
    ):
        yield f"an error 'code' must be a number: {body['code']!r}"


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(regex)


def _escape(template: str) -> str:
    return template.replace("~", "~0").replace("/", "~1")


@cache
def load(name: str) -> Spec:
    """One spec, read from the installed `alpaca-mcp-server` package."""
    text = (resources.files("alpaca_mcp_server") / "specs" / f"{name}.json").read_text("utf-8")
    return Spec(name, json.loads(text))


def package_version() -> str:
    return metadata.version(PACKAGE)


def spec_for(path: str) -> Spec:
    """Which of the two specs a path belongs to (both APIs share the emulator's one port)."""
    data = load(MARKET_DATA)
    return data if data.template(path) is not None else load(TRADING)


def problems(exchange: Exchange) -> list[str]:
    return spec_for(exchange.path).problems(exchange)


def encoded(path: str) -> str:
    """A path as a client sends it (the specs' templates match encoded paths)."""
    return quote(path, safe="/:")
