"""The audit's result: every part's figures, the error lines, the one-line verdict, the JSON.

Verdicts, worst first (the first word is stable, for scripts and the dashboard):
- `RECORDS DIFFER`: the store and Alpaca disagree on an order or a fill, one of them lacks an
  order the other has, or Alpaca has orders ict-trader did not place (exit code 1);
- `SIGNALS DIFFER`: the records agree, but the detector finds other signals on the live bars
  than on SIP bars for the same minutes (exit code 0: the free plan's IEX bars are expected to
  differ; the verdict says how);
- `OK`: the records agree and the live bars gave the same signals as SIP (exit code 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ict_trader.audit.bars import BarsAudit
from ict_trader.audit.expectation import Figures
from ict_trader.audit.orders import OrdersAudit
from ict_trader.audit.signals import EXTRA, MISSING, SAME, SHIFTED, SignalsAudit
from ict_trader.audit.slippage import TradeSlippage

OK, SIGNALS_DIFFER, RECORDS_DIFFER = "OK", "SIGNALS DIFFER", "RECORDS DIFFER"


@dataclass
class AuditReport:
    generated_at: datetime  # Alpaca's clock when the audit ran
    first_day: date
    last_day: date
    mode: str  # paper or live
    feed: str  # the live run's bar feed: iex or sip
    symbol: str
    orders: OrdersAudit
    sessions: list[date] = field(default_factory=list)  # audited sessions with live bars
    bars: BarsAudit | None = None
    sip_until: datetime | None = None  # SIP bars compared up to (exclusive)
    sip_cut_short: bool = False  # the free plan refused the latest 15 minutes
    signals: SignalsAudit = field(default_factory=SignalsAudit)
    slippage: list[TradeSlippage] = field(default_factory=list)
    live: Figures | None = None
    backtest: Figures | None = None
    notes: list[str] = field(default_factory=list)

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
        if self.bars is None:
            said = "no live bars to compare with SIP"
        elif not signals.differ:
            said = f"{feed} bars gave the same {sip} signal{_s(sip)} as SIP"
        else:
            said = (
                f"{feed} bars vs SIP: {signals.count(SAME)} same, {signals.count(SHIFTED)} "
                f"shifted, {signals.count(MISSING)} missing, {signals.count(EXTRA)} extra"
            )
        return f"{self.status}: {records}; {said}"

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
            "notes": list(self.notes),
        }


def _s(count: int) -> str:
    return "" if count == 1 else "s"
