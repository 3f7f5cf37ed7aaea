"""The audit's result: every part's figures, the error lines, the one-line verdict, the JSON.

Verdicts, worst first (the first word is stable, for scripts and the dashboard):
- `RECORDS DIFFER`: the store and Alpaca disagree on an order or a fill, one of them lacks an
  order the other has, or Alpaca has orders ict-trader did not place (exit code 1);
- `SIGNALS DIFFER`: the records agree, but the detector finds other signals on the live bars
  than on SIP bars for the same minutes (exit code 0: the free plan's IEX bars are expected to
  differ; the verdict says how);
- `OK`: the records agree and the live bars gave the same signals as SIP (exit code 0).

With several symbols the orders and fills are one comparison (orders name their symbol); bars,
signals and expectation are each symbol's (`by_symbol`), and the top-level figures add them up:
`bars` summed over the symbols, `signals` every symbol's pairs (each naming its symbol), the
expectation of all the signals and trades. A one-symbol report keeps the shape it always had
(plus `symbols`, `by_symbol`, and a `symbol` on each signal pair and slippage row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ict_trader.audit.bars import BarsAudit, combine_bars
from ict_trader.audit.expectation import Figures
from ict_trader.audit.orders import OrdersAudit
from ict_trader.audit.signals import EXTRA, MISSING, SAME, SHIFTED, SignalsAudit
from ict_trader.audit.slippage import TradeSlippage

OK, SIGNALS_DIFFER, RECORDS_DIFFER = "OK", "SIGNALS DIFFER", "RECORDS DIFFER"


@dataclass
class SymbolAudit:
    """One symbol's part: its sessions, bars and expectation (its signals are the report's
    pairs of that symbol)."""

    sessions: list[date]  # audited sessions the store has this symbol's bars of
    bars: BarsAudit
    live: Figures
    backtest: Figures

    def as_json(self, signals: SignalsAudit, symbol: str) -> dict[str, Any]:
        return {
            "sessions": [day.isoformat() for day in self.sessions],
            "bars": self.bars.as_json(),
            "signals": signals.counts(symbol),
            "expectation": {"live": self.live.as_json(), "backtest_sip": self.backtest.as_json()},
        }


@dataclass
class AuditReport:
    generated_at: datetime  # Alpaca's clock when the audit ran
    first_day: date
    last_day: date
    mode: str  # paper or live
    feed: str  # the live run's bar feed: iex or sip
    symbols: tuple[str, ...]  # the run's, as its settings name them
    orders: OrdersAudit
    sessions: list[date] = field(default_factory=list)  # audited sessions with live bars
    # the symbols whose live bars were compared with SIP's, in the settings' order
    by_symbol: dict[str, SymbolAudit] = field(default_factory=dict)
    sip_until: datetime | None = None  # SIP bars compared up to (exclusive)
    sip_cut_short: bool = False  # the free plan refused the latest 15 minutes
    signals: SignalsAudit = field(default_factory=SignalsAudit)
    slippage: list[TradeSlippage] = field(default_factory=list)
    live: Figures | None = None
    backtest: Figures | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def symbol(self) -> str | None:
        """The run's symbol; None if it traded several."""
        return self.symbols[0] if len(self.symbols) == 1 else None

    @property
    def bars(self) -> BarsAudit | None:
        """Every compared symbol's bars added up (None: no live bars compared)."""
        return combine_bars([part.bars for part in self.by_symbol.values()])

    @property
    def errors(self) -> list[str]:
        return list(self.orders.differences)

    @property
    def status(self) -> str:
        if self.errors:
            return RECORDS_DIFFER
        return SIGNALS_DIFFER if self.signals.differ else OK

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def verdict(self) -> str:
        """One line: the status, then the records, then the signals."""
        orders = self.orders
        matched = sum(1 for m in orders.matched if not m.problems)
        records = (
            f"{matched} of {len(orders.matched)} orders and {orders.fills_matched} fills match "
            f"Alpaca, {len(orders.foreign)} foreign order{_s(len(orders.foreign))}"
        )
        if self.errors:
            records += f", {len(self.errors)} difference{_s(len(self.errors))}"
        signals = self.signals
        sip = signals.count(SAME) + signals.count(SHIFTED) + signals.count(MISSING)
        feed = self.feed.upper()
        several = len(self.by_symbol) > 1
        if self.bars is None:
            said = "no live bars to compare with SIP"
        elif not signals.differ:
            said = f"{feed} bars gave the same {sip} signal{_s(sip)} as SIP"
            if several:
                said += " (" + ", ".join(f"{s} {self._sip_count(s)}" for s in self.by_symbol) + ")"
        else:
            said = (
                f"{feed} bars vs SIP: {signals.count(SAME)} same, {signals.count(SHIFTED)} "
                f"shifted, {signals.count(MISSING)} missing, {signals.count(EXTRA)} extra"
            )
            if several:
                said += f" (differ on {'; '.join(self._differences())})"
        return f"{self.status}: {records}; {said}"

    def _sip_count(self, symbol: str) -> int:
        return sum(self.signals.count(status, symbol) for status in (SAME, SHIFTED, MISSING))

    def _differences(self) -> list[str]:
        """`IWM: 1 missing, 1 extra` for each symbol whose signals differ."""
        out = []
        for symbol in self.by_symbol:
            if self.signals.differ_on(symbol):
                counts = [
                    f"{self.signals.count(status, symbol)} {status}"
                    for status in (SHIFTED, MISSING, EXTRA)
                    if self.signals.count(status, symbol)
                ]
                out.append(f"{symbol}: {', '.join(counts)}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict(),
            "status": self.status,
            "exit_code": self.exit_code,
            "generated_at": self.generated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "period": {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()},
            "mode": self.mode,
            "feed": self.feed,
            "symbol": self.symbol,
            "symbols": list(self.symbols),
            "errors": self.errors,
            "orders": self.orders.as_json(),
            "sessions": [day.isoformat() for day in self.sessions],
            "bars": None if self.bars is None else self.bars.as_json(),
            "sip_until": (
                None
                if self.sip_until is None
                else self.sip_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            "sip_cut_short": self.sip_cut_short,
            "signals": self.signals.as_json(),
            "slippage": [row.as_json() for row in self.slippage],
            "expectation": {
                "live": None if self.live is None else self.live.as_json(),
                "backtest_sip": None if self.backtest is None else self.backtest.as_json(),
            },
            "by_symbol": {
                symbol: part.as_json(self.signals, symbol)
                for symbol, part in self.by_symbol.items()
            },
            "notes": list(self.notes),
        }


def _s(count: int) -> str:
    return "" if count == 1 else "s"
