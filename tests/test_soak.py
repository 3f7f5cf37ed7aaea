"""A shortened soak (benchmarks/soak_live.py): the real bot process over consecutive sessions
with faults and `kill -9`s, then the ledger audited against the emulator's orders and fills."""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak_live import soak

from ict_trader.marketdata.barfile import load_bars


def test_a_session_with_faults_and_kills_leaves_ledger_and_broker_equal(
    dev_year: Path, tmp_path: Path
) -> None:
    report = soak(
        load_bars(dev_year),
        first_session=60,
        sessions=1,
        kills=2,
        seed=11,
        work=tmp_path,
        say=lambda _: None,
    )
    assert report.problems == []
    assert report.clean
    assert report.restarts == report.restarts_survived == 2
    assert report.orders > 0 and report.fills > 0, "the soak traded"
    assert report.faults_injected > 0
    assert report.minutes_without_a_bar > 0  # IEX gaps, the emulator's default, were lived with
    assert report.bot_exit_code == 0  # SIGTERM: a clean stop
