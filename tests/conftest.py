"""Shared fixtures: paths to the real QQQ data the tests run on."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO / "src" / "ict_trader" / "data" / "qqq_1min_sample.csv"
# The 2024 development year (97,740 real bars), kept in the repository so CI needs no network.
DEV_YEAR = REPO / "tests" / "data" / "qqq_1min_dev.csv.gz"


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def dev_year() -> Path:
    return DEV_YEAR


@pytest.fixture(autouse=True)
def _isolated_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ict-trader run` serves the dashboard: in tests on any free port, with its token file
    in a temporary config folder, never the user's port 5000 or ~/.config."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ICT_TRADER_DASHBOARD_PORT", "0")
    monkeypatch.delenv("ICT_TRADER_DASHBOARD_TOKEN", raising=False)
