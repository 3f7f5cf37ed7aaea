"""Start-up rules of the live runner: credentials, the live-money opt-in, endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ict_trader.barfile import load_bars
from ict_trader.brokers.alpaca import AlpacaBroker
from ict_trader.calendar import NyseCalendar
from ict_trader.cli import app
from ict_trader.emulator.paper import PaperAccount
from ict_trader.emulator.server import EmulatorServer
from ict_trader.errors import ConfigError
from ict_trader.live_runner import (
    LIVE_OPT_IN,
    Credentials,
    check_live_money,
    endpoints_for,
    find_credentials,
    sync_calendar,
)
from tests.alpaca_emulator import KEY, SECRET


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


def test_the_brokers_hours_win_over_a_stale_local_calendar(sample_csv: Path) -> None:
    """An unscheduled early close that exchange_calendars does not know: the bot trades by
    Alpaca's calendar (through the real SDK), and says so."""
    sample = load_bars(sample_csv)
    day = date(2024, 7, 30)
    broker_calendar = NyseCalendar(sample.calendar.start, sample.calendar.end)
    regular = broker_calendar.session_on(day)
    assert regular is not None
    broker_calendar.override(day, regular.open, regular.open + timedelta(hours=3, minutes=30))
    server = EmulatorServer(PaperAccount(sample.bars, broker_calendar), key=KEY, secret=SECRET)
    server.run_in_thread()
    try:
        broker = AlpacaBroker(KEY, SECRET, url_override=server.base_url, sleep=lambda _: None)
        local = NyseCalendar(sample.calendar.start, sample.calendar.end)
        said: list[str] = []
        assert sync_calendar(broker, local, day, said.append)
        assert not sync_calendar(broker, local, day, said.append)  # they agree now
        assert not sync_calendar(broker, local, date(2024, 7, 31), said.append)
    finally:
        server.stop_thread()
    session = local.session_on(day)
    assert session is not None
    assert session.close == datetime(2024, 7, 30, 17, 0, tzinfo=UTC)  # 13:00 New York
    assert session.previous_day == date(2024, 7, 29)
    assert local.session_at(datetime(2024, 7, 30, 17, 30, tzinfo=UTC)) is None
    assert len(said) == 1
    assert "13:00" in said[0] and "16:00" in said[0]
    # the shared, cached calendar of the data is untouched
    unchanged = sample.calendar.session_on(day)
    assert unchanged is not None and unchanged.close == datetime(2024, 7, 30, 20, tzinfo=UTC)
