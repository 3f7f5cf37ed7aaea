"""The run's JSON-lines log: every decision, parseable, with secrets masked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli.app import app
from ict_trader.logs import close_logging, register_secret, setup_logging

runner = CliRunner()


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_replay_logs_every_order_and_notice(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    result = runner.invoke(
        app, ["run", "--speed", "0", "--quiet", "--no-dashboard", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    lines = read_lines(tmp_path / "run.log")
    submits = [line for line in lines if line.get("event") == "submit"]
    # 3 signals x 2 profiles: entry + target each, plus the time exits' market orders (2)
    assert len(submits) == 14
    assert {line["leg"] for line in submits} == {"entry", "target", "exit"}
    assert all(str(line["client_order_id"]).startswith("ict-QQQ-2024") for line in submits)
    notices = [line["message"] for line in lines if line.get("event") == "notify"]
    assert any(str(m).startswith("CONSERVATIVE entry — SHORT 6 QQQ @ 460.27") for m in notices)
    assert all(line["time"] and line["level"] for line in lines)


def test_secrets_are_masked_whatever_logged_them(tmp_path: Path) -> None:
    path = tmp_path / "secret.log"
    setup_logging(path)
    secret = "PKTESTSECRETKEY1234"
    register_secret(secret)
    try:
        log = logging.getLogger("some.library")
        log.warning("request failed for key %s", secret)
        try:
            raise RuntimeError(f"401 for {secret}")
        except RuntimeError:
            log.exception("boom")
    finally:
        close_logging()
    text = path.read_text(encoding="utf-8")
    assert secret not in text
    assert text.count("***") == 2  # the message and the exception text
    assert [line["level"] for line in read_lines(path)] == ["warning", "error"]


def test_an_unwritable_log_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["run", "--no-dashboard", "--log-file", str(tmp_path / "missing" / "x.log")],
    )
    assert result.exit_code == 2
    assert "cannot write the log" in result.output
    assert "Traceback" not in result.output


@pytest.fixture(autouse=True)
def _no_handler_left() -> None:
    close_logging()
