"""The latest audit, kept in the store for the dashboard.

The dashboard never talks to Alpaca (it shows only what the store holds), so `ict-trader audit`
leaves its report there: the JSON under one state key, and an `audit.run` event with the verdict
in the audit log. Written beside a running bot in one short transaction of its own, as `kill`
writes its request.
"""

from __future__ import annotations

import json
from typing import Any

from ict_trader.audit.report import AuditReport
from ict_trader.persistence.store import Store

REPORT_KEY = "audit_report"


def save_report(store: Store, report: AuditReport, actor: str = "cli") -> None:
    """Keep `report` as the store's latest audit (StoreError if it cannot be written)."""
    with store.transaction():
        store.set_state(REPORT_KEY, json.dumps(report.as_json()))
        store.audit(report.generated_at, "audit.run", actor, report.verdict())


def load_report(store: Store) -> dict[str, Any] | None:
    """The latest audit's JSON as `ict-trader audit --json` writes it, or None if none ran."""
    text = store.state(REPORT_KEY)
    if text is None:
        return None
    report: dict[str, Any] = json.loads(text)
    return report
