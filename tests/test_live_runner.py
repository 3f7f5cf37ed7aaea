"""Start-up rules of the live runner: credentials, the live-money opt-in, endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.cli import app
from ict_trader.errors import ConfigError
from ict_trader.live_runner import (
    LIVE_OPT_IN,
    Credentials,
    check_live_money,
    endpoints_for,
    find_credentials,
)


def test_credentials_from_env_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_API_SECRET", raising=False)
    env_file = tmp_path / ".env"
    assert find_credentials(env_file) is None
    env_file.write_text("ALPACA_API_KEY=PKFILE\nALPACA_API_SECRET=file-secret\n", encoding="utf-8")
    assert find_credentials(env_file) == Credentials("PKFILE", "file-secret")
    monkeypatch.setenv("ALPACA_API_KEY", "PKENV")
    monkeypatch.setenv("ALPACA_API_SECRET", "env-secret")
    found = find_credentials(env_file)
    assert found == Credentials("PKENV", "env-secret")  # the environment wins
    assert "env-secret" not in repr(found) and "PKENV" not in repr(found)


def test_live_money_needs_the_flag_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIVE_OPT_IN, raising=False)
    assert check_live_money(False) is True  # paper
    with pytest.raises(ConfigError, match="ICT_TRADER_ALLOW_LIVE=yes"):
        check_live_money(True)
    monkeypatch.setenv(LIVE_OPT_IN, "true")  # only the exact word counts
    with pytest.raises(ConfigError):
        check_live_money(True)
    monkeypatch.setenv(LIVE_OPT_IN, "yes")
    assert check_live_money(True) is False  # live money


def test_the_run_command_refuses_live_money_without_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPACA_API_KEY", "PK")
    monkeypatch.setenv("ALPACA_API_SECRET", "secret-value")
    monkeypatch.delenv(LIVE_OPT_IN, raising=False)
    result = CliRunner().invoke(app, ["run", "--live"])
    assert result.exit_code == 2
    assert "Refusing" in result.output
    assert "secret-value" not in result.output
    assert not (tmp_path / "ict-trader.db").exists()  # nothing started


def test_endpoints_for_an_emulator() -> None:
    endpoints = endpoints_for("http://127.0.0.1:8765/", "iex")
    assert endpoints.rest_url == "http://127.0.0.1:8765"
    assert endpoints.data_stream_url == "ws://127.0.0.1:8765/v2/iex"
    assert endpoints.trade_stream_url == "ws://127.0.0.1:8765/stream"
    assert endpoints_for(None, "sip").rest_url is None  # Alpaca's own endpoints
    with pytest.raises(ConfigError, match="expected http://host:port"):
        endpoints_for("127.0.0.1:8765", "iex")
