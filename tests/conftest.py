"""Shared fixtures: paths to the real QQQ data the tests run on."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CSV = REPO / "src" / "ict_trader" / "data" / "qqq_1min_sample.csv"
# The dev year lives beside the repository (read-only shared data); fall back to an env override.
DEV_YEAR = REPO.parent / "shared" / "data" / "qqq_1min_dev.csv.gz"


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture(scope="session")
def dev_year() -> Path:
    if not DEV_YEAR.exists():
        raise FileNotFoundError(f"dev data not found at {DEV_YEAR}")
    return DEV_YEAR
