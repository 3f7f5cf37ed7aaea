"""A loopback HTTP server answering alpaca-py's option calls with canned JSON in Alpaca's shapes.

The real alpaca-py clients talk to it, so a test of the contract desk or of option orders also
checks the SDK's request fields and its parsing of Alpaca's answers (field names, string-typed
numbers, `next_page_token`), which a fake client object would take on trust. It serves only what
a test put in it; the full emulator's option routes are tested end to end elsewhere. Every
answer is checked against Alpaca's own OpenAPI specs (tests/alpaca_spec.py) and a test whose
canned JSON strays from them fails, so the shapes are Alpaca's, not ours.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from ict_trader.core.instruments import instrument_of
from tests import alpaca_spec

KEY, SECRET = "canned-key", "canned-secret"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Canned:
    """What the server answers: contract pages (each a list of symbols, chained by tokens),
    snapshots by symbol, positions, and an HTTP status to fail a path with."""

    pages: list[list[str]] = field(default_factory=list)
    untradable: set[str] = field(default_factory=set)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # path prefix -> status
    spec_problems: list[str] = field(default_factory=list)  # answers the spec does not allow
    seen: list[Seen] = field(default_factory=list)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


def contract_json(symbol: str, tradable: bool = True) -> dict[str, Any]:
    """One contract as Alpaca's `/v2/options/contracts` lists it (numbers as strings)."""
    instrument = instrument_of(symbol)
    assert instrument.expiry is not None and instrument.right is not None
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
        "symbol": symbol,
        "name": f"{instrument.underlying} option",
        "status": "active",
        "tradable": tradable,
        "expiration_date": instrument.expiry.isoformat(),
        "root_symbol": instrument.underlying,
        "underlying_symbol": instrument.underlying,
        "underlying_asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, str(instrument.underlying))),
        "type": instrument.right.value,
        "style": "american",
        "strike_price": str(instrument.strike),
        "multiplier": "100",
        "size": "100",
        "open_interest": "1000",
        "open_interest_date": instrument.expiry.isoformat(),
        "ppind": True,
        # close_price and its date left out, as the spec requires when a contract has not
        # traded (it allows no null)
    }


def snapshot_json(
    bid: float, ask: float, at: datetime, delta: float | None = 0.5, iv: float | None = 0.2
) -> dict[str, Any]:
    """A snapshot as `/v1beta1/options/snapshots` sends it (the indicative feed's shape)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out: dict[str, Any] = {
        "latestQuote": {
            "ap": ask,
            "as": 10,
            "ax": "X",
            "bp": bid,
            "bs": 12,
            "bx": "X",
            "c": " ",
            "t": stamp,
        },
        "latestTrade": {"c": "I", "p": (bid + ask) / 2, "s": 1, "t": stamp, "x": "X"},
    }
    if delta is not None:
        out["greeks"] = {"delta": delta, "gamma": 0.1, "rho": 0.01, "theta": -0.5, "vega": 0.05}
    if iv is not None:
        out["impliedVolatility"] = iv
    return out


def option_position_json(symbol: str, qty: int, avg: str) -> dict[str, Any]:
    """A long option position as `/v2/positions` lists it: qty in contracts, dollars x 100."""
    price = float(avg)
    return {
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
        "symbol": symbol,
        "exchange": "",
        "asset_class": "us_option",
        "asset_marginable": False,
        "avg_entry_price": avg,
        "qty": str(qty),
        "qty_available": str(qty),
        "side": "long",
        "market_value": f"{price * qty * 100:.2f}",
        "cost_basis": f"{price * qty * 100:.2f}",
        "unrealized_pl": "0",
        "unrealized_plpc": "0",
        "unrealized_intraday_pl": "0",
        "unrealized_intraday_plpc": "0",
        "current_price": avg,
        "lastday_price": avg,
        "change_today": "0",
    }


def _order_json(body: dict[str, Any]) -> dict[str, Any]:
    """The spec's `Order` for what was posted: numbers as strings, no null intent."""
    now = "2024-07-29T17:00:00Z"
    limit = body.get("limit_price")
    order = {
        "id": str(uuid.uuid4()),
        "client_order_id": body["client_order_id"],
        "created_at": now,
        "updated_at": now,
        "submitted_at": now,
        "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, body["symbol"])),
        "symbol": body["symbol"],
        "asset_class": "us_option",
        "qty": str(body["qty"]),
        "notional": None,
        "filled_qty": "0",
        "order_class": "simple",
        "order_type": body["type"],
        "type": body["type"],
        "side": body["side"],
        "time_in_force": body["time_in_force"],
        "limit_price": None if limit is None else str(limit),
        "status": "accepted",
        "extended_hours": False,
    }
    if body.get("position_intent") is not None:
        order["position_intent"] = body["position_intent"]
    return order


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        parsed = urlparse(self.path)
        exchange = alpaca_spec.Exchange(
            self.command,
            alpaca_spec.encoded(parsed.path),
            status,
            "application/json",
            data,
            parsed.query,
        )
        # A route the test did not expect (404) and a failure it injected are not Alpaca's
        # documented answers; everything else must be.
        if status < 400:
            self.server.canned.spec_problems += alpaca_spec.problems(exchange)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: dict[str, Any] | None) -> tuple[str, dict[str, str]]:
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        self.server.canned.seen.append(Seen(self.command, parsed.path, query, body))
        return parsed.path, query

    def _failed(self, path: str) -> bool:
        for prefix, status in self.server.canned.fail.items():
            if path.startswith(prefix):
                self._answer(status, {"code": status * 100000 + 1, "message": "canned failure"})
                return True
        return False

    def do_GET(self) -> None:
        path, query = self._record(None)
        canned = self.server.canned
        if self._failed(path):
            return
        if path == "/v2/options/contracts":
            index = int(query.get("page_token", "0"))
            page = canned.pages[index] if index < len(canned.pages) else []
            token = str(index + 1) if index + 1 < len(canned.pages) else None
            listed = [contract_json(s, s not in canned.untradable) for s in page]
            self._answer(200, {"option_contracts": listed, "next_page_token": token})
        elif path == "/v1beta1/options/snapshots":
            wanted = query.get("symbols", "").split(",")
            found = {s: canned.snapshots[s] for s in wanted if s in canned.snapshots}
            self._answer(200, {"snapshots": found, "next_page_token": None})
        elif path == "/v2/positions":
            self._answer(200, canned.positions)
        else:
            self._answer(404, {"code": 40410000, "message": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        path, _ = self._record(body)
        if self._failed(path):
            return
        if path == "/v2/orders":
            self._answer(200, _order_json(body))
        else:
            self._answer(404, {"code": 40410000, "message": "not found"})


class _Server(ThreadingHTTPServer):
    canned: Canned


@contextmanager
def canned_alpaca(canned: Canned) -> Iterator[str]:
    """Serve `canned` on 127.0.0.1; yields the base URL for alpaca-py's `url_override`."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.canned = canned
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
    assert not canned.spec_problems, "canned answers Alpaca's spec does not allow: " + "; ".join(
        canned.spec_problems
    )


def occ(day: date, right: str, strike: int, root: str = "QQQ") -> str:
    return f"{root}{day:%y%m%d}{right}{strike * 1000:08d}"
