"""The breakers' registry: every breaker has one entry naming a real `[risk]` setting, the
tripped one is a typed value end to end (engine → store → status → dashboard), and `status`
lists exactly the registry."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from ict_trader.config import AppConfig
from ict_trader.core.breakers import BREAKERS, Breaker, tripped_by
from ict_trader.core.risk import RiskLimits
from ict_trader.dashboard.views import status_view
from ict_trader.persistence.control_log import STATE_KEY
from ict_trader.persistence.store import Store
from ict_trader.reporting.status import collect_status


def test_every_breaker_has_one_entry_naming_a_risk_setting() -> None:
    assert [spec.breaker for spec in BREAKERS] == list(Breaker)
    settings = {f.name for f in fields(RiskLimits)}
    assert all(spec.setting in settings for spec in BREAKERS)
    assert {spec.action for spec in BREAKERS} <= {"kill", "reduce"}


@pytest.mark.parametrize("breaker", list(Breaker))
def test_the_actor_names_its_breaker_and_back(breaker: Breaker) -> None:
    assert tripped_by(breaker.actor) is breaker


@pytest.mark.parametrize("actor", [None, "", "cli", "dashboard", "breaker:", "breaker:nonsense"])
def test_other_actors_are_no_breaker(actor: str | None) -> None:
    assert tripped_by(actor) is None


@pytest.mark.parametrize("breaker", list(Breaker))
def test_status_and_the_dashboard_show_which_breaker_tripped(
    tmp_path: Path, breaker: Breaker
) -> None:
    store = Store(tmp_path / "tripped.db")
    store.start_run("replay", "test", AppConfig().describe())
    state = {"state": "halted", "reason": "tripped in a test", "actor": breaker.actor}
    store.set_state(STATE_KEY, json.dumps(state))
    store.commit()
    status = collect_status(store)
    page = status_view(store)
    store.close()
    assert list(status["breakers"]) == [spec.breaker.value for spec in BREAKERS]
    assert [name for name, b in status["breakers"].items() if b["tripped"]] == [breaker.value]
    assert page["breakers"] == status["breakers"]
    spec = next(s for s in BREAKERS if s.breaker is breaker)
    limits = AppConfig().engine.risk
    assert status["breakers"][breaker.value]["threshold"] == str(getattr(limits, spec.setting))
